package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// opServer is a fake control plane holding one operation and answering long-polls the way
// the API specifies: at once when the revision is past the caller's, else when it changes
// or the wait runs out.
type opServer struct {
	mu      sync.Mutex
	op      api.Operation
	changed chan struct{} // closed (and replaced) on every change
	polls   atomic.Int32
	// failFirst answers the first n long-polls with a 503.
	failFirst int32
	// ignoreWait answers every poll at once, like a server that does not long-poll.
	ignoreWait bool
	srv        *httptest.Server
}

func newOpServer(t *testing.T) *opServer {
	s := &opServer{
		op:      api.Operation{ID: "op-1", Kind: api.OpUpgrade, UserID: "alice", Status: api.OpRunning, Revision: 1},
		changed: make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *opServer) advance(status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.op.Revision++
	s.op.Status = status
	s.op.Steps = append(s.op.Steps, api.Step{Name: "step" + strconv.FormatInt(s.op.Revision, 10), Status: status})
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *opServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/operations/op-1" {
		writeReply(w, apiErr(404, api.CodeOperationNotFound, "no such operation"))
		return
	}
	q := r.URL.Query()
	if q.Get("wait") == "" {
		s.mu.Lock()
		op := s.op
		s.mu.Unlock()
		writeReply(w, ok(op))
		return
	}
	if n := s.polls.Add(1); n <= s.failFirst {
		writeReply(w, apiErr(503, api.CodeEngineUnavailable, "restarting"))
		return
	}
	rev, _ := strconv.ParseInt(q.Get("revision"), 10, 64)
	wait, _ := time.ParseDuration(q.Get("wait"))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		op, ch := s.op, s.changed
		s.mu.Unlock()
		if op.Revision > rev || s.ignoreWait {
			writeReply(w, ok(op))
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			writeReply(w, ok(op))
			return
		case <-r.Context().Done():
			return
		}
	}
}

type change struct {
	op api.Operation
	at time.Time
}

// startWait runs WaitOperation in the background, reporting each onChange and the result.
func startWait(ctx context.Context, c *Client) (<-chan change, <-chan error, *api.Operation) {
	changes := make(chan change, 16)
	done := make(chan error, 1)
	var final api.Operation
	go func() {
		op, err := c.WaitOperation(ctx, "op-1", func(op api.Operation) { changes <- change{op, time.Now()} })
		final = op
		done <- err
	}()
	return changes, done, &final
}

func TestPollOperation_query(t *testing.T) {
	f := newFake(t, ok(api.Operation{ID: "op-1", Revision: 5}))
	c := newTestClient(t, f.srv.URL)
	if _, err := c.PollOperation(context.Background(), "op-1", 4, 25*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PollOperation(context.Background(), "op-1", 4, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if q := f.req(0).query; q != "revision=4&wait=25s" {
		t.Errorf("query %q", q)
	}
	if q := f.req(1).query; q != "revision=4&wait=60s" {
		t.Errorf("a 10m wait was not capped at api.MaxWait: %q", q)
	}
}

func TestWaitOperation_returnsPromptlyOnChange(t *testing.T) {
	s := newOpServer(t)
	c := newTestClient(t, s.srv.URL)
	changes, done, final := startWait(context.Background(), c)

	first := <-changes
	if first.op.Revision != 1 || first.op.Status != api.OpRunning {
		t.Fatalf("first onChange %+v", first.op)
	}
	for i, status := range []string{api.OpRunning, api.OpRunning, api.OpSucceeded} {
		time.Sleep(50 * time.Millisecond) // let the client park in its long-poll
		changedAt := time.Now()
		s.advance(status)
		select {
		case ch := <-changes:
			lag := ch.at.Sub(changedAt)
			t.Logf("change %d noticed after %s", i, lag)
			if lag > 100*time.Millisecond {
				t.Errorf("change %d noticed after %s, want < 100ms", i, lag)
			}
			if ch.op.Revision != int64(i+2) || ch.op.Status != status {
				t.Errorf("change %d: %+v", i, ch.op)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("change %d never reported", i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if final.Status != api.OpSucceeded || final.Revision != 4 || len(final.Steps) != 3 {
		t.Errorf("final %+v", *final)
	}
	// One long-poll per change: no polling in between.
	if n := s.polls.Load(); n != 3 {
		t.Errorf("%d long-polls for 3 changes", n)
	}
}

func TestWaitOperation_returnsPromptlyOnCancel(t *testing.T) {
	s := newOpServer(t)
	c := newTestClient(t, s.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	changes, done, final := startWait(ctx, c)
	<-changes
	time.Sleep(100 * time.Millisecond) // parked in a 25s long-poll
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		lag := time.Since(cancelled)
		t.Logf("returned %s after cancel", lag)
		if lag > 100*time.Millisecond {
			t.Errorf("returned %s after cancel, want < 100ms", lag)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("want context.Canceled, got %v", err)
		}
		if final.ID != "op-1" || final.Revision != 1 {
			t.Errorf("want the last operation seen, got %+v", *final)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitOperation ignored the cancel")
	}
}

func TestWaitOperation_survivesTransientFailures(t *testing.T) {
	s := newOpServer(t)
	s.failFirst = 6 // more than one PollOperation's 1 + 3 retries
	c := newTestClient(t, s.srv.URL)
	changes, done, final := startWait(context.Background(), c)
	<-changes
	go func() {
		for s.polls.Load() < 7 {
			time.Sleep(5 * time.Millisecond)
		}
		s.advance(api.OpSucceeded)
	}()
	select {
	case err := <-done:
		if err != nil || final.Status != api.OpSucceeded {
			t.Errorf("got %+v, %v", *final, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait never finished")
	}
}

func TestWaitOperation_givesUpOnOutage(t *testing.T) {
	s := newOpServer(t)
	s.failFirst = 1 << 30
	c := newTestClient(t, s.srv.URL, func(cfg *Config) { cfg.MaxRetries = 1 })
	_, err := c.WaitOperation(context.Background(), "op-1", nil)
	if e := asError(t, err); e.StatusCode != 503 {
		t.Errorf("want the 503, got %v", err)
	}
	if n := s.polls.Load(); n != maxPollFailures*2 {
		t.Errorf("%d polls, want %d (bounded)", n, maxPollFailures*2)
	}
}

func TestWaitOperation_noBusyLoopWhenServerIgnoresWait(t *testing.T) {
	s := newOpServer(t)
	s.ignoreWait = true
	c := newTestClient(t, s.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	_, err := c.WaitOperation(ctx, "op-1", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want the deadline, got %v", err)
	}
	if n := s.polls.Load(); n > 4 {
		t.Errorf("%d polls in 600ms against a server that ignores wait", n)
	}
}

func TestWaitOperation_notFound(t *testing.T) {
	s := newOpServer(t)
	c := newTestClient(t, s.srv.URL)
	_, err := c.WaitOperation(context.Background(), "op-404", nil)
	if !IsNotFound(err) || !strings.Contains(err.Error(), "/v1/operations/op-404") {
		t.Errorf("want a not-found error naming the operation, got %v", err)
	}
}
