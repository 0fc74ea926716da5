package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// callState travels in a request's context so the retry policy, which retryablehttp calls
// without the request, knows whether this request may be repeated, and so the transport
// knows its per-attempt timeout and counts attempts.
type callState struct {
	retryable bool
	timeout   time.Duration
	attempts  atomic.Int32
}

type callStateKey struct{}

func withCallState(ctx context.Context, st *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, st)
}

func callStateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	return st
}

// checkRetry is the retryablehttp policy: connection errors, 429 and 5xx are retried, but
// only for requests that are safe to repeat (see request.retryable). Cancellation, TLS
// mismatches and every other status end the call at once.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	st := callStateFrom(ctx)
	if st == nil || !st.retryable {
		return false, nil
	}
	if err != nil {
		return !isTLSError(err), nil
	}
	if resp.StatusCode != http.StatusTooManyRequests && (resp.StatusCode < 500 || resp.StatusCode == http.StatusNotImplemented) {
		return false, nil
	}
	// A Retry-After beyond the caller's deadline cannot be honoured: hand back the answer
	// now, as a typed rate-limit error, instead of sleeping into a bare deadline error.
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), c.cfg.MaxRetryAfter); ok {
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) < d {
			return false, nil
		}
	}
	return true, nil
}

// backoff is the retryablehttp wait: the server's Retry-After when it sent one (capped at
// MaxRetryAfter), otherwise exponential backoff with equal jitter between minWait and
// maxWait, so many clients retrying together spread out.
func (c *Client) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), c.cfg.MaxRetryAfter); ok {
			return max(d, minWait)
		}
	}
	return jitteredBackoff(minWait, maxWait, attempt)
}

func jitteredBackoff(minWait, maxWait time.Duration, attempt int) time.Duration {
	d := minWait
	for i := 0; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return half + rand.N(half+1)
}
