package rollout

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

const (
	// fleetGetLimit is the largest scope read with one GET per engine; above it Fleet lists the
	// fleet once (a few paged requests) and filters client-side, which is cheaper than n GETs
	// for any fleet where the canary covers a meaningful share.
	fleetGetLimit = 50
	// fleetGetParallel bounds those GETs in flight at once.
	fleetGetParallel = 10
)

// Fleet reads the engines of users: one GET each (bounded parallelism) for a small scope, else one
// paged list filtered client-side. Users the control plane does not know are absent.
func Fleet(ctx context.Context, c *client.Client, users []string) (map[string]api.Engine, error) {
	out := make(map[string]api.Engine, len(users))
	if len(users) > fleetGetLimit {
		want := make(map[string]bool, len(users))
		for _, u := range users {
			want[u] = true
		}
		all, err := c.AllEngines(ctx, client.ListEnginesOptions{})
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if want[e.UserID] {
				out[e.UserID] = e
			}
		}
		return out, nil
	}
	var mu sync.Mutex
	_, err := boundedEach(ctx, fleetGetParallel, users, func(ctx context.Context, u string) error {
		e, err := c.GetEngine(ctx, u)
		if client.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		out[u] = e
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// boundedEach runs fn for each user with at most parallel at once: a fixed set of workers, so
// 1,000 users cost `parallel` goroutines, not 1,000. After the first error it starts no more
// (those running finish: cancelling them would leave operations orphaned mid-way), and returns
// that user and error.
func boundedEach(ctx context.Context, parallel int, users []string, fn func(ctx context.Context, user string) error) (string, error) {
	var (
		wg       sync.WaitGroup
		once     sync.Once
		failed   atomic.Bool
		badUser  string
		firstErr error
	)
	work := make(chan string)
	n := max(1, min(parallel, len(users)))
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if err := fn(ctx, u); err != nil {
					once.Do(func() { badUser, firstErr = u, err })
					failed.Store(true)
				}
			}
		}()
	}
	for _, u := range users {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		work <- u
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return "", ctx.Err()
	}
	return badUser, firstErr
}
