package rollout

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// A release's watch: the baseline is the engine's own figures; an interrupted bake is recorded
// with its start and judged nothing; resumed past its end it reads and judges at once, by the
// thresholds alone when the baseline is gone.
func TestReleaseWatch(t *testing.T) {
	d, c := oneEngine(t)
	user := "user-0001"
	w := &Watch{Bake: time.Hour, Window: 5 * time.Minute, To: "2.3.1", Config: upgrade.AnalysisConfig{BaselineTolerance: 0.5}}
	if err := d.WatchBefore(context.Background(), user, w); err != nil || w.Before.UserID != user {
		t.Fatalf("baseline: %v, %+v", err, w.Before)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var recorded []time.Time
	res := d.Bake(ctx, user, w, func(w *Watch) { recorded = append(recorded, w.BakeStartedAt) })
	if !res.Interrupted || res.Err == nil || len(recorded) != 1 || recorded[0].IsZero() || !w.BakeStartedAt.Equal(recorded[0]) {
		t.Fatalf("interrupted bake: %+v, recorded %v, started %v", res, recorded, w.BakeStartedAt)
	}

	e, err := c.GetEngine(context.Background(), user)
	if err != nil || !w.Resumable(e, "2.3.1") || w.Resumable(e, "2.4.0") {
		t.Fatalf("resumable on %s (%v): %v / %v", e.EngineVersion, err, w.Resumable(e, "2.3.1"), w.Resumable(e, "2.4.0"))
	}
	w.BakeStartedAt = time.Now().Add(-2 * time.Hour)
	start := time.Now()
	res = d.Bake(context.Background(), user, w, nil)
	if res.Interrupted || res.Err != nil || res.After.UserID != user || time.Since(start) > 30*time.Second {
		t.Fatalf("resumed bake past its end: %+v after %s", res, time.Since(start))
	}

	strict := 0.0
	w.Config.MaxP99LatencyMS, w.NoBefore, w.Before = &strict, true, api.Metrics{}
	if res = d.Bake(context.Background(), user, w, nil); res.Verdict.Pass() || len(res.Verdict.Findings) != 1 {
		t.Fatalf("thresholds alone, p99 must be 0: %+v", res.Verdict)
	}
}

// oneEngine is a driver on a control plane of one engine, user-0001 on 2.3.1, and its client.
func oneEngine(t *testing.T) (*Driver, *client.Client) {
	t.Helper()
	srv, err := controlplane.New(controlplane.Options{DataDir: t.TempDir(), APIKey: benchKey, SeedEngines: 1, SeedVersion: "2.3.1",
		SeedBrainRows: 3, TimeScale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(client.Config{Endpoint: hs.URL, APIKey: benchKey, RequestTimeout: time.Minute, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &Driver{Client: c}, c
}
