package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const testKey = "k3y-that-must-never-be-logged"

// reply is one canned answer of a fake control plane.
type reply struct {
	status     int
	body       any // encoded as JSON unless it is a string
	retryAfter string
}

// fake is a scripted control plane: it answers with replies in order (repeating the last) and
// records every request it saw.
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies []reply
	reqs    []seen
}

type seen struct {
	method, path, query string
	header              http.Header
	body                string
}

func newFake(t *testing.T, replies ...reply) *fake {
	t.Helper()
	f := &fake{t: t, replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)})
	rep := f.replies[min(n, len(f.replies)-1)]
	f.mu.Unlock()
	writeReply(w, rep)
}

func writeReply(w http.ResponseWriter, rep reply) {
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	if s, ok := rep.body.(string); ok {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, s)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_ = json.NewEncoder(w).Encode(rep.body)
	}
}

func (f *fake) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fake) req(i int) seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i]
}

func apiErr(status int, code, msg string) reply {
	return reply{status: status, body: api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}}}
}

func ok(body any) reply { return reply{status: http.StatusOK, body: body} }

// newTestClient builds a client with fast backoff so retry tests take milliseconds.
func newTestClient(t *testing.T, endpoint string, mutate ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoint:     endpoint,
		APIKey:       testKey,
		MaxRetries:   3,
		RetryWaitMin: 5 * time.Millisecond,
		RetryWaitMax: 20 * time.Millisecond,
		UserAgent:    "terraform-provider-engine/test Terraform/1.11.4",
	}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	return e
}

func TestNew_rejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty endpoint", Config{APIKey: "k"}, []string{"endpoint is empty", "ENGINE_ENDPOINT"}},
		{"no scheme", Config{Endpoint: "127.0.0.1:8470", APIKey: "k"}, []string{"127.0.0.1:8470", "http://"}},
		{"ftp", Config{Endpoint: "ftp://host", APIKey: "k"}, []string{"ftp://host", "http://"}},
		{"no host", Config{Endpoint: "http://", APIKey: "k"}, []string{"no host"}},
		{"query", Config{Endpoint: "http://h/?a=b", APIKey: "k"}, []string{"query"}},
		{"empty key", Config{Endpoint: "http://h"}, []string{"api_key", "ENGINE_API_KEY"}},
		{"key with newline", Config{Endpoint: "http://h", APIKey: "sekrit\n"}, []string{"trailing newline", "trimspace"}},
		{"bad CA", Config{Endpoint: "https://h", APIKey: "k", CACertPEM: []byte("not pem")}, []string{"ca_cert_pem", "BEGIN CERTIFICATE"}},
		{"negative retries", Config{Endpoint: "http://h", APIKey: "k", MaxRetries: -1}, []string{"max retries -1"}},
		{"negative timeout", Config{Endpoint: "http://h", APIKey: "k", RequestTimeout: -time.Second}, []string{"negative"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.cfg.APIKey != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.cfg.APIKey)) && len(tc.cfg.APIKey) > 1 {
				t.Errorf("error %q echoes the key", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNew_defaults(t *testing.T) {
	c := newTestClient(t, "http://h:1/prefix/", func(cfg *Config) { *cfg = Config{Endpoint: cfg.Endpoint, APIKey: "k"} })
	if c.cfg.MaxRetries != 0 || c.http.RetryMax != 0 || c.cfg.RequestTimeout != DefaultRequestTimeout ||
		c.cfg.MaxRetryAfter != DefaultMaxRetryAfter || c.cfg.MaxConnsPerHost != DefaultMaxConnsPerHost {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}
	if c.transport.MaxIdleConnsPerHost != 64 || c.transport.MaxConnsPerHost != 64 {
		t.Errorf("transport sized %d idle / %d total per host, want 64", c.transport.MaxIdleConnsPerHost, c.transport.MaxConnsPerHost)
	}
	if c.Endpoint() != "http://h:1/prefix" {
		t.Errorf("endpoint normalized to %q", c.Endpoint())
	}
	if c := newTestClient(t, "http://h:1", func(cfg *Config) { cfg.MaxRetries = DefaultMaxRetries }); c.http.RetryMax != 4 {
		t.Errorf("MaxRetries 4 gave RetryMax %d", c.http.RetryMax)
	}
}

func TestGetEngine_sendsHeadersAndDecodes(t *testing.T) {
	f := newFake(t, ok(api.Engine{UserID: "alice", EngineVersion: "2.3.1", SchemaVersion: 3, Generation: 7}))
	c := newTestClient(t, f.srv.URL+"/base")
	e, err := c.GetEngine(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if e.UserID != "alice" || e.EngineVersion != "2.3.1" || e.SchemaVersion != 3 || e.Generation != 7 {
		t.Errorf("decoded %+v", e)
	}
	r := f.req(0)
	if r.method != http.MethodGet || r.path != "/base/v1/engines/alice" {
		t.Errorf("request %s %s", r.method, r.path)
	}
	if got := r.header.Get(api.KeyHeader); got != testKey {
		t.Errorf("key header %q", got)
	}
	if got := r.header.Get("User-Agent"); got != "terraform-provider-engine/test Terraform/1.11.4" {
		t.Errorf("User-Agent %q", got)
	}
}

func TestErrors_typed(t *testing.T) {
	inProgress := reply{status: http.StatusConflict, body: api.ErrorBody{Error: api.ErrorDetail{
		Code: api.CodeOperationInProgress, Message: "engine alice is busy", OperationID: "op-42"}}}
	invalid := reply{status: http.StatusUnprocessableEntity, body: api.ErrorBody{Error: api.ErrorDetail{
		Code: api.CodeInvalidRequest, Message: "unknown version", Field: "version"}}}

	cases := []struct {
		name  string
		reply reply
		check func(t *testing.T, err error)
	}{
		{"404 engine", apiErr(404, api.CodeEngineNotFound, `engine "alice" not found`), func(t *testing.T, err error) {
			if !IsNotFound(err) || !HasCode(err, api.CodeEngineNotFound) {
				t.Errorf("want not found: %v", err)
			}
		}},
		{"404 unknown route", apiErr(404, api.CodeNotFound, "no route"), func(t *testing.T, err error) {
			if IsNotFound(err) {
				t.Error("an unknown route must not read as a missing engine")
			}
		}},
		{"404 html", reply{status: 404, body: "<html><body>Not Found</body></html>"}, func(t *testing.T, err error) {
			e := asError(t, err)
			if IsNotFound(err) || e.Code != "" || !strings.Contains(e.Message, "Not Found") {
				t.Errorf("non-JSON 404: %+v", e)
			}
		}},
		{"409 in progress", inProgress, func(t *testing.T, err error) {
			id, ok := OperationInProgress(err)
			if !ok || id != "op-42" {
				t.Errorf("OperationInProgress = %q, %v", id, ok)
			}
			if !strings.Contains(err.Error(), "op-42") {
				t.Errorf("message does not name the operation: %v", err)
			}
		}},
		{"412", apiErr(412, api.CodePreconditionFailed, "generation is 8"), func(t *testing.T, err error) {
			if !IsPreconditionFailed(err) || IsNotFound(err) {
				t.Errorf("want precondition failed: %v", err)
			}
		}},
		{"422 field", invalid, func(t *testing.T, err error) {
			e := asError(t, err)
			if e.Field != "version" || !strings.Contains(err.Error(), `field "version"`) {
				t.Errorf("field not carried: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.reply)
			c := newTestClient(t, f.srv.URL)
			_, err := c.GetEngine(context.Background(), "alice")
			if err == nil {
				t.Fatal("want an error")
			}
			e := asError(t, err)
			if e.StatusCode != tc.reply.status || e.Method != "GET" || e.Path != "/v1/engines/alice" {
				t.Errorf("error %+v", e)
			}
			if !strings.Contains(err.Error(), "GET /v1/engines/alice") {
				t.Errorf("message lacks method and path: %v", err)
			}
			if f.hits() != 1 {
				t.Errorf("a %d was sent %d times, want exactly once (4xx is never retried)", tc.reply.status, f.hits())
			}
			tc.check(t, err)
		})
	}
}

func TestNonJSONSuccess_namesTheEndpoint(t *testing.T) {
	f := newFake(t, reply{status: 200, body: "<html>a router login page</html>"})
	_, err := newTestClient(t, f.srv.URL).GetEngine(context.Background(), "alice")
	if err == nil || !strings.Contains(err.Error(), f.srv.URL) || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Errorf("a 200 that is not JSON: %v", err)
	}
}

func TestInvalidKey_oneClearErrorFast(t *testing.T) {
	f := newFake(t, apiErr(401, api.CodeInvalidKey, "invalid admin key"))
	c := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.MaxRetries = 10; cfg.RetryWaitMin = time.Second })
	start := time.Now()
	_, err := c.AllEngines(context.Background(), ListEnginesOptions{})
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("took %s: a wrong key must fail fast", time.Since(start))
	}
	if f.hits() != 1 {
		t.Errorf("%d requests, want exactly 1", f.hits())
	}
	if !IsInvalidKey(err) {
		t.Fatalf("want invalid key, got %v", err)
	}
	msg := err.Error()
	for _, w := range []string{"rejected the API key", "api_key", "ENGINE_API_KEY", "GET /v1/engines", "INVALID_KEY"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if strings.Contains(msg, testKey) {
		t.Error("the error message leaks the key")
	}
}

func TestRetry_429WithoutRetryAfter(t *testing.T) {
	f := newFake(t, apiErr(429, api.CodeRateLimited, "slow down"), apiErr(429, api.CodeRateLimited, "slow down"), ok(api.Engine{UserID: "alice"}))
	c := newTestClient(t, f.srv.URL)
	e, err := c.GetEngine(context.Background(), "alice")
	if err != nil || e.UserID != "alice" {
		t.Fatalf("got %+v, %v", e, err)
	}
	if f.hits() != 3 {
		t.Errorf("%d requests, want 3", f.hits())
	}
}

func TestRetry_429RetryAfterHonoured(t *testing.T) {
	rl := apiErr(429, api.CodeRateLimited, "slow down")
	rl.retryAfter = "1"
	f := newFake(t, rl, ok(api.Engine{UserID: "alice"}))
	c := newTestClient(t, f.srv.URL)
	start := time.Now()
	if _, err := c.GetEngine(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	// The backoff alone would wait at most 20ms: only Retry-After explains a second.
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Errorf("retried after %s, want about the 1s Retry-After", d)
	}
	if f.hits() != 2 {
		t.Errorf("%d requests, want 2", f.hits())
	}
}

func TestRetry_429RetryAfterCapped(t *testing.T) {
	rl := apiErr(429, api.CodeRateLimited, "slow down")
	rl.retryAfter = "3600"
	f := newFake(t, rl, ok(api.Engine{UserID: "alice"}))
	c := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.MaxRetryAfter = 300 * time.Millisecond })
	start := time.Now()
	if _, err := c.GetEngine(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("retried after %s, want the 300ms cap rather than an hour", d)
	}

	// The production cap is 60s, whatever the server asks, in both Retry-After forms.
	def := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.MaxRetryAfter = 0 })
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3600"}}}
	if got := def.backoff(def.cfg.RetryWaitMin, def.cfg.RetryWaitMax, 0, resp); got != 60*time.Second {
		t.Errorf("Retry-After 3600 waits %s, want 60s", got)
	}
	resp.Header.Set("Retry-After", time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat))
	if got := def.backoff(def.cfg.RetryWaitMin, def.cfg.RetryWaitMax, 0, resp); got != 60*time.Second {
		t.Errorf("Retry-After date in 2h waits %s, want 60s", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{"99999999999999999", time.Minute, true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.in, now, time.Minute)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetry_429RetryAfterBeyondDeadline(t *testing.T) {
	rl := apiErr(429, api.CodeRateLimited, "slow down")
	rl.retryAfter = "30"
	f := newFake(t, rl, ok(api.Engine{}))
	c := newTestClient(t, f.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetEngine(ctx, "alice")
	if time.Since(start) > 300*time.Millisecond {
		t.Errorf("waited %s for a Retry-After the deadline cannot honour", time.Since(start))
	}
	if !IsRateLimited(err) || asError(t, err).RetryAfter != 30*time.Second {
		t.Errorf("want a rate-limit error carrying Retry-After 30s, got %v", err)
	}
	if f.hits() != 1 {
		t.Errorf("%d requests, want 1", f.hits())
	}
}

func TestRetry_5xxThenSuccess(t *testing.T) {
	f := newFake(t, apiErr(500, api.CodeInternal, "boom"), reply{status: 502, body: "<html>bad gateway</html>"}, apiErr(503, api.CodeEngineUnavailable, "later"), ok(api.VersionList{Versions: []api.Version{{Version: "2.3.1"}}}))
	c := newTestClient(t, f.srv.URL)
	vs, err := c.Versions(context.Background())
	if err != nil || len(vs) != 1 || vs[0].Version != "2.3.1" {
		t.Fatalf("got %+v, %v", vs, err)
	}
	if f.hits() != 4 {
		t.Errorf("%d requests, want 4", f.hits())
	}
}

func TestRetry_5xxForeverIsBounded(t *testing.T) {
	f := newFake(t, reply{status: 502, body: "<html><h1>502 Bad Gateway</h1></html>"})
	c := newTestClient(t, f.srv.URL)
	start := time.Now()
	_, err := c.Versions(context.Background())
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	if f.hits() != 4 {
		t.Errorf("%d requests, want 1 + MaxRetries(3)", f.hits())
	}
	none := newFake(t, apiErr(503, api.CodeEngineUnavailable, "later"))
	if _, err := newTestClient(t, none.srv.URL, func(cfg *Config) { cfg.MaxRetries = 0 }).Versions(context.Background()); err == nil || none.hits() != 1 {
		t.Errorf("MaxRetries 0: %d requests, err %v; want exactly 1", none.hits(), err)
	}
	e := asError(t, err)
	if e.StatusCode != 502 || !strings.Contains(e.Message, "502 Bad Gateway") || !strings.Contains(err.Error(), "GET /v1/versions") {
		t.Errorf("final error %v", err)
	}
}

func TestRetry_notForNonIdempotentWrites(t *testing.T) {
	calls := map[string]func(c *Client) error{
		"POST turns": func(c *Client) error {
			_, err := c.WriteTurns(context.Background(), "alice", api.TurnsRequest{Count: 3})
			return err
		},
		"POST upgrade without key": func(c *Client) error {
			_, err := c.Upgrade(context.Background(), "alice", "", 0, api.UpgradeRequest{Version: "2.4.0"})
			return err
		},
		"POST faults": func(c *Client) error {
			_, err := c.AddFault(context.Background(), api.Fault{Kind: api.FaultServerError})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, apiErr(503, api.CodeEngineUnavailable, "later"), ok(map[string]any{}))
			c := newTestClient(t, f.srv.URL)
			if err := call(c); asError(t, err).StatusCode != 503 {
				t.Errorf("want the 503, got %v", err)
			}
			if f.hits() != 1 {
				t.Errorf("server saw %d requests, want exactly 1", f.hits())
			}
			if f.req(0).header.Get(api.IdempotencyHeader) != "" {
				t.Error("an Idempotency-Key was sent although none was given")
			}
		})
	}
	t.Run("connection dropped", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			hj, _ := w.(http.Hijacker)
			conn, _, err := hj.Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}))
		defer srv.Close()
		c := newTestClient(t, srv.URL)
		_, err := c.WriteTurns(context.Background(), "alice", api.TurnsRequest{Count: 1})
		if err == nil || hits.Load() != 1 {
			t.Errorf("hits %d, err %v: a dropped non-idempotent POST must not be resent", hits.Load(), err)
		}
	})
}

func TestRetry_idempotentWrites(t *testing.T) {
	op := api.Operation{ID: "op-1", Kind: api.OpSnapshot, Status: api.OpPending, Revision: 1}
	f := newFake(t, apiErr(503, api.CodeEngineUnavailable, "later"), apiErr(500, api.CodeInternal, "boom"), reply{status: http.StatusAccepted, body: op})
	c := newTestClient(t, f.srv.URL)
	key := NewIdempotencyKey()
	got, err := c.CreateSnapshot(context.Background(), "alice", key, api.CreateSnapshotRequest{Description: "before 2.4.0", RetentionDays: 7})
	if err != nil || got.ID != "op-1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if f.hits() != 3 {
		t.Fatalf("%d requests, want 3", f.hits())
	}
	for i := range 3 {
		r := f.req(i)
		if r.method != "POST" || r.path != "/v1/engines/alice/snapshots" || r.header.Get(api.IdempotencyHeader) != key {
			t.Errorf("attempt %d: %s %s key %q", i, r.method, r.path, r.header.Get(api.IdempotencyHeader))
		}
		if r.body != `{"description":"before 2.4.0","retention_days":7}` {
			t.Errorf("attempt %d resent body %q", i, r.body)
		}
	}

	// A snapshot PATCH sets absolute values: sent twice, it has the effect of once.
	d := "kept"
	patch := newFake(t, apiErr(429, api.CodeRateLimited, "slow down"), apiErr(503, api.CodeEngineUnavailable, "later"), ok(api.Snapshot{ID: "snap-1", Description: d}))
	if s, err := newTestClient(t, patch.srv.URL).UpdateSnapshot(context.Background(), "snap-1", api.UpdateSnapshotRequest{Description: &d}); err != nil || s.Description != d {
		t.Fatalf("PATCH: %+v, %v", s, err)
	}
	if patch.hits() != 3 || patch.req(2).method != "PATCH" || patch.req(2).body != `{"description":"kept"}` {
		t.Errorf("PATCH: %d hits, last %+v", patch.hits(), patch.req(patch.hits()-1))
	}

	del := newFake(t, apiErr(502, api.CodeInternal, "boom"), reply{status: http.StatusNoContent})
	if err := newTestClient(t, del.srv.URL).DeleteSnapshot(context.Background(), "snap-1", true); err != nil {
		t.Fatal(err)
	}
	if del.hits() != 2 || del.req(1).method != "DELETE" || del.req(1).query != "force=true" {
		t.Errorf("DELETE: %d hits, last %+v", del.hits(), del.req(del.hits()-1))
	}
}

func TestUpgrade_headers(t *testing.T) {
	f := newFake(t, reply{status: http.StatusAccepted, body: api.Operation{ID: "op-9", Kind: api.OpUpgrade}})
	c := newTestClient(t, f.srv.URL)
	op, err := c.Upgrade(context.Background(), "alice", "key-1", 12, api.UpgradeRequest{Version: "2.4.0", SnapshotID: "snap-1"})
	if err != nil || op.ID != "op-9" {
		t.Fatalf("got %+v, %v", op, err)
	}
	r := f.req(0)
	if r.path != "/v1/engines/alice/upgrade" || r.header.Get("If-Match") != `"12"` || r.header.Get(api.IdempotencyHeader) != "key-1" {
		t.Errorf("request %s If-Match %q key %q", r.path, r.header.Get("If-Match"), r.header.Get(api.IdempotencyHeader))
	}
	if r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.body, `"snapshot_id":"snap-1"`) {
		t.Errorf("body %q", r.body)
	}
	if _, err := c.Restore(context.Background(), "alice", "key-2", 0, api.RestoreRequest{SnapshotID: "snap-1", Version: "2.3.1"}); err != nil {
		t.Fatal(err)
	}
	if r := f.req(1); r.path != "/v1/engines/alice/restore" || r.header.Get("If-Match") != "" {
		t.Errorf("restore sent %s with If-Match %q", r.path, r.header.Get("If-Match"))
	}
}

func TestBadInput_sendsNothing(t *testing.T) {
	f := newFake(t, ok(map[string]any{}))
	c := newTestClient(t, f.srv.URL)
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["user_id"] = c.GetEngine(ctx, "../../v1/faults")
	_, errs["snapshot_id"] = c.GetSnapshot(ctx, "")
	_, errs["operation_id"] = c.GetOperation(ctx, "op 1")
	_, errs["version"] = c.Upgrade(ctx, "alice", "k", 0, api.UpgradeRequest{})
	_, errs["suite"] = c.RunEval(ctx, "alice", "k", api.EvalRequest{})
	_, errs["to"] = c.UpgradePath(ctx, "2.3.1", "")
	for field, err := range errs {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
	if f.hits() != 0 {
		t.Errorf("bad input reached the server %d times", f.hits())
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := newTestClient(t, "http://"+addr, func(cfg *Config) { cfg.MaxRetries = 2 })
	start := time.Now()
	_, err = c.Health(context.Background())
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("want ECONNREFUSED in the chain, got %v", err)
	}
	for _, w := range []string{"GET /health", addr, "after 3 attempts", "ENGINE_ENDPOINT"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

func TestTLS_customCA(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeReply(w, ok(api.ServiceHealth{Status: "ok", Engines: 3}))
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	h, err := newTestClient(t, srv.URL, func(cfg *Config) { cfg.CACertPEM = caPEM }).Health(context.Background())
	if err != nil || h.Engines != 3 {
		t.Fatalf("with the CA: %+v, %v", h, err)
	}

	_, err = newTestClient(t, srv.URL).Health(context.Background())
	if err == nil || !isTLSError(err) {
		t.Fatalf("without the CA: want a certificate error, got %v", err)
	}
	if !strings.Contains(err.Error(), "after 1 attempt") || !strings.Contains(err.Error(), "ca_cert_pem") {
		t.Errorf("error should say it was not retried and how to trust the CA: %v", err)
	}

	if _, err := newTestClient(t, srv.URL, func(cfg *Config) { cfg.InsecureSkipVerify = true }).Health(context.Background()); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
	if hits.Load() != 2 {
		t.Errorf("server handled %d requests, want 2 (the untrusted one must never get through)", hits.Load())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/engines/alice", http.StatusFound))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).GetEngine(context.Background(), "alice")
	if elsewhere.Load() != 0 {
		t.Error("the client followed a redirect and sent the key to another host")
	}
	if e := asError(t, err); e.StatusCode != 302 || !strings.Contains(e.Message, other.URL) {
		t.Errorf("redirect error %v", err)
	}
}

func TestRequestTimeout_perAttemptAndLongPoll(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		writeReply(w, ok(api.Operation{ID: "op-1", Revision: 2}))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.RequestTimeout = 100 * time.Millisecond; cfg.MaxRetries = 1 })

	start := time.Now()
	_, err := c.GetOperation(context.Background(), "op-1")
	if err == nil || !strings.Contains(err.Error(), "request_timeout") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("a hung GET: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("two 100ms attempts took %s", d)
	}

	// A long-poll's attempt may last its wait on top of the request timeout.
	op, err := c.PollOperation(context.Background(), "op-1", 1, time.Second)
	if err != nil || op.Revision != 2 {
		t.Errorf("long-poll: %+v, %v", op, err)
	}
}

func TestAllEngines_pages(t *testing.T) {
	var queries []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		q := r.URL.Query()
		next := map[string]string{"": "p2", "p2": "p3", "p3": ""}[q.Get("page_token")]
		page := api.EngineList{NextPageToken: next}
		for i := range 2 {
			page.Engines = append(page.Engines, api.Engine{UserID: fmt.Sprintf("u-%s-%d", q.Get("page_token"), i)})
		}
		writeReply(w, ok(page))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	all, err := c.AllEngines(context.Background(), ListEnginesOptions{Status: "running", UserIDPrefix: "u-", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || all[0].UserID != "u--0" || all[5].UserID != "u-p3-1" {
		t.Errorf("got %d engines: %+v", len(all), all)
	}
	want := []string{"limit=2&status=running&user_id_prefix=u-", "limit=2&page_token=p2&status=running&user_id_prefix=u-", "limit=2&page_token=p3&status=running&user_id_prefix=u-"}
	if fmt.Sprint(queries) != fmt.Sprint(want) {
		t.Errorf("queries %q, want %q", queries, want)
	}

	loop := newFake(t, ok(api.EngineList{Engines: []api.Engine{{UserID: "a"}}, NextPageToken: "same"}))
	if _, err := newTestClient(t, loop.srv.URL).AllEngines(context.Background(), ListEnginesOptions{}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a repeating page token: %v", err)
	}
}

// recLogger records every line so tests can prove what reached the logs.
type recLogger struct {
	mu    sync.Mutex
	lines []string
	items []map[string]any
}

func (l *recLogger) Debug(_ context.Context, msg string, fields map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %v", msg, fields))
	l.items = append(l.items, fields)
}

func TestLogging_redactsKey(t *testing.T) {
	f := newFake(t, apiErr(503, api.CodeEngineUnavailable, "later"), ok(api.Engine{UserID: "alice"}), apiErr(401, api.CodeInvalidKey, "bad key"))
	log := &recLogger{}
	c := newTestClient(t, f.srv.URL, func(cfg *Config) { cfg.Logger = log })
	if _, err := c.GetEngine(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetEngine(context.Background(), "alice")
	if strings.Contains(err.Error(), testKey) {
		t.Error("error leaks the key")
	}
	if len(log.lines) != 6 {
		t.Errorf("want a request and a response line for each of 3 attempts, got %d:\n%s", len(log.lines), strings.Join(log.lines, "\n"))
	}
	redactedSeen := false
	for i, line := range log.lines {
		if strings.Contains(line, testKey) {
			t.Errorf("log line %d leaks the key: %s", i, line)
		}
		if h, ok := log.items[i]["headers"].(map[string]string); ok && h[api.KeyHeader] == redactedValue {
			redactedSeen = true
		}
	}
	if !redactedSeen {
		t.Error("no request line showed the key header as redacted")
	}
	if log.items[2]["attempt"] != int32(2) || log.items[3]["status"] != 200 {
		t.Errorf("the retry is not visible in the logs: %v / %v", log.items[2], log.items[3])
	}
}

func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		writeReply(w, ok(api.Engine{UserID: "alice"}))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	const parallel, rounds = 20, 5
	load := func(c *Client) int32 {
		conns.Store(0)
		for range rounds {
			var wg sync.WaitGroup
			for range parallel {
				wg.Go(func() {
					if _, err := c.GetEngine(context.Background(), "alice"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		c.Close()
		return conns.Load()
	}
	if n := load(newTestClient(t, srv.URL)); n > parallel {
		t.Errorf("%d connections for %d requests at %d parallel: idle connections are not reused", n, parallel*rounds, parallel)
	}
	// Control: net/http's default of 2 idle connections per host reconnects every round,
	// which is what the check above would catch.
	small := newTestClient(t, srv.URL)
	small.transport.MaxIdleConnsPerHost = 2
	if n := load(small); n <= 2*parallel {
		t.Errorf("control: only %d connections with 2 idle per host; the reuse check cannot tell", n)
	}
}

func TestNewIdempotencyKey(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seenKeys := map[string]bool{}
	for range 1000 {
		k := NewIdempotencyKey()
		if !re.MatchString(k) || seenKeys[k] {
			t.Fatalf("key %q is malformed or repeated", k)
		}
		seenKeys[k] = true
	}
}

// TestTransportErrors_sayWhatHappened: a closed port, an unknown host, an untrusted certificate
// and a hung server each read as what happened, with the endpoint; only the last one mentions
// the per-request timeout.
func TestTransportErrors_sayWhatHappened(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, ok(api.ServiceHealth{Status: "ok"}))
	}))
	defer tlsSrv.Close()
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hung.Close()

	cases := []struct {
		name, endpoint string
		want           []string
	}{
		{"closed port", closed, []string{"nothing accepts connections at " + closed, "connection refused"}},
		{"unknown host", "http://no-such-host.invalid:8470", []string{`host name "no-such-host.invalid"`, "http://no-such-host.invalid:8470", "could not be resolved"}},
		{"untrusted certificate", tlsSrv.URL, []string{"TLS handshake with the control plane at " + tlsSrv.URL, "certificate", "ca_cert_pem"}},
		{"hung server", hung.URL, []string{"control plane at " + hung.URL + " did not answer in time", "per-request timeout of 200ms", "request_timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, tc.endpoint, func(cfg *Config) { cfg.MaxRetries = 0; cfg.RequestTimeout = 200 * time.Millisecond })
			_, err := c.Health(context.Background())
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.name != "hung server" && strings.Contains(err.Error(), "timeout") {
				t.Errorf("error %q blames a timeout", err)
			}
		})
	}
}

// TestNew_endpointCredentialsRedacted: an endpoint with user information is refused without
// echoing the password, whichever check refuses it.
func TestNew_endpointCredentialsRedacted(t *testing.T) {
	for _, raw := range []string{
		"https://admin:hunter2pass@engine.example.com",
		"https://admin:hunter2pass@engine.example.com:99999999",
		"ftp://admin:hunter2pass@engine.example.com",
		"https://admin:hunter2pass@engine.example.com/%zz",
		"admin:hunter2pass@engine.example.com",
	} {
		_, err := New(Config{Endpoint: raw, APIKey: "k"})
		if err == nil {
			t.Fatalf("%s: want an error", raw)
		}
		if strings.Contains(err.Error(), "hunter2pass") || !strings.Contains(err.Error(), "[REDACTED]@engine.example.com") {
			t.Errorf("%s: error %q must name the endpoint with the credentials redacted", raw, err)
		}
	}
	if got := RedactURL("http://127.0.0.1:8470/prefix"); got != "http://127.0.0.1:8470/prefix" {
		t.Errorf("RedactURL changed a URL without credentials: %s", got)
	}
}
