package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// fuzzKey is the API key of the fuzzed client: no response, however hostile, may make an error
// carry it (errors become Terraform diagnostics).
const fuzzKey = "fuzz-admin-key-5e1d0c"

// FuzzResponseDecoding serves arbitrary responses (status, body, Retry-After, Content-Type) to
// every kind of call the client decodes, and checks the outcome is always one of two things: a
// decoded value for a 2xx whose body is the expected JSON, or an error: an *Error carrying the
// status for a non-2xx. Never a panic, never a retry loop past MaxRetries, never the key in an
// error.
func FuzzResponseDecoding(f *testing.F) {
	f.Add(uint16(200), []byte(`{"user_id":"alice","engine_version":"2.3.1","status":"running","generation":3}`), "", "application/json")
	f.Add(uint16(404), []byte(`{"error":{"code":"ENGINE_NOT_FOUND","message":"no engine for alice","field":"user_id"}}`), "", "application/json")
	f.Add(uint16(429), []byte(`{"error":{"code":"RATE_LIMITED","message":"slow down"}}`), "7", "application/json")
	f.Add(uint16(429), []byte(``), "Wed, 21 Oct 2015 07:28:00 GMT", "")
	f.Add(uint16(503), []byte(`<html>Bad gateway</html>`), "99999999999999999999", "text/html")
	f.Add(uint16(500), []byte(`echo: X-Engine-Admin-Key: `+fuzzKey), "", "text/plain")
	f.Add(uint16(409), []byte(`{"error":{"code":"OPERATION_IN_PROGRESS","message":"busy `+fuzzKey+`","operation_id":"op-1"}}`), "", "application/json")
	f.Add(uint16(302), []byte(``), "", "")
	f.Add(uint16(200), []byte(`{"versions":[{"version":"2.3.1","schema_version":4}]}`), "", "application/json")
	f.Add(uint16(200), []byte(`{"engines":null,"next_page_token":"\u0000"}`), "", "application/json")
	f.Add(uint16(200), []byte(`[1,2,3]`), "", "application/json")
	f.Add(uint16(204), []byte(`{}`), "", "")
	f.Add(uint16(200), []byte(`{"id":"op-1","status":"succeeded","steps":[{"name":"drain"}],"revision":-1}`), "", "application/json")
	f.Add(uint16(418), []byte("\xff\xfe\x00{\"error\":"), "-3", "application/json")

	var mu sync.Mutex
	var cur struct {
		status      int
		body        []byte
		retryAfter  string
		contentType string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := cur
		mu.Unlock()
		if c.retryAfter != "" {
			w.Header().Set("Retry-After", c.retryAfter)
		}
		if c.contentType != "" {
			w.Header().Set("Content-Type", c.contentType)
		}
		if c.status >= 300 && c.status < 400 {
			w.Header().Set("Location", "http://elsewhere.example/v1/engines")
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body)
	}))
	f.Cleanup(srv.Close)
	c, err := New(Config{Endpoint: srv.URL, APIKey: fuzzKey, RequestTimeout: 5 * time.Second, MaxRetries: 1,
		RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, MaxRetryAfter: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) (any, error){
		"GetEngine":    func(ctx context.Context) (any, error) { return c.GetEngine(ctx, "alice") },
		"ListEngines":  func(ctx context.Context) (any, error) { return c.ListEngines(ctx, ListEnginesOptions{}) },
		"Versions":     func(ctx context.Context) (any, error) { return c.Versions(ctx) },
		"GetOperation": func(ctx context.Context) (any, error) { return c.GetOperation(ctx, "op-1") },
		"Upgrade": func(ctx context.Context) (any, error) {
			return c.Upgrade(ctx, "alice", "fuzz-key", 3, api.UpgradeRequest{Version: "2.4.0"})
		},
		"Stats":      func(ctx context.Context) (any, error) { return c.Stats(ctx) },
		"DeleteSnap": func(ctx context.Context) (any, error) { return nil, c.DeleteSnapshot(ctx, "snap-1", false) },
	}

	f.Fuzz(func(t *testing.T, status uint16, body []byte, retryAfter, contentType string) {
		st := int(status) // 200..599: the statuses a server can send as a final answer
		if st < 200 || st > 599 {
			st = 200 + st%400
		}
		clean := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return -1
				}
				return r
			}, s)
		}
		mu.Lock()
		cur.status, cur.body, cur.retryAfter, cur.contentType = st, body, clean(retryAfter), clean(contentType)
		mu.Unlock()
		for name, call := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := call(ctx)
			cancel()
			if st >= 300 {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("%s: status %d gave %v (%T), want an *Error", name, st, err, err)
				}
				if e.StatusCode != st {
					t.Fatalf("%s: *Error has status %d, want %d", name, e.StatusCode, st)
				}
				if e.RetryAfter < 0 || e.RetryAfter > time.Millisecond {
					t.Fatalf("%s: RetryAfter %s outside [0, MaxRetryAfter]", name, e.RetryAfter)
				}
			}
			if err != nil {
				if strings.Contains(err.Error(), fuzzKey) {
					t.Fatalf("%s: the error carries the API key: %v", name, err)
				}
				if strings.TrimSpace(err.Error()) == "" {
					t.Fatalf("%s: an empty error message", name)
				}
			}
		}
	})
}
