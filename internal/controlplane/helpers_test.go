package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const testKey = "test-admin-key"

// env is one control plane under test with a client whose every exchange is checked against
// the OpenAPI document (see contract_test.go).
type env struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	c   *http.Client
	dir string
}

type envOption func(*Options)

func withFaults(o *Options) { o.EnableFaults = true }
func withSeed(n int, v string) envOption {
	return func(o *Options) { o.SeedEngines, o.SeedVersion = n, v }
}
func withDir(dir string) envOption           { return func(o *Options) { o.DataDir = dir } }
func withTimeScale(f float64) envOption      { return func(o *Options) { o.TimeScale = f } }
func withCatalog(vs []api.Version) envOption { return func(o *Options) { o.Catalog = vs } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	o := Options{DataDir: t.TempDir(), APIKey: testKey, SeedEngines: 2, SeedVersion: "2.3.0", SeedBrainRows: 5, TimeScale: 0.001}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	e := &env{t: t, srv: srv, ts: ts, c: newTestClient(t), dir: o.DataDir}
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return e
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) errCode() string {
	var eb api.ErrorBody
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error.Code
}

func (r resp) errDetail() api.ErrorDetail {
	var eb api.ErrorBody
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error
}

// do sends a request with the admin key; headers are "Name: value" strings, or "-Name" to
// remove one.
func (e *env) do(method, path string, body any, headers ...string) resp {
	e.t.Helper()
	r, err := e.try(context.Background(), method, path, body, headers...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// bad sends a request that breaks the contract on purpose: the contract test skips validating
// the request but still validates the response.
func (e *env) bad(method, path string, body any, headers ...string) resp {
	e.t.Helper()
	r, err := e.try(invalidOnPurpose(context.Background()), method, path, body, headers...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) try(ctx context.Context, method, path string, body any, headers ...string) (resp, error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(api.KeyHeader, testKey)
	for _, h := range headers {
		if name, ok := strings.CutPrefix(h, "-"); ok {
			req.Header.Del(name)
			continue
		}
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := e.c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// ok decodes a response that must have the given status.
func (e *env) ok(r resp, status int, into any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if into != nil {
		if err := json.Unmarshal(r.body, into); err != nil {
			e.t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// wantErr asserts a status and error code.
func (e *env) wantErr(r resp, status int, code string) api.ErrorDetail {
	e.t.Helper()
	if r.status != status || r.errCode() != code {
		e.t.Fatalf("got %d %s, want %d %s: %s", r.status, r.errCode(), status, code, r.body)
	}
	return r.errDetail()
}

var keySeq int

func idem() string {
	keySeq++
	return fmt.Sprintf("Idempotency-Key: key-%d-%d", time.Now().UnixNano(), keySeq)
}

func (e *env) engine(user string) api.Engine {
	e.t.Helper()
	var en api.Engine
	e.ok(e.do("GET", "/v1/engines/"+user, nil), 200, &en)
	return en
}

// wait long-polls an operation until it is done.
func (e *env) wait(op api.Operation) api.Operation {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !op.Done() {
		if time.Now().After(deadline) {
			e.t.Fatalf("operation %s not done: %+v", op.ID, op)
		}
		e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=5s&revision=%d", op.ID, op.Revision), nil), 200, &op)
	}
	return op
}

// step is the operation's step called name (zero when it has none).
func step(op api.Operation, name string) api.Step {
	for _, s := range op.Steps {
		if s.Name == name {
			return s
		}
	}
	return api.Step{}
}

// startOp POSTs work and returns the accepted operation.
func (e *env) startOp(path string, body any) api.Operation {
	e.t.Helper()
	var op api.Operation
	e.ok(e.do("POST", path, body, idem()), 202, &op)
	return op
}

func (e *env) snapshot(user string) api.Snapshot {
	e.t.Helper()
	op := e.wait(e.startOp("/v1/engines/"+user+"/snapshots", api.CreateSnapshotRequest{Description: "test"}))
	if op.Status != api.OpSucceeded {
		e.t.Fatalf("snapshot failed: %+v", op.Error)
	}
	var sn api.Snapshot
	e.ok(e.do("GET", "/v1/snapshots/"+op.Result.SnapshotID, nil), 200, &sn)
	return sn
}

func (e *env) turns(user string, n int, content string) api.TurnsResult {
	e.t.Helper()
	var tr api.TurnsResult
	e.ok(e.do("POST", "/v1/engines/"+user+"/turns", api.TurnsRequest{Count: n, Content: content}), 200, &tr)
	return tr
}

func (e *env) turnContents(user string) []string {
	e.t.Helper()
	var tl api.TurnList
	e.ok(e.do("GET", "/v1/engines/"+user+"/turns", nil), 200, &tl)
	var out []string
	for _, t := range tl.Turns {
		out = append(out, t.Content)
	}
	return out
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func decodeJSON(tb testing.TB, res *http.Response, into any) {
	tb.Helper()
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		tb.Fatalf("decode %s: %v", res.Request.URL, err)
	}
}

// holdTurnInFlight starts a turn and keeps it in flight (admitted, not committed) until release
// is called; done receives its response.
func (e *env) holdTurnInFlight(user, content string) (release func(), done chan resp) {
	e.t.Helper()
	es := e.srv.engines[user]
	es.turnMu.Lock()
	var once sync.Once
	release = func() { once.Do(es.turnMu.Unlock) }
	e.t.Cleanup(release)
	done = make(chan resp, 1)
	go func() {
		done <- e.do("POST", "/v1/engines/"+user+"/turns", api.TurnsRequest{Count: 1, Content: content})
	}()
	for {
		e.srv.mu.Lock()
		n := es.inflight
		e.srv.mu.Unlock()
		if n == 1 {
			return release, done
		}
		time.Sleep(time.Millisecond)
	}
}

// waitStatus waits (briefly) until the engine reaches status: operations move it from their own
// goroutine, after the POST that started them has answered.
func (e *env) waitStatus(user, status string) api.Engine {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		en := e.engine(user)
		if en.Status == status {
			return en
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("engine %s is %s, want %s", user, en.Status, status)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
