package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// waitPoll is how long each long-poll of WaitOperation asks the server to hold: under common
// proxy idle timeouts, and long enough that an idle wait costs about two requests a minute.
const waitPoll = 25 * time.Second

// minIdlePoll spaces out polls whose answer did not change yet came back early (a server
// ignoring wait), so a misbehaving server cannot turn a wait into a busy loop. Polls that
// bring a change are never delayed.
const minIdlePoll = 250 * time.Millisecond

// maxPollFailures is how many long-polls in a row may fail transiently (each after its own
// retries) before WaitOperation gives up: a wait survives a control-plane restart or a 429
// storm, but not an outage.
const maxPollFailures = 5

// GetOperation reads an operation once.
func (c *Client) GetOperation(ctx context.Context, id string) (api.Operation, error) {
	var out api.Operation
	if err := checkID("operation_id", id); err != nil {
		return out, err
	}
	err := c.do(ctx, request{method: http.MethodGet, path: operationPath(id)}, &out)
	return out, err
}

// PollOperation is one long-poll: the server answers as soon as the operation's revision
// moves past revision, or after wait (capped at api.MaxWait) with the operation unchanged.
// The attempt timeout is the request timeout plus wait.
func (c *Client) PollOperation(ctx context.Context, id string, revision int64, wait time.Duration) (api.Operation, error) {
	var out api.Operation
	if err := checkID("operation_id", id); err != nil {
		return out, err
	}
	wait = min(max(wait, 0), api.MaxWait)
	q := url.Values{"revision": {strconv.FormatInt(revision, 10)}}
	if wait > 0 {
		q.Set("wait", seconds(wait))
	}
	err := c.do(ctx, request{method: http.MethodGet, path: operationPath(id), query: q, wait: wait}, &out)
	return out, err
}

// WaitOperation follows an operation until it is Done or ctx ends, calling onChange (when not
// nil) with the first answer and with every new revision. It returns the final operation — a
// failed operation is not an error here; the caller reads op.Status and op.Error. On
// cancellation it returns the last operation seen and an error wrapping ctx.Err().
func (c *Client) WaitOperation(ctx context.Context, id string, onChange func(api.Operation)) (api.Operation, error) {
	op, err := c.GetOperation(ctx, id)
	if err != nil {
		return op, err
	}
	if onChange != nil {
		onChange(op)
	}
	failures := 0
	for !op.Done() {
		start := time.Now()
		next, err := c.PollOperation(ctx, id, op.Revision, waitPoll)
		if err != nil {
			failures++
			if ctx.Err() != nil || !transient(err) || failures >= maxPollFailures {
				return op, err
			}
			if err := Sleep(ctx, jitteredBackoff(c.cfg.RetryWaitMin, c.cfg.RetryWaitMax, failures)); err != nil {
				return op, fmt.Errorf("waiting for operation %s: %w", id, err)
			}
			continue
		}
		failures = 0
		if next.Revision == op.Revision && !next.Done() {
			if err := Sleep(ctx, minIdlePoll-time.Since(start)); err != nil {
				return op, fmt.Errorf("waiting for operation %s: %w", id, err)
			}
			continue
		}
		op = next
		if onChange != nil {
			onChange(op)
		}
	}
	return op, nil
}

// transient reports whether a failed call might succeed if made again later.
func transient(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusTooManyRequests || (e.StatusCode >= 500 && e.StatusCode != http.StatusNotImplemented)
	}
	return !isTLSError(err) && !errors.Is(err, context.Canceled)
}

// Sleep waits d or until ctx ends, whichever comes first, and returns ctx's error if it ended
// first (or was already done when d is not positive).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func operationPath(id string) string { return api.Base + "/operations/" + id }
