package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// maxBody is the largest request body the control plane reads.
const maxBody = 1 << 20

var idRE = regexp.MustCompile(api.IDPattern)

func validID(s string) bool { return idRE.MatchString(s) }

func hashKey(k string) [32]byte { return sha256.Sum256([]byte(k)) }

// apiError is an error response: status, stable code, a message naming the field and what to do.
type apiError struct {
	status     int
	detail     api.ErrorDetail
	retryAfter int
	allow      string // the Allow header of a 405
}

func (e *apiError) Error() string { return e.detail.Code + ": " + e.detail.Message }

func newErr(status int, code, msg string) *apiError {
	return &apiError{status: status, detail: api.ErrorDetail{Code: code, Message: msg}}
}

func badField(field, msg string) *apiError {
	e := newErr(http.StatusBadRequest, api.CodeInvalidRequest, msg)
	e.detail.Field = field
	return e
}

type params map[string]string

type route struct {
	method  string
	pattern string
	segs    []string
	handle  func(w http.ResponseWriter, r *http.Request, p params)
}

func (s *Server) routes() []route {
	rs := []route{
		{method: "GET", pattern: "/v1/engines", handle: s.listEngines},
		{method: "GET", pattern: "/v1/engines/{user_id}", handle: s.getEngine},
		{method: "PUT", pattern: "/v1/engines/{user_id}/owner", handle: s.claimOwner},
		{method: "DELETE", pattern: "/v1/engines/{user_id}/owner", handle: s.releaseOwner},
		{method: "GET", pattern: "/v1/versions", handle: s.listVersions},
		{method: "GET", pattern: "/v1/upgrade-path", handle: s.upgradePath},
		{method: "POST", pattern: "/v1/engines/{user_id}/snapshots", handle: s.createSnapshot},
		{method: "GET", pattern: "/v1/engines/{user_id}/snapshots", handle: s.listSnapshots},
		{method: "GET", pattern: "/v1/snapshots/{snapshot_id}", handle: s.getSnapshot},
		{method: "PATCH", pattern: "/v1/snapshots/{snapshot_id}", handle: s.patchSnapshot},
		{method: "DELETE", pattern: "/v1/snapshots/{snapshot_id}", handle: s.deleteSnapshot},
		{method: "POST", pattern: "/v1/engines/{user_id}/upgrade", handle: s.startUpgrade},
		{method: "POST", pattern: "/v1/engines/{user_id}/restore", handle: s.startRestore},
		{method: "POST", pattern: "/v1/engines/{user_id}/evals", handle: s.startEval},
		{method: "GET", pattern: "/v1/engines/{user_id}/operations", handle: s.listOperations},
		{method: "GET", pattern: "/v1/operations/{operation_id}", handle: s.getOperation},
		{method: "GET", pattern: "/v1/engines/{user_id}/metrics", handle: s.metrics},
		{method: "POST", pattern: "/v1/engines/{user_id}/turns", handle: s.writeTurns},
		{method: "GET", pattern: "/v1/engines/{user_id}/turns", handle: s.listTurns},
		{method: "GET", pattern: "/v1/stats", handle: s.getStats},
		{method: "POST", pattern: "/v1/engines/{user_id}/rehearsals", handle: s.startRehearsal},
		{method: "GET", pattern: "/v1/engines/{user_id}/rehearsals", handle: s.listRehearsals},
		{method: "GET", pattern: "/v1/rehearsals/{rehearsal_id}", handle: s.getRehearsal},
		{method: "DELETE", pattern: "/v1/rehearsals/{rehearsal_id}", handle: s.deleteRehearsal},
	}
	rs = append(rs, s.canaryRoutes()...)
	if s.opts.EnableFaults {
		rs = append(rs,
			route{method: "GET", pattern: "/v1/faults", handle: s.listFaults},
			route{method: "POST", pattern: "/v1/faults", handle: s.addFault},
			route{method: "DELETE", pattern: "/v1/faults", handle: s.clearFaults},
		)
	}
	for i := range rs {
		rs[i].segs = strings.Split(strings.TrimPrefix(rs[i].pattern, "/"), "/")
	}
	return rs
}

// Handler is the whole control API, including the open /health and /openapi.yaml.
func (s *Server) Handler() http.Handler {
	return &handler{s: s, routes: s.routes()}
}

type handler struct {
	s      *Server
	routes []route
}

// ServeHTTP authenticates first, then routes on the raw (escaped) path itself: http.ServeMux
// would clean "a/../b" with a redirect and decode "%2f", and a path character must never reach
// an id.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	raw := r.URL.EscapedPath()
	if raw == api.PathHealth || raw == api.PathOpenAPI {
		// The method is checked before anything is recorded: these routes answer without a key,
		// and the stats must stay bounded by the routes, whatever method names a client sends.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, newErr(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, fmt.Sprintf("%s supports GET and HEAD only", raw)))
			return
		}
		s.stats.request(r.Method + " " + raw)
		if raw == api.PathHealth {
			s.mu.Lock()
			n := len(s.engines)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, api.ServiceHealth{Status: "ok", Version: Version, Engines: n})
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(api.OpenAPI)
		return
	}
	if s.engineHealth(w, r, raw) {
		return
	}
	got := hashKey(r.Header.Get(api.KeyHeader))
	if subtle.ConstantTimeCompare(got[:], s.keyHash[:]) != 1 {
		writeError(w, newErr(http.StatusUnauthorized, api.CodeInvalidKey, fmt.Sprintf("missing or wrong admin key: send it in the %s header", api.KeyHeader)))
		return
	}
	rt, p, apiErr := h.match(r.Method, raw)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	s.stats.request(r.Method + " " + rt.pattern)
	if s.opts.EnableFaults && !strings.HasPrefix(rt.pattern, "/v1/faults") && rt.pattern != "/v1/stats" {
		if h.injectFaults(w, r, rt, p) {
			return
		}
	}
	rt.handle(w, r, p)
}

func (h *handler) match(method, raw string) (*route, params, *apiError) {
	segs := strings.Split(strings.TrimPrefix(raw, "/"), "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." || seg == "" && len(segs) > 1 {
			return nil, nil, badField("path", fmt.Sprintf("path %q contains an empty, '.' or '..' segment; ids match %s", raw, api.IDPattern))
		}
	}
	var allowed []string
	var found *route
	var fp params
	for i := range h.routes {
		rt := &h.routes[i]
		if len(rt.segs) != len(segs) {
			continue
		}
		p := params{}
		ok := true
		for j, seg := range rt.segs {
			if strings.HasPrefix(seg, "{") {
				p[strings.Trim(seg, "{}")] = segs[j]
			} else if seg != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		allowed = append(allowed, rt.method)
		if rt.method == http.MethodGet {
			allowed = append(allowed, http.MethodHead)
		}
		// HEAD is GET without the body (net/http drops it), as on /health.
		if rt.method == method || rt.method == http.MethodGet && method == http.MethodHead {
			found, fp = rt, p
		}
	}
	switch {
	case len(allowed) == 0:
		return nil, nil, newErr(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no such endpoint: %s %s (see /openapi.yaml)", method, raw))
	case found == nil:
		e := newErr(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, fmt.Sprintf("%s does not support %s; allowed: %s", raw, method, strings.Join(allowed, ", ")))
		e.allow = strings.Join(allowed, ", ")
		return nil, nil, e
	}
	for name, v := range fp {
		if !validID(v) {
			return nil, nil, badField(name, fmt.Sprintf("%s %q is not a valid id: ids match %s (no path characters)", name, v, api.IDPattern))
		}
	}
	return found, fp, nil
}

// injectFaults applies request faults; it reports whether the response has been dealt with.
func (h *handler) injectFaults(w http.ResponseWriter, r *http.Request, rt *route, p params) bool {
	s := h.s
	user := p["user_id"]
	version := ""
	if user != "" {
		s.mu.Lock()
		if e := s.engines[user]; e != nil {
			version = e.EngineVersion
		}
		s.mu.Unlock()
	}
	path := r.URL.EscapedPath()
	if f := s.faults.fire([]string{api.FaultSlowResponse}, user, version, r.Method, path); f != nil {
		select {
		case <-time.After(time.Duration(f.DelayMS) * time.Millisecond):
		case <-r.Context().Done():
			return true
		}
	}
	if f := s.faults.fire([]string{api.FaultServerError}, user, version, r.Method, path); f != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeFaultInjected, fmt.Sprintf("injected server error (fault %s)", f.ID)))
		return true
	}
	if f := s.faults.fire([]string{api.FaultRateLimit}, user, version, r.Method, path); f != nil {
		e := newErr(http.StatusTooManyRequests, api.CodeRateLimited, fmt.Sprintf("rate limited (fault %s); retry later", f.ID))
		e.retryAfter = f.RetryAfterSeconds
		writeError(w, e)
		return true
	}
	if f := s.faults.fire([]string{api.FaultDropResponse}, user, version, r.Method, path); f != nil {
		rt.handle(&bufferedWriter{header: http.Header{}}, r, p)
		dropConnection(w)
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.allow != "" {
		w.Header().Set("Allow", e.allow)
	}
	b, _ := json.Marshal(api.ErrorBody{Error: e.detail})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	w.Write(append(b, '\n'))
}

// decodeBody reads a JSON body of at most 1 MiB into v, refusing unknown fields and trailing
// data. An empty body is allowed only when every field of v is optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newErr(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxBody))
		}
		return badField("body", "could not read the request body: "+err.Error())
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if allowEmpty {
			return nil
		}
		return badField("body", "the request needs a JSON body")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badField("body", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
		case errors.As(err, &te) && te.Field == "":
			return badField("body", fmt.Sprintf("the request body must be a JSON object, not %s", te.Value))
		case errors.As(err, &te):
			return badField(te.Field, fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, te.Type.Kind(), te.Value))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badField(name, fmt.Sprintf("unknown field %q; see the request schema in /openapi.yaml", name))
		default:
			return badField("body", "malformed JSON: "+err.Error())
		}
	}
	if dec.More() {
		return badField("body", "unexpected data after the JSON object")
	}
	return nil
}

// bodyHash fingerprints a decoded request so an idempotent retry matches regardless of
// whitespace or field order.
func bodyHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:])
}

// stats counts requests and operations for tests and benchmarks.
type stats struct {
	mu         sync.Mutex
	requests   map[string]int64
	operations map[string]int64
	byUser     map[string]int64
}

func newStats() *stats {
	return &stats{requests: map[string]int64{}, operations: map[string]int64{}, byUser: map[string]int64{}}
}

func (st *stats) request(key string) {
	st.mu.Lock()
	st.requests[key]++
	st.mu.Unlock()
}

func (st *stats) operation(user, kind string) {
	st.mu.Lock()
	st.operations[kind]++
	st.byUser[user+"/"+kind]++
	st.mu.Unlock()
}

func (st *stats) snapshot() api.Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := api.Stats{Requests: map[string]int64{}, Operations: map[string]int64{}, OperationsByUser: map[string]int64{}}
	for k, v := range st.requests {
		out.Requests[k] = v
	}
	for k, v := range st.operations {
		out.Operations[k] = v
	}
	for k, v := range st.byUser {
		out.OperationsByUser[k] = v
	}
	return out
}
