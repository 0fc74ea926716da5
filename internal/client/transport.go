package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// attemptTransport wraps every single HTTP attempt (retries included): it applies the
// per-attempt timeout and writes the debug request/response lines with secrets redacted.
// It deliberately does not implement CloseIdleConnections (see New).
type attemptTransport struct {
	next           http.RoundTripper
	log            Logger
	defaultTimeout time.Duration
}

// redacted lists headers whose values never reach a log line.
var redacted = map[string]bool{
	http.CanonicalHeaderKey(api.KeyHeader): true,
	"Authorization":                        true,
	"Proxy-Authorization":                  true,
	"Cookie":                               true,
	"Set-Cookie":                           true,
}

const redactedValue = "[REDACTED]"

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	timeout := t.defaultTimeout
	attempt := int32(1)
	if st := callStateFrom(req.Context()); st != nil {
		timeout = st.timeout
		attempt = st.attempts.Add(1)
	}
	parent := req.Context()
	ctx, cancel := context.WithTimeout(parent, timeout)
	req = req.WithContext(ctx)

	if t.log != nil {
		t.log.Debug(ctx, "engine control API request", map[string]any{
			"method":  req.Method,
			"url":     req.URL.String(),
			"attempt": attempt,
			"headers": redactHeaders(req.Header),
		})
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		// Read the attempt's own deadline before cancel() marks its context done: only an
		// attempt that really ran out of time is a timeout, a refused connection is not.
		timedOut := ctx.Err() != nil && parent.Err() == nil
		cancel()
		if timedOut {
			err = &attemptTimeoutError{timeout: timeout, err: err}
		}
		if t.log != nil {
			t.log.Debug(ctx, "engine control API request failed", map[string]any{
				"method":      req.Method,
				"url":         req.URL.String(),
				"attempt":     attempt,
				"duration_ms": time.Since(start).Milliseconds(),
				"error":       err.Error(),
			})
		}
		return nil, err
	}
	if t.log != nil {
		t.log.Debug(ctx, "engine control API response", map[string]any{
			"method":      req.Method,
			"url":         req.URL.String(),
			"attempt":     attempt,
			"status":      resp.StatusCode,
			"duration_ms": time.Since(start).Milliseconds(),
			"headers":     redactHeaders(resp.Header),
		})
	}
	// The attempt's context must live until the body is read; closing the body ends it.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

func redactHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if redacted[http.CanonicalHeaderKey(k)] {
			out[k] = redactedValue
			continue
		}
		if len(v) == 1 {
			out[k] = v[0]
		} else {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// attemptTimeoutError names the setting that bounded a hung attempt.
type attemptTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("no answer within the per-request timeout of %s (request_timeout): %v", e.timeout, e.err)
}
func (e *attemptTimeoutError) Unwrap() error { return e.err }
func (e *attemptTimeoutError) Timeout() bool { return true }
