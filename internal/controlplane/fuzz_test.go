package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// dirDigest hashes every file under dir (names and contents): equal digests mean nothing on disk
// changed.
func dirDigest(t testing.TB, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, n)
		sum := sha256.Sum256(b)
		h.Write([]byte(rel + "\x00" + hex.EncodeToString(sum[:]) + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// docOperation is one operation of the OpenAPI document.
type docOperation struct {
	method, path string
	open         bool // security: [] (no key)
	body         bool // has a request body
	params       []string
}

func documentOperations(t *testing.T) []docOperation {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var out []docOperation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			d := docOperation{method: method, path: path, body: op.RequestBody != nil}
			d.open = op.Security != nil && len(*op.Security) == 0
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") {
					d.params = append(d.params, strings.Trim(seg, "{}"))
				}
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].method+out[i].path < out[j].method+out[j].path })
	return out
}

// rawRequest sends path exactly as written (no cleaning, no decoding) with the right key.
func (e *env) rawRequest(method, path string, body io.Reader, headers ...string) resp {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(invalidOnPurpose(context.Background()), method, e.ts.URL+"/", body)
	req.URL.Opaque, req.URL.RawPath, req.URL.Path = path, path, path
	req.Header.Set(api.KeyHeader, testKey)
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := e.c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// TestEveryDocumentedOperation_rejectsBadRequests walks every operation the OpenAPI document
// declares (so a new endpoint is covered the day it is documented): a missing or wrong key gets
// 401 except on the open endpoints; a malformed body 400; an oversize body 413; a path-traversal
// id 400. Afterwards not one byte of the data dir has changed.
func TestEveryDocumentedOperation_rejectsBadRequests(t *testing.T) {
	e := newEnv(t, withFaults)
	snap := e.snapshot("user-0001")
	ids := map[string]string{"user_id": "user-0001", "snapshot_id": snap.ID, "operation_id": "op-1", "canary_id": "canary-fuzz"}
	ops := documentOperations(t)
	if len(ops) < 15 {
		t.Fatalf("the document declares only %d operations; is it the placeholder?", len(ops))
	}
	before := dirDigest(t, e.dir)
	var gen, writes int64
	{
		en := e.engine("user-0001")
		gen, writes = en.Generation, en.BrainWrites
	}
	oversize := `{"description":"` + strings.Repeat("x", maxBody) + `"}`
	traversal := []string{"..", "..%2f..%2fetc", "%2e%2e", "a%2fb", ".hidden", "x%00"}
	for _, op := range ops {
		path := op.path
		for _, p := range op.params {
			path = strings.ReplaceAll(path, "{"+p+"}", ids[p])
		}
		t.Run(op.method+" "+op.path, func(t *testing.T) {
			if op.open {
				res := e.rawRequest(op.method, path, nil, api.KeyHeader+": ")
				if res.status != 200 {
					t.Errorf("open endpoint without a key: %d %s", res.status, res.body)
				}
				return
			}
			for name, key := range map[string]string{"missing key": "", "wrong key": "not-the-key"} {
				res := e.rawRequest(op.method, path, strings.NewReader(`{}`), api.KeyHeader+": "+key, idem())
				if res.status != 401 || res.errCode() != api.CodeInvalidKey {
					t.Errorf("%s: %d %s, want 401 %s", name, res.status, res.body, api.CodeInvalidKey)
				}
			}
			if op.body {
				res := e.rawRequest(op.method, path, strings.NewReader(`{"version": `), idem())
				if res.status != 400 || res.errCode() != api.CodeInvalidRequest {
					t.Errorf("malformed body: %d %s, want 400 %s", res.status, res.body, api.CodeInvalidRequest)
				}
				res = e.rawRequest(op.method, path, strings.NewReader(oversize), idem())
				if res.status != 413 || res.errCode() != api.CodeBodyTooLarge {
					t.Errorf("oversize body: %d %s, want 413 %s", res.status, truncate(res.body), api.CodeBodyTooLarge)
				}
			}
			for _, p := range op.params {
				for _, bad := range traversal {
					tp := op.path
					for _, q := range op.params {
						v := ids[q]
						if q == p {
							v = bad
						}
						tp = strings.ReplaceAll(tp, "{"+q+"}", v)
					}
					res := e.rawRequest(op.method, tp, strings.NewReader(`{}`), idem())
					if res.status != 400 || res.errCode() != api.CodeInvalidRequest {
						t.Errorf("%s = %q: %d %s, want 400 %s", p, bad, res.status, res.body, api.CodeInvalidRequest)
					}
				}
			}
		})
	}
	if after := dirDigest(t, e.dir); after != before {
		t.Fatal("rejected requests changed the data dir")
	}
	if en := e.engine("user-0001"); en.Generation != gen || en.BrainWrites != writes {
		t.Fatalf("rejected requests changed the engine: generation %d -> %d, writes %d -> %d", gen, en.Generation, writes, en.BrainWrites)
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// fuzzRoutes are the requests with a body the control plane decodes.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/engines/user-0001/upgrade"},
	{"POST", "/v1/engines/user-0001/restore"},
	{"POST", "/v1/engines/user-0001/snapshots"},
	{"POST", "/v1/engines/user-0001/evals"},
	{"POST", "/v1/engines/user-0001/turns"},
	{"PATCH", "/v1/snapshots/snap-fuzz"},
	{"POST", "/v1/faults"},
}

// FuzzRequestDecoding sends arbitrary bodies, idempotency keys and If-Match values to every
// body-decoding route. The control plane must never panic or answer 5xx, must answer JSON, and
// every 4xx must carry a code and a message and leave the engine as it was.
func FuzzRequestDecoding(f *testing.F) {
	f.Add(uint8(0), []byte(`{"version":"2.3.1"}`), "k1", "")
	f.Add(uint8(0), []byte(`{"version":"2.4.0","snapshot_id":"../../etc/passwd"}`), "k2", `"1"`)
	f.Add(uint8(1), []byte(`{"snapshot_id":"snap-x","version":"2.3.0"}`), "k3", "W/\"7\"")
	f.Add(uint8(2), []byte(`{"description":"\u0000","retention_days":-1}`), "k4", "")
	f.Add(uint8(3), []byte(`{"suite":"regression"}`), "", "")
	f.Add(uint8(4), []byte(`{"count":1e9,"content":"x"}`), "", "")
	f.Add(uint8(4), []byte(`{"count":2} trailing`), "", "")
	f.Add(uint8(5), []byte(`{"retention_days":9223372036854775808}`), "", "")
	f.Add(uint8(6), []byte(`{"kind":"server_error","probability":1.5}`), "", "")
	f.Add(uint8(6), []byte(`{"kind":"process_kill"}`), "", "")
	f.Add(uint8(0), []byte(`[`), "key with spaces", "abc")
	f.Add(uint8(0), []byte(`{"version":"2.3.1","drain_timeout_seconds":1e308}`), strings.Repeat("k", 300), "")

	// One control plane per fuzzing process, shared by its inputs: a new one per input would
	// spend the run seeding brains.
	srv, err := New(Options{DataDir: f.TempDir(), APIKey: testKey, SeedEngines: 1, SeedBrainRows: 2, TimeScale: 0.0001, EnableFaults: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, route uint8, body []byte, key, ifMatch string) {
		fuzzOnce(t, srv, route, body, key, ifMatch)
	})
}

// fuzzOnce serves one fuzzed request straight into s's handler (no network: thousands per
// second).
func fuzzOnce(t *testing.T, s *Server, route uint8, body []byte, key, ifMatch string) {
	rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
	// A fault an earlier input added would answer this one with an injected 5xx.
	defer s.faults.clear()
	state := func() (int64, int64, string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		en := s.engines["user-0001"]
		return en.Generation, en.BrainWrites, en.CurrentOperationID
	}
	gen, writes, running := state()
	req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
	req.Header.Set(api.KeyHeader, testKey)
	req.Header.Set("Content-Type", "application/json")
	clean := func(v string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, v)
	}
	if key != "" {
		req.Header.Set(api.IdempotencyHeader, clean(key))
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", clean(ifMatch))
	}
	w := httptest.NewRecorder()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Handler().ServeHTTP(w, req)
	}()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s %s %q (key %q, If-Match %q) hung for 10s:\n%s", rt.method, rt.path, body, key, ifMatch, buf[:runtime.Stack(buf, true)])
	}
	if w.Code >= 500 {
		t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body.String())
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("%s %s: a %d answer that is not JSON: %q", rt.method, rt.path, w.Code, w.Body.String())
	}
	if w.Code >= 400 {
		var eb api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %s: a %d without code and message: %s", rt.method, rt.path, w.Code, w.Body.String())
		}
		g2, w2, running2 := state()
		// Only an idle engine is still: an operation an earlier input started moves it on.
		if running != "" || running2 != "" {
			return
		}
		if g2 != gen || w2 != writes {
			t.Fatalf("%s %s: a rejected request (%d %s) changed the engine: generation %d -> %d, writes %d -> %d",
				rt.method, rt.path, w.Code, eb.Error.Code, gen, g2, writes, w2)
		}
	}
}
