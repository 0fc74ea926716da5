package controlplane

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// everyKeyedRoute is one request per keyed route, with bodies that would otherwise be valid.
var everyKeyedRoute = []struct{ method, path, body string }{
	{"GET", "/v1/engines", ""},
	{"GET", "/v1/engines/user-0001", ""},
	{"PUT", "/v1/engines/user-0001/owner", `{"token":"t","manager":"m","resource_type":"engine_release"}`},
	{"DELETE", "/v1/engines/user-0001/owner?token=t", ""},
	{"GET", "/v1/versions", ""},
	{"GET", "/v1/upgrade-path?from=2.3.0&to=2.4.0", ""},
	{"POST", "/v1/engines/user-0001/snapshots", `{}`},
	{"GET", "/v1/engines/user-0001/snapshots", ""},
	{"GET", "/v1/snapshots/snap-1", ""},
	{"PATCH", "/v1/snapshots/snap-1", `{"description":"x"}`},
	{"DELETE", "/v1/snapshots/snap-1?force=true", ""},
	{"POST", "/v1/engines/user-0001/upgrade", `{"version":"2.3.1"}`},
	{"POST", "/v1/engines/user-0001/restore", `{"snapshot_id":"snap-1","version":"2.3.0"}`},
	{"POST", "/v1/engines/user-0001/evals", `{"suite":"regression"}`},
	{"GET", "/v1/engines/user-0001/operations", ""},
	{"GET", "/v1/operations/op-1", ""},
	{"GET", "/v1/engines/user-0001/metrics", ""},
	{"POST", "/v1/engines/user-0001/turns", `{"count":1}`},
	{"GET", "/v1/engines/user-0001/turns", ""},
	{"GET", "/v1/faults", ""},
	{"POST", "/v1/faults", `{"kind":"server_error"}`},
	{"DELETE", "/v1/faults", ""},
	{"GET", "/v1/stats", ""},
	// The key is checked before routing and validation: these get 401, not 404 or 400.
	{"GET", "/v1/no-such-thing", ""},
	{"GET", "/v1/engines/..%2f..", ""},
	{"POST", "/v1/engines/user-0001/turns", `{not json`},
}

func TestAuth_EveryKeyedEndpointRejectsMissingOrWrongKey(t *testing.T) {
	e := newEnv(t, withFaults)
	before := e.engine("user-0001")
	for _, r := range everyKeyedRoute {
		for _, key := range []string{"", "wrong-key", testKey + "x", strings.ToUpper(testKey)} {
			var body any
			if r.body != "" {
				body = r.body
			}
			hdr := []string{api.KeyHeader + ": " + key, idem()}
			if key == "" {
				hdr[0] = "-" + api.KeyHeader
			}
			res := e.bad(r.method, r.path, body, hdr...)
			d := e.wantErr(res, http.StatusUnauthorized, api.CodeInvalidKey)
			if !strings.Contains(d.Message, api.KeyHeader) {
				t.Errorf("401 message should name the header: %q", d.Message)
			}
		}
	}
	if after := e.engine("user-0001"); after.Generation != before.Generation || after.BrainWrites != before.BrainWrites {
		t.Fatalf("unauthenticated requests changed the engine: %+v -> %+v", before, after)
	}
	var st api.Stats
	e.ok(e.do("GET", "/v1/stats", nil), 200, &st)
	if len(st.Operations) != 0 {
		t.Fatalf("unauthenticated requests started operations: %v", st.Operations)
	}
}

func TestOpenEndpoints(t *testing.T) {
	e := newEnv(t)
	var h api.ServiceHealth
	e.ok(e.do("GET", "/health", nil, "-"+api.KeyHeader), 200, &h)
	if h.Status != "ok" || h.Engines != 2 {
		t.Fatalf("health = %+v", h)
	}
	res := e.do("GET", "/openapi.yaml", nil, "-"+api.KeyHeader)
	if res.status != 200 || string(res.body) != string(api.OpenAPI) {
		t.Fatalf("openapi.yaml: %d", res.status)
	}
}

func TestRouting_PathCharactersAndUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	// Raw paths, sent as written: Go's client does not clean them, and the server must not
	// either (no 301 to a cleaned path, no 404 for a decoded one).
	for _, p := range []string{
		"/v1/engines/..%2f..",
		"/v1/engines/..%2F..%2Fetc",
		"/v1/snapshots/a/../b",
		"/v1/engines/user-0001/../user-0002",
		"/v1/engines/%2e%2e",
		"/v1/engines/user%2F0001",
		"/v1/engines/.hidden",
		"/v1/operations/op%00",
		"/v1//engines",
		"/v1/engines/" + strings.Repeat("a", 129),
	} {
		t.Run(p, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(invalidOnPurpose(context.Background()), "GET", e.ts.URL+"/", nil)
			req.URL.RawPath, req.URL.Path = p, p
			req.URL.Opaque = p
			req.Header.Set(api.KeyHeader, testKey)
			res, err := e.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r := resp{status: res.StatusCode, body: b}
			if r.status != 400 || r.errCode() != api.CodeInvalidRequest {
				t.Fatalf("%s: %d %s", p, r.status, b)
			}
		})
	}
	e.wantErr(e.bad("GET", "/v1/nothing-here", nil), 404, api.CodeNotFound)
	res := e.bad("PUT", "/v1/engines/user-0001", "{}")
	e.wantErr(res, 405, api.CodeMethodNotAllowed)
	e.wantErr(e.do("GET", "/v1/engines/user-9999", nil), 404, api.CodeEngineNotFound)
	// Faults are off: the endpoint does not exist.
	e.wantErr(e.bad("GET", "/v1/faults", nil), 404, api.CodeNotFound)
}

// TestBadInput covers each bad-input class: a 4xx with a stable code and the field named, and
// nothing changed (no operation, same generation, same brain).
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	const u = "/v1/engines/user-0001"
	sn := e.snapshot("user-0001")
	before := e.engine("user-0001")
	brainBefore, _, _ := fileSHA256(e.srv.BrainPath("user-0001"))
	var stBefore api.Stats
	e.ok(e.do("GET", "/v1/stats", nil), 200, &stBefore)

	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code, field        string
	}{
		{"malformed json", "POST", u + "/upgrade", `{"version": "2.4.0"`, []string{idem()}, 400, api.CodeInvalidRequest, "body"},
		{"not an object", "POST", u + "/upgrade", `[1,2]`, []string{idem()}, 400, api.CodeInvalidRequest, "body"},
		{"trailing data", "POST", u + "/turns", `{"count":1} {"count":2}`, nil, 400, api.CodeInvalidRequest, "body"},
		{"unknown field", "POST", u + "/upgrade", `{"version":"2.4.0","snapshot":"x"}`, []string{idem()}, 400, api.CodeInvalidRequest, "snapshot"},
		{"unknown field patch", "PATCH", "/v1/snapshots/" + sn.ID, `{"retention":3}`, nil, 400, api.CodeInvalidRequest, "retention"},
		{"wrong type", "POST", u + "/turns", `{"count":"three"}`, nil, 400, api.CodeInvalidRequest, "count"},
		{"empty body", "POST", u + "/upgrade", ``, []string{idem()}, 400, api.CodeInvalidRequest, "body"},
		{"oversized body", "POST", u + "/turns", `{"count":1,"content":"` + strings.Repeat("x", maxBody) + `"}`, nil, 413, api.CodeBodyTooLarge, ""},
		{"count zero", "POST", u + "/turns", `{"count":0}`, nil, 400, api.CodeInvalidRequest, "count"},
		{"count too big", "POST", u + "/turns", `{"count":100000}`, nil, 400, api.CodeInvalidRequest, "count"},
		{"retention zero", "PATCH", "/v1/snapshots/" + sn.ID, `{"retention_days":0}`, nil, 400, api.CodeInvalidRequest, "retention_days"},
		{"retention huge", "POST", u + "/snapshots", `{"retention_days":100000}`, []string{idem()}, 400, api.CodeInvalidRequest, "retention_days"},
		{"negative drain timeout", "POST", u + "/upgrade", `{"version":"2.3.1","drain_timeout_seconds":-1}`, []string{idem()}, 400, api.CodeInvalidRequest, "drain_timeout_seconds"},
		{"missing version", "POST", u + "/upgrade", `{}`, []string{idem()}, 400, api.CodeInvalidRequest, "version"},
		{"unknown version", "POST", u + "/upgrade", `{"version":"9.9.9"}`, []string{idem()}, 404, api.CodeVersionNotFound, "version"},
		{"unknown restore version", "POST", u + "/restore", `{"snapshot_id":"` + sn.ID + `","version":"2.5.0"}`, []string{idem()}, 404, api.CodeVersionNotFound, "version"},
		{"bad snapshot id in body", "POST", u + "/upgrade", `{"version":"2.4.0","snapshot_id":"../x"}`, []string{idem()}, 400, api.CodeInvalidRequest, "snapshot_id"},
		{"unknown snapshot", "POST", u + "/upgrade", `{"version":"2.4.0","snapshot_id":"snap-nope"}`, []string{idem()}, 404, api.CodeSnapshotNotFound, "snapshot_id"},
		{"missing idempotency key", "POST", u + "/upgrade", `{"version":"2.3.1"}`, []string{"-" + api.IdempotencyHeader}, 400, api.CodeInvalidRequest, api.IdempotencyHeader},
		{"bad if-match", "POST", u + "/upgrade", `{"version":"2.3.1"}`, []string{idem(), "If-Match: abc"}, 400, api.CodeInvalidRequest, "If-Match"},
		{"bad suite", "POST", u + "/evals", `{"suite":"a b"}`, []string{idem()}, 400, api.CodeInvalidRequest, "suite"},
		{"bad limit", "GET", "/v1/engines?limit=0", nil, nil, 400, api.CodeInvalidRequest, "limit"},
		{"bad status filter", "GET", "/v1/engines?status=sleeping", nil, nil, 400, api.CodeInvalidRequest, "status"},
		{"bad page token", "GET", "/v1/engines?page_token=%21%21", nil, nil, 400, api.CodeInvalidRequest, "page_token"},
		{"bad window", "GET", u + "/metrics?window=forever", nil, nil, 400, api.CodeInvalidRequest, "window"},
		{"bad wait", "GET", "/v1/operations/op-1?wait=soon", nil, nil, 400, api.CodeInvalidRequest, "wait"},
		{"bad revision", "GET", "/v1/operations/op-1?wait=1s&revision=-4", nil, nil, 400, api.CodeInvalidRequest, "revision"},
		{"bad force", "DELETE", "/v1/snapshots/" + sn.ID + "?force=yes-please", nil, nil, 400, api.CodeInvalidRequest, "force"},
		{"missing path query", "GET", "/v1/upgrade-path?from=2.3.0", nil, nil, 400, api.CodeInvalidRequest, "to"},
		{"unknown path version", "GET", "/v1/upgrade-path?from=2.3.0&to=7.0.0", nil, nil, 404, api.CodeVersionNotFound, "to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := e.bad(c.method, c.path, c.body, c.headers...)
			d := e.wantErr(res, c.status, c.code)
			if c.field != "" && d.Field != c.field {
				t.Fatalf("field = %q, want %q (%s)", d.Field, c.field, d.Message)
			}
			if c.field != "" && c.field != "body" && !strings.Contains(d.Message, c.field) && !strings.Contains(d.Message, "version") {
				t.Fatalf("message %q does not name %q", d.Message, c.field)
			}
		})
	}
	if d := e.wantErr(e.do("GET", "/v1/upgrade-path?from=2.3.0&to=7.0.0", nil), 404, api.CodeVersionNotFound); !strings.Contains(d.Message, "2.4.1") {
		t.Fatalf("VERSION_NOT_FOUND should list the known versions: %s", d.Message)
	}
	after := e.engine("user-0001")
	brainAfter, _, _ := fileSHA256(e.srv.BrainPath("user-0001"))
	var stAfter api.Stats
	e.ok(e.do("GET", "/v1/stats", nil), 200, &stAfter)
	if after.Generation != before.Generation || after.BrainWrites != before.BrainWrites || brainAfter != brainBefore {
		t.Fatalf("bad input changed the engine or its brain: %+v -> %+v", before, after)
	}
	if stAfter.Operations[api.OpUpgrade] != 0 || stAfter.Operations[api.OpSnapshot] != stBefore.Operations[api.OpSnapshot] {
		t.Fatalf("bad input started operations: %v", stAfter.Operations)
	}
	var got api.Snapshot
	e.ok(e.do("GET", "/v1/snapshots/"+sn.ID, nil), 200, &got)
	if got.RetentionDays != sn.RetentionDays || got.Description != sn.Description {
		t.Fatalf("bad patch changed the snapshot: %+v", got)
	}
}
