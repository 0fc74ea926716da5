package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
)

// The contract test: every request the tests send through newTestClient and every response
// they get back is validated against internal/api/openapi.yaml with kin-openapi's
// openapi3filter. Requests a test makes invalid on purpose (bad ids, unknown fields, ...) are
// marked with invalidOnPurpose: their request is not validated, but the response always is.

var (
	contractOnce   sync.Once
	contractRouter routers.Router
	contractErr    error

	coverageMu sync.Mutex
	covered    = map[string]bool{} // "METHOD /path" of the document answered with 2xx
	exchanges  int
)

type invalidKey struct{}

// invalidOnPurpose marks a request that breaks the contract deliberately.
func invalidOnPurpose(ctx context.Context) context.Context {
	return context.WithValue(ctx, invalidKey{}, true)
}

func loadContract() (routers.Router, error) {
	contractOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err != nil {
			contractErr = fmt.Errorf("openapi.yaml does not load: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			contractErr = fmt.Errorf("openapi.yaml is not valid OpenAPI: %w", err)
			return
		}
		doc.Servers = nil // match any host: tests run on random ports
		contractRouter, contractErr = legacy.NewRouter(doc)
	})
	return contractRouter, contractErr
}

// newTestClient is the only HTTP client the control plane tests use.
func newTestClient(t *testing.T) *http.Client {
	t.Helper()
	r, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &contractTransport{report: t.Errorf, router: r, base: http.DefaultTransport}}
}

type contractTransport struct {
	report func(format string, args ...any) // t.Errorf: a mismatch fails the test
	router routers.Router
	base   http.RoundTripper
}

func (c *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	onPurpose := req.Context().Value(invalidKey{}) != nil
	ctx := context.Background()
	route, pathParams, findErr := c.router.FindRoute(req)
	var in *openapi3filter.RequestValidationInput
	if findErr == nil {
		vreq := req.Clone(ctx)
		vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
		in = &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: pathParams, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if !onPurpose {
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				c.report("contract: request %s %s does not match openapi.yaml: %v", req.Method, req.URL.RequestURI(), err)
			}
		}
	} else if !onPurpose {
		c.report("contract: %s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, findErr)
	}
	res, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("contract test: read the response body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	coverageMu.Lock()
	exchanges++
	coverageMu.Unlock()
	if in == nil {
		// No route to validate against (an unknown or deliberately broken path): the answer must
		// still be the documented error body.
		var eb api.ErrorBody
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if res.StatusCode < 400 || dec.Decode(&eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			c.report("contract: %s %s answered %d with a body that is not an error body: %s", req.Method, req.URL.Path, res.StatusCode, body)
		}
		return res, nil
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.report("contract: response %d to %s %s does not match openapi.yaml: %v\nbody: %s", res.StatusCode, req.Method, req.URL.RequestURI(), err, body)
	}
	if res.StatusCode < 300 {
		coverageMu.Lock()
		covered[req.Method+" "+route.Path] = true
		coverageMu.Unlock()
	}
	return res, nil
}

// TestMain fails a full run (no -run filter) unless every operation in openapi.yaml was
// exchanged successfully at least once under contract validation.
func TestMain(m *testing.M) {
	code := m.Run()
	standinbuild.Cleanup()
	if f := flag.Lookup("test.run"); code == 0 && f != nil && f.Value.String() == "" {
		r, err := loadContract()
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		_ = r
		doc, _ := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		var missing []string
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				if !covered[method+" "+path] {
					missing = append(missing, method+" "+path)
				}
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			fmt.Printf("contract: no successful exchange validated for: %s\n", strings.Join(missing, "; "))
			code = 1
		} else {
			fmt.Printf("contract: %d exchanges validated; every documented operation covered\n", exchanges)
		}
	}
	os.Exit(code)
}

// TestContract_CatchesMismatches proves the contract transport can fail: a server that answers
// with an undocumented field, a wrong type or an undocumented status, and a request with an
// unknown field, are all reported.
func TestContract_CatchesMismatches(t *testing.T) {
	r, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]struct {
		status int
		body   string
	}{
		"/v1/engines/extra":   {200, `{"user_id":"extra","engine_id":"e","engine_version":"2.3.0","schema_version":4,"status":"running","url":"u","health":{"status":"ok"},"brain_writes":0,"generation":1,"colour":"red"}`},
		"/v1/engines/type":    {200, `{"user_id":"type","engine_id":"e","engine_version":"2.3.0","schema_version":"four","status":"running","url":"u","health":{"status":"ok"},"brain_writes":0,"generation":1}`},
		"/v1/engines/status":  {200, `{"user_id":"status","engine_id":"e","engine_version":"2.3.0","schema_version":4,"status":"asleep","url":"u","health":{"status":"ok"},"brain_writes":0,"generation":1}`},
		"/v1/engines/errbody": {404, `{"error":{"code":"NOPE","message":"m"}}`},
		"/v1/versions":        {201, `{"versions":[]}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a, ok := answers[req.URL.Path]
		if !ok {
			a.status, a.body = 200, `{"written":1,"brain_writes":1,"turns":[]}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()
	var reports []string
	c := &http.Client{Transport: &contractTransport{report: func(f string, a ...any) { reports = append(reports, fmt.Sprintf(f, a...)) }, router: r, base: http.DefaultTransport}}
	for path := range answers {
		reports = nil
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set(api.KeyHeader, "k")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if len(reports) == 0 {
			t.Errorf("%s: the mismatch was not reported", path)
		}
	}
	reports = nil
	req, _ := http.NewRequest("POST", srv.URL+"/v1/engines/user-1/turns", strings.NewReader(`{"count":1,"colour":"red"}`))
	req.Header.Set(api.KeyHeader, "k")
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(reports) != 1 || !strings.Contains(reports[0], "request") {
		t.Errorf("an undocumented request field was not reported: %q", reports)
	}
}
