package controlplane

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// faultSet holds the injected faults (only reachable with EnableFaults).
type faultSet struct {
	mu   sync.Mutex
	list []*api.Fault
	next int
}

func newFaultSet() *faultSet { return &faultSet{} }

// processFaults only make sense for a runtime whose engines are real programs (process, docker).
var processFaults = []string{api.FaultProcessKill, api.FaultIgnoreSIGTERM}

func (f *faultSet) add(in api.Fault) api.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	in.ID = fmt.Sprintf("fault-%d", f.next)
	in.Fired = 0
	if in.Probability == 0 {
		in.Probability = 1
	}
	c := in
	f.list = append(f.list, &c)
	return c
}

func (f *faultSet) all() []api.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.Fault, 0, len(f.list))
	for _, x := range f.list {
		out = append(out, *x)
	}
	return out
}

func (f *faultSet) clear() {
	f.mu.Lock()
	f.list = nil
	f.mu.Unlock()
}

// fire finds the first fault of one of kinds whose scope matches, and counts it as fired when its
// probability says so and its count is not used up.
func (f *faultSet) fire(kinds []string, userID, version, method, path string) *api.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.list {
		switch {
		case !slices.Contains(kinds, x.Kind),
			x.UserID != "" && x.UserID != userID,
			x.Version != "" && x.Version != version,
			x.Method != "" && method != "" && !strings.EqualFold(x.Method, method),
			x.PathPrefix != "" && path != "" && !strings.HasPrefix(path, x.PathPrefix),
			x.Count > 0 && x.Fired >= x.Count:
			continue
		}
		if x.Probability < 1 && rand.Float64() >= x.Probability {
			continue
		}
		x.Fired++
		c := *x
		return &c
	}
	return nil
}

func validateFault(in api.Fault, process bool) *apiError {
	switch {
	case slices.Contains(processFaults, in.Kind) && !process:
		return badField("kind", fmt.Sprintf("fault kind %q needs the process or docker runtime (a real engine process or container to kill or to signal); the in-process control plane supports %s", in.Kind, strings.Join(supportedFaults(), ", ")))
	case !slices.Contains(api.FaultKinds, in.Kind):
		return badField("kind", fmt.Sprintf("unknown fault kind %q; use one of %s", in.Kind, strings.Join(supportedFaults(), ", ")))
	case in.Probability < 0 || in.Probability > 1:
		return badField("probability", fmt.Sprintf("probability %v must be in (0, 1]; 0 means 1", in.Probability))
	case in.Count < 0:
		return badField("count", "count must be 0 (unlimited) or positive")
	case in.RetryAfterSeconds < 0 || in.RetryAfterSeconds > 3600:
		return badField("retry_after_seconds", "retry_after_seconds must be between 0 and 3600")
	case in.DelayMS < 0 || in.DelayMS > 60000:
		return badField("delay_ms", "delay_ms must be between 0 and 60000")
	case in.Fired != 0:
		return badField("fired", "fired is counted by the control plane; leave it out")
	case in.ID != "":
		return badField("id", "id is assigned by the control plane; leave it out")
	case in.UserID != "" && !validID(in.UserID):
		return badField("user_id", fmt.Sprintf("user_id must match %s", api.IDPattern))
	case in.Method != "" && !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, strings.ToUpper(in.Method)):
		return badField("method", "method must be GET, POST, PUT, PATCH or DELETE")
	}
	return nil
}

func supportedFaults() []string {
	var out []string
	for _, k := range api.FaultKinds {
		if !slices.Contains(processFaults, k) {
			out = append(out, k)
		}
	}
	return out
}

// bufferedWriter holds a response back so drop_response can do the work and then send nothing.
type bufferedWriter struct {
	header http.Header
	status int
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) { return len(p), nil }
func (b *bufferedWriter) WriteHeader(code int)        { b.status = code }

// dropConnection closes the client's connection without a response: the work is done, the
// client never hears about it, exactly like a response lost on the wire.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
