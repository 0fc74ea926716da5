package rollout

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// A release run takes its steps in order, telling the caller each moment, and the engine runs
// the new version; an engine that moved since it was read stops the run before anything starts.
func TestRelease(t *testing.T) {
	d, c := oneEngine(t)
	ctx, user := context.Background(), "user-0001"
	e, err := c.GetEngine(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	// A failing eval gate (every score regresses past -2) fails the upgrade; the run rolls back,
	// restoring the snapshot it took.
	cat := catalogOf(t, c)
	snap := api.CreateSnapshotRequest{Description: "test", RetentionDays: 1}
	failing := ReleaseRun{Engine: e, TakeSnapshot: true, Snapshot: snap,
		Move:      ReleaseMove{UserID: user, Version: "2.4.0", Key: client.NewIdempotencyKey()},
		EvalSuite: "regression", MaxRegression: -2, RollBack: &RollbackOptions{}, Catalog: cat}
	res := d.Release(ctx, failing)
	if res.Step != "" || !res.Regressed || !res.Failed() || res.RollBackErr != nil || res.RolledBack == nil ||
		res.RolledBack.Engine.EngineVersion != "2.3.1" || !res.RolledBack.Plan.Restore || res.RolledBack.Plan.SnapshotID != res.SnapshotID {
		t.Fatalf("failing run: step %q (%v), regressed %v, rollback %+v (%v)", res.Step, res.Err, res.Regressed, res.RolledBack, res.RollBackErr)
	}
	if e, err = c.GetEngine(ctx, user); err != nil || e.EngineVersion != "2.3.1" || e.Status != api.StatusRunning {
		t.Fatalf("engine after the rollback: %s %s (%v)", e.EngineVersion, e.Status, err)
	}

	var moments []string
	note := func(m string) { moments = append(moments, m) }
	rr := ReleaseRun{Engine: e, TakeSnapshot: true, Snapshot: snap,
		Move:      ReleaseMove{UserID: user, Version: "2.4.0", Key: client.NewIdempotencyKey(), Started: func(api.Operation) { note("started") }},
		EvalSuite: "regression", MaxRegression: 1,
		Watch: &Watch{Window: time.Minute, Config: upgrade.AnalysisConfig{BaselineTolerance: 100}},
		Hooks: ReleaseHooks{Begin: func(s string) { note("begin " + s) }, Snapshot: func(string) { note("snapshot") },
			Baseline: func(float64) { note("baseline") }, Moved: func(api.Operation) { note("moved") },
			Score: func(float64) { note("score") }, Baking: func(*Watch) { note("baking") }}}
	res = d.Release(ctx, rr)
	want := []string{"begin snapshot", "snapshot", "begin baseline", "baseline", "started", "moved", "score", "baking"}
	if res.Step != "" || res.Failed() || res.Bake == nil || res.RolledBack != nil || !reflect.DeepEqual(moments, want) {
		t.Fatalf("run: step %q (%v), failed %v, bake %+v, moments %v", res.Step, res.Err, res.Failed(), res.Bake, moments)
	}
	if res.SnapshotID == "" || rr.Watch.SnapshotID != res.SnapshotID || rr.Watch.OperationID != res.Op.ID || res.Op.ID == "" {
		t.Fatalf("snapshot %q, watch %+v, op %q", res.SnapshotID, rr.Watch, res.Op.ID)
	}
	if now, err := c.GetEngine(ctx, user); err != nil || now.EngineVersion != "2.4.0" || now.Status != api.StatusRunning {
		t.Fatalf("engine after the run: %s %s (%v)", now.EngineVersion, now.Status, err)
	}

	w := *rr.Watch

	// The same run from the stale read: the engine moved since, so nothing starts.
	moments = nil
	rr.TakeSnapshot, rr.EvalSuite, rr.Watch = false, "", nil
	res = d.Release(ctx, rr)
	var me *MoveError
	if res.Step != RunMove || !errors.As(res.Err, &me) || me.Step != MoveChanged || !reflect.DeepEqual(moments, []string{"snapshot"}) {
		t.Fatalf("stale run: step %q (%v), moments %v", res.Step, res.Err, moments)
	}

	// The watch of the upgrade, resumed past its bake and judged failing (p99 must be 0, no
	// figures from before): the run rolls the engine back to 2.3.1 from the snapshot.
	strict := 0.0
	w.From, w.To, w.BakeStartedAt, w.NoBefore, w.Config.MaxP99LatencyMS = "2.3.1", "2.4.0", time.Now().Add(-time.Hour), true, &strict
	now, err := c.GetEngine(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	res = d.ResumeRelease(ctx, user, now, &w, nil, &RollbackOptions{}, cat)
	if res.Step != "" || !res.Failed() || res.RollBackErr != nil || res.RolledBack == nil || res.RolledBack.Engine.EngineVersion != "2.3.1" ||
		res.RolledBack.Plan.SnapshotID != w.SnapshotID {
		t.Fatalf("resumed watch: step %q (%v), bake %+v, rollback %+v (%v)", res.Step, res.Err, res.Bake, res.RolledBack, res.RollBackErr)
	}
}

// catalogOf is the control plane's release catalog.
func catalogOf(t *testing.T, c *client.Client) *upgrade.Catalog {
	t.Helper()
	vs, err := c.Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := upgrade.NewCatalog(vs)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}
