package rollout

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// benchScale is the control plane's time scale in the benchmark: large enough that an engine's
// move (snapshot, drain, stop, migrate, boot, health: ~10 nominal seconds) takes about a second,
// so the figure measures the canary's scheduling rather than the local control plane's own
// serialised bookkeeping (it persists every step under one lock: ~20 ms of CPU and I/O per
// engine move that 50 concurrent moves queue behind; at 0.01 that queue, not the canary,
// dominates).
const benchScale = 0.1

// benchKey is the admin key of the benchmark's control plane.
const benchKey = "bench-admin-key-0123456789"

// BenchmarkCanary1000 walks 1,000 engines from 2.3.1 to 2.4.0 (a migrating path: a snapshot, then
// the upgrade, per engine) with max_parallel 50 and steps [5, 25, 100], bake 0, through the
// canary's own step logic against the local control plane. It reports the wall time against the
// ideal ceil(1000/50) x one engine's move, measured on the same control plane, and the heap in use
// afterwards (control plane included, so an upper bound for the provider). To tell the canary's
// own cost (steps, analysis) from the control plane's (50 concurrent operations are slower than
// one alone), it also moves another 1,000 engines through the bare worker pool, no steps, no
// analysis: x_pool is the walk against that floor.
//
//	go test ./internal/rollout -run '^$' -bench Canary1000 -benchtime 1x
func BenchmarkCanary1000(b *testing.B) {
	const n, parallel, probes = 1000, 50, 3
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv, err := controlplane.New(controlplane.Options{DataDir: b.TempDir(), APIKey: benchKey, SeedEngines: 2*n + probes,
			SeedVersion: "2.3.1", SeedBrainRows: 3, TimeScale: benchScale})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		c, err := client.New(client.Config{Endpoint: hs.URL, APIKey: benchKey, RequestTimeout: time.Minute, MaxRetries: 3})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		vs, err := c.Versions(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cat, err := upgrade.NewCatalog(vs)
		if err != nil {
			b.Fatal(err)
		}
		d := &Driver{Client: c}

		// One engine's move, alone, on engines outside the canary's scope.
		probe := NewCanary(d, cat, "2.4.0", "bench", nil, 1)
		var one time.Duration
		for p := 0; p < probes; p++ {
			start := time.Now()
			if err := probe.moveOne(ctx, fmt.Sprintf("user-%04d", 2*n+p+1)); err != nil {
				b.Fatal(err)
			}
			one += time.Since(start)
		}
		one /= probes

		run := NewCanary(d, cat, "2.4.0", "bench", seedUsers(n), parallel)
		run.Analysis = upgrade.AnalysisConfig{BaselineTolerance: 0.5}
		run.Window = 5 * time.Minute
		b.StartTimer()
		start := time.Now()
		if err := run.Walk(ctx, []int64{5, 25, 100}); err != nil {
			b.Fatal(err)
		}
		wall := time.Since(start)
		b.StopTimer()

		if got := len(run.MovedList()); got != n {
			b.Fatalf("%d engines moved, want %d", got, n)
		}
		bare := make([]string, n)
		for j := range bare {
			bare[j] = fmt.Sprintf("user-%04d", n+j+1)
		}
		poolStart := time.Now()
		if _, err := NewCanary(d, cat, "2.4.0", "bench", bare, parallel).MoveAll(ctx, bare); err != nil {
			b.Fatal(err)
		}
		pool := time.Since(poolStart)
		ideal := time.Duration(upgrade.Batches(n, parallel)) * one
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(wall.Seconds(), "wall_s")
		b.ReportMetric(one.Seconds()*1000, "one_engine_ms")
		b.ReportMetric(wall.Seconds()/ideal.Seconds(), "x_ideal")
		b.ReportMetric(pool.Seconds(), "pool_s")
		b.ReportMetric(wall.Seconds()/pool.Seconds(), "x_pool")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_MB")
		b.ReportMetric(float64(ms.Sys)/(1<<20), "sys_MB")
		b.Logf("1000 engines, max_parallel 50, steps [5 25 100]: %s wall; one engine alone %s; ideal ceil(1000/50) x one = %s; ratio %.2f. "+
			"The bare pool moves 1000 engines in %s (%.2fx the ideal): the walk costs %.2fx that. "+
			"Go heap in use %.0f MB, runtime total %.0f MB (control plane included, so upper bounds for the provider).",
			wall.Round(time.Millisecond), one.Round(time.Millisecond), ideal.Round(time.Millisecond), wall.Seconds()/ideal.Seconds(),
			pool.Round(time.Millisecond), pool.Seconds()/ideal.Seconds(), wall.Seconds()/pool.Seconds(),
			float64(ms.HeapInuse)/(1<<20), float64(ms.Sys)/(1<<20))
		hs.Close()
		if err := srv.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
