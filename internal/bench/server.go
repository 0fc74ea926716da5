package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// benchKey is the admin key of the throwaway control planes a run starts.
const benchKey = "bench-admin-key"

// plane is a control plane served over loopback TCP, as the engine-controlplane binary would
// serve it: terraform's provider process reaches it through a real socket.
type plane struct {
	srv    *controlplane.Server
	http   *http.Server
	URL    string
	Client *client.Client
	Seeded time.Duration // how long New took (seeding included)
}

func startPlane(opts controlplane.Options) (*plane, error) {
	opts.APIKey = benchKey
	start := time.Now()
	srv, err := controlplane.New(opts)
	if err != nil {
		return nil, err
	}
	seeded := time.Since(start)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	c, err := client.New(client.Config{Endpoint: url, APIKey: benchKey, MaxRetries: client.DefaultMaxRetries, MaxConnsPerHost: 256})
	if err != nil {
		hs.Close()
		srv.Close()
		return nil, err
	}
	return &plane{srv: srv, http: hs, URL: url, Client: c, Seeded: seeded}, nil
}

// env is what terraform's provider process needs to reach the plane.
func (p *plane) env() []string {
	return []string{"ENGINE_ENDPOINT=" + p.URL, "ENGINE_API_KEY=" + benchKey}
}

func (p *plane) close() {
	p.Client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.http.Shutdown(ctx)
	p.srv.Close()
}

// requests returns the control plane's request counters.
func (p *plane) requests(ctx context.Context) (map[string]int64, error) {
	st, err := p.Client.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return st.Requests, nil
}

// requestDelta is after − before per route, without the benchmark's own /v1/stats reads.
func requestDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if strings.HasSuffix(k, " /v1/stats") {
			continue
		}
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// lastOperation is the newest operation of a user's engine.
func (p *plane) lastOperation(ctx context.Context, user string) (api.Operation, error) {
	ops, err := p.Client.ListOperations(ctx, user)
	if err != nil {
		return api.Operation{}, err
	}
	if len(ops) == 0 {
		return api.Operation{}, fmt.Errorf("user %s has no operation", user)
	}
	return ops[0], nil
}

// opDuration is an operation's own time on the control plane, created_at to finished_at.
func opDuration(op api.Operation) (time.Duration, error) {
	if op.FinishedAt == nil {
		return 0, errors.New("operation " + op.ID + " has not finished")
	}
	return op.FinishedAt.Sub(op.CreatedAt), nil
}

func userID(i int) string { return fmt.Sprintf("user-%04d", i) }
