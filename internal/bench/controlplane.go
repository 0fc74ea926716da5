package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// ControlPlaneFigures is measurement 5.
type ControlPlaneFigures struct {
	SeedEngines int     `json:"seed_engines"`
	SeedSeconds float64 `json:"seed_seconds"` // controlplane.New over an empty data dir, seeding included

	// Engine reads: GET /v1/engines/{user_id} over keep-alive connections from Concurrency
	// workers in this same process (so client and server share the cores).
	ReadConcurrency int     `json:"read_concurrency"`
	ReadSeconds     float64 `json:"read_seconds"`
	ReadsPerSecond  float64 `json:"reads_per_second"`
	ReadP50MS       float64 `json:"read_p50_ms"`
	ReadP99MS       float64 `json:"read_p99_ms"`

	// Long-polls held on running operations: CPU used by the whole process (server and the
	// waiting clients) while they are held, as a share of one core.
	LongPolls          int     `json:"long_polls"`
	HeldSeconds        float64 `json:"held_seconds"`
	HeldCPUPercent     float64 `json:"held_cpu_percent_of_one_core"`
	ReturnedEarly      int64   `json:"long_polls_returned_while_held"`
	HeldGoroutines     int     `json:"goroutines_while_held"`
	HeldRequestsServed int64   `json:"requests_served_while_held"`
}

func runControlPlane(ctx context.Context, cfg Config, work string) (*ControlPlaneFigures, error) {
	const seed, polls = 2000, 200
	readFor, holdFor := 5*time.Second, 5*time.Second
	if cfg.Quick {
		readFor, holdFor = 2*time.Second, 2*time.Second
	}
	// Scale 10 stretches the drain step of an upgrade to 20 s, so the long-polled operations
	// do not change while they are held.
	p, err := startPlane(controlplane.Options{DataDir: filepath.Join(work, "cp-cp"), SeedEngines: seed, TimeScale: 10})
	if err != nil {
		return nil, err
	}
	defer p.close()
	f := &ControlPlaneFigures{SeedEngines: seed, SeedSeconds: round(p.Seeded.Seconds()), ReadConcurrency: 16, LongPolls: polls}
	cfg.logf("seeded %d engines in %.2fs", seed, f.SeedSeconds)

	if err := readLoad(ctx, p, seed, f.ReadConcurrency, readFor, f); err != nil {
		return f, err
	}
	cfg.logf("engine reads: %.0f/s (p50 %.2f ms, p99 %.2f ms) with %d workers", f.ReadsPerSecond, f.ReadP50MS, f.ReadP99MS, f.ReadConcurrency)

	if err := holdPolls(ctx, p, polls, holdFor, f); err != nil {
		return f, err
	}
	cfg.logf("%d long-polls held %.0fs: %.2f%% of one core, %d returned early", polls, f.HeldSeconds, f.HeldCPUPercent, f.ReturnedEarly)
	return f, nil
}

func readLoad(ctx context.Context, p *plane, engines, workers int, d time.Duration, f *ControlPlaneFigures) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	defer hc.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []float64
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for rctx.Err() == nil {
				url := p.URL + "/v1/engines/" + userID(1+rand.IntN(engines))
				req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
				req.Header.Set(api.KeyHeader, benchKey)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if rctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					firstErr = fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
					mu.Unlock()
					break
				}
				mine = append(mine, ms(time.Since(t0)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	f.ReadSeconds = round(el.Seconds())
	f.ReadsPerSecond = round(float64(len(lat)) / el.Seconds())
	f.ReadP50MS, f.ReadP99MS = round(percentile(lat, 50)), round(percentile(lat, 99))
	return nil
}

// holdPolls starts n upgrades that sit in their drain step, long-polls each one at its current
// revision, and measures the process's CPU time while all n are held.
func holdPolls(ctx context.Context, p *plane, n int, hold time.Duration, f *ControlPlaneFigures) error {
	ops := make([]api.Operation, n)
	for i := range ops {
		op, err := p.Client.Upgrade(ctx, userID(i+1), client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.3.1"})
		if err != nil {
			return err
		}
		ops[i] = op
	}
	// The operations move into drain right after they start; wait for that so the polls'
	// revisions are the ones that will hold.
	time.Sleep(500 * time.Millisecond)
	for i := range ops {
		op, err := p.Client.GetOperation(ctx, ops[i].ID)
		if err != nil {
			return err
		}
		if op.Done() {
			return fmt.Errorf("operation %s finished before it was long-polled: the time scale is too short", op.ID)
		}
		ops[i] = op
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var returned atomic.Int64
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func(op api.Operation) {
			defer wg.Done()
			_, _ = p.Client.PollOperation(pctx, op.ID, op.Revision, api.MaxWait)
			if pctx.Err() == nil {
				returned.Add(1)
			}
		}(op)
	}
	time.Sleep(time.Second) // let every poll reach the server and park
	before, err := p.requests(ctx)
	if err != nil {
		return err
	}
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(hold)
	cpu1, el := cpuTime(), time.Since(t0)
	f.HeldGoroutines = runtime.NumGoroutine()
	after, err := p.requests(ctx)
	if err != nil {
		return err
	}
	f.ReturnedEarly = returned.Load()
	cancel()
	wg.Wait()
	f.HeldSeconds = round(el.Seconds())
	f.HeldCPUPercent = round(100 * float64(cpu1-cpu0) / float64(el))
	f.HeldRequestsServed = sum(requestDelta(before, after))
	if f.ReturnedEarly > 0 {
		return fmt.Errorf("%d of %d long-polls returned while they should have been held", f.ReturnedEarly, n)
	}
	return nil
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
