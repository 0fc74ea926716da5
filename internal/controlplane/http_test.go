package controlplane

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// TestStats_BoundedUnderArbitraryMethodsAndPaths: whatever methods and paths clients send,
// with or without the key, the request stats hold at most one entry per method of each route,
// so nobody can grow the control plane's memory (or /v1/stats) by inventing method names.
func TestStats_BoundedUnderArbitraryMethodsAndPaths(t *testing.T) {
	e := newEnv(t)
	plain := &http.Client{}
	send := func(method, path string, key bool) {
		t.Helper()
		req, err := http.NewRequest(method, e.ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key {
			req.Header.Set(api.KeyHeader, testKey)
		}
		res, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	long := strings.Repeat("X", 4096)
	for i := range 300 {
		m := "M" + strings.Repeat("Q", i%40) + string(rune('A'+i%26)) + long[:i%7*500]
		send(m, "/health", false)
		send(m, "/openapi.yaml", false)
		send(m, "/v1/engines/user-0001", true)
		send("GET", "/v1/nothing-"+strings.Repeat("n", i), true)
		send("GET", "/v1/engines/user-"+strings.Repeat("9", i%100+1), false)
	}
	send("GET", "/health", false)
	send("HEAD", "/health", false)
	send("GET", "/openapi.yaml", false)

	e.srv.stats.mu.Lock()
	keys := make([]string, 0, len(e.srv.stats.requests))
	for k := range e.srv.stats.requests {
		keys = append(keys, k)
	}
	e.srv.stats.mu.Unlock()
	// GET and HEAD on the two open routes, at most one entry per method of each keyed route.
	limit := 4
	for _, rt := range e.srv.routes() {
		limit++
		if rt.method == http.MethodGet {
			limit++
		}
	}
	if len(keys) > limit {
		t.Fatalf("the request stats grew to %d entries (limit %d): %.20q", len(keys), limit, keys)
	}
	for _, k := range keys {
		if len(k) > 100 {
			t.Fatalf("a request stats key is not a route: %.120q", k)
		}
	}
	for _, want := range []string{"GET /health", "HEAD /health", "GET /openapi.yaml"} {
		if e.srv.stats.snapshot().Requests[want] == 0 {
			t.Errorf("%s was not counted: %q", want, keys)
		}
	}
}

// TestHead_AnsweredOnEveryGetRoute: HEAD is GET without the body on every GET endpoint, as on
// /health, and a 405 names HEAD among the allowed methods.
func TestHead_AnsweredOnEveryGetRoute(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/health", "/v1/engines", "/v1/engines/user-0001", "/v1/versions", "/v1/engines/user-0001/operations"} {
		req, _ := http.NewRequest(http.MethodHead, e.ts.URL+p, nil)
		req.Header.Set(api.KeyHeader, testKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200", p, res.StatusCode)
		}
	}
	res := e.bad("PUT", "/v1/engines/user-0001", "{}")
	e.wantErr(res, 405, api.CodeMethodNotAllowed)
	if got := res.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q, want \"GET, HEAD\"", got)
	}
	// A HEAD on a route without GET is still refused.
	req, _ := http.NewRequest(http.MethodHead, e.ts.URL+"/v1/engines/user-0001/upgrade", nil)
	req.Header.Set(api.KeyHeader, testKey)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusMethodNotAllowed || r2.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD on a POST route: %d Allow %q, want 405 Allow POST", r2.StatusCode, r2.Header.Get("Allow"))
	}
}

// TestBody_ArraySaysObject: a JSON array (or any non-object) body is named as the body, not as
// a field with an empty name.
func TestBody_ArraySaysObject(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{`[1,2]`, `"x"`, `7`} {
		d := e.wantErr(e.bad("POST", "/v1/engines/user-0001/upgrade", body, idem()), 400, api.CodeInvalidRequest)
		if d.Field != "body" || !strings.Contains(d.Message, "must be a JSON object") || strings.Contains(d.Message, `""`) {
			t.Errorf("body %s: field %q message %q", body, d.Field, d.Message)
		}
	}
}
