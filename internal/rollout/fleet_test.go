package rollout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func seedUsers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i+1)
	}
	return out
}

// The worker pool never runs more than its bound at once, and starts nothing after a failure.
func TestBoundedEach(t *testing.T) {
	users := seedUsers(200)
	var inFlight, peak, calls atomic.Int64
	_, err := boundedEach(context.Background(), 7, users, func(context.Context, string) error {
		calls.Add(1)
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		return nil
	})
	if err != nil || calls.Load() != 200 || peak.Load() > 7 || peak.Load() < 2 {
		t.Fatalf("err %v, %d calls, peak %d in flight (bound 7)", err, calls.Load(), peak.Load())
	}
	calls.Store(0)
	user, err := boundedEach(context.Background(), 3, users, func(_ context.Context, u string) error {
		calls.Add(1)
		if u == "user-0005" {
			return fmt.Errorf("boom")
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	if err == nil || user != "user-0005" || calls.Load() > 10 {
		t.Fatalf("after a failure: user %q, err %v, %d calls (want the pool to stop early)", user, err, calls.Load())
	}
}
