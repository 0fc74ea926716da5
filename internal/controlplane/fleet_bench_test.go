package controlplane

import (
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

// BenchmarkFleet10000 is the control plane at fleet scale (#18): seeding 10,000 engines, listing
// them with paging (full engines and the selector's ids), and 1,000 concurrent upgrades, each
// started by its own client goroutine and long-polled to its end. Reported per run: s/seed,
// s/list-engines, s/list-ids, s/1000-upgrades and the ideal (one upgrade's own duration).
func BenchmarkFleet10000(b *testing.B) {
	const n, movers = 10000, 1000
	for i := 0; i < b.N; i++ {
		start := time.Now()
		srv, err := New(Options{DataDir: b.TempDir(), APIKey: "k", SeedEngines: n, SeedBrainRows: 1, TimeScale: 0.01})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/seed")
		ts := httptest.NewServer(srv.Handler())
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: movers, MaxConnsPerHost: movers}}
		get := func(path string, into any) {
			req, _ := http.NewRequest("GET", ts.URL+path, nil)
			req.Header.Set(api.KeyHeader, "k")
			res, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatalf("GET %s: %d", path, res.StatusCode)
			}
			decodeJSON(b, res, into)
		}
		t0 := time.Now()
		seen, tok := 0, ""
		for {
			var l api.EngineList
			get("/v1/engines?limit=1000&page_token="+tok, &l)
			seen += len(l.Engines)
			if tok = l.NextPageToken; tok == "" {
				break
			}
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/list-engines")
		t0 = time.Now()
		var ids api.EngineIDs
		get("/v1/engine-ids?limit=10000", &ids)
		b.ReportMetric(time.Since(t0).Seconds(), "s/list-ids")
		if seen != n || len(ids.UserIDs) != n || ids.Total != n {
			b.Fatalf("listed %d engines, %d ids (total %d), want %d", seen, len(ids.UserIDs), ids.Total, n)
		}

		one := upgradeOne(b, hc, ts.URL, "user-0001")
		t0 = time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, movers)
		for j := 2; j <= movers+1; j++ {
			wg.Add(1)
			go func(user string) {
				defer wg.Done()
				if _, err := tryUpgradeOne(hc, ts.URL, user); err != nil {
					errs <- err
				}
			}(fmt.Sprintf("user-%04d", j))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/1000-upgrades")
		b.ReportMetric(one.Seconds(), "s/one-upgrade")
		ts.Close()
		srv.Close()
	}
}

func upgradeOne(b *testing.B, hc *http.Client, base, user string) time.Duration {
	d, err := tryUpgradeOne(hc, base, user)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// tryUpgradeOne upgrades user to 2.3.1 and long-polls the operation to its end.
func tryUpgradeOne(hc *http.Client, base, user string) (time.Duration, error) {
	t0 := time.Now()
	ctx := context.Background()
	do := func(method, path, body string, into any) error {
		req, _ := http.NewRequestWithContext(ctx, method, base+path, stringsReader(body))
		req.Header.Set(api.KeyHeader, "k")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(api.IdempotencyHeader, "fleet-"+user)
		}
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: HTTP %d", method, path, res.StatusCode)
		}
		return jsonDecode(res, into)
	}
	var op api.Operation
	if err := do("POST", "/v1/engines/"+user+"/upgrade", `{"version":"2.3.1"}`, &op); err != nil {
		return 0, err
	}
	for !op.Done() {
		if err := do("GET", fmt.Sprintf("/v1/operations/%s?wait=25s&revision=%d", op.ID, op.Revision), "", &op); err != nil {
			return 0, err
		}
	}
	if op.Status != api.OpSucceeded {
		return 0, fmt.Errorf("upgrade of %s: %s", user, op.Status)
	}
	return time.Since(t0), nil
}

func stringsReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

func jsonDecode(res *http.Response, into any) error { return json.NewDecoder(res.Body).Decode(into) }
