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
	var moments []string
	note := func(m string) { moments = append(moments, m) }
	rr := ReleaseRun{Engine: e, TakeSnapshot: true, Snapshot: api.CreateSnapshotRequest{Description: "test", RetentionDays: 1},
		Move:      ReleaseMove{UserID: user, Version: "2.4.0", Key: client.NewIdempotencyKey(), Started: func(api.Operation) { note("started") }},
		EvalSuite: "regression", MaxRegression: 1,
		Watch: &Watch{Window: time.Minute, Config: upgrade.AnalysisConfig{BaselineTolerance: 100}},
		Hooks: ReleaseHooks{Begin: func(s string) { note("begin " + s) }, Snapshot: func(string) { note("snapshot") },
			Baseline: func(float64) { note("baseline") }, Moved: func(api.Operation) { note("moved") },
			Score: func(float64) { note("score") }, Baking: func(*Watch) { note("baking") }}}
	res := d.Release(ctx, rr)
	want := []string{"begin snapshot", "snapshot", "begin baseline", "baseline", "started", "moved", "score", "baking"}
	if res.Step != "" || res.Failed() || res.Bake == nil || !reflect.DeepEqual(moments, want) {
		t.Fatalf("run: step %q (%v), failed %v, bake %+v, moments %v", res.Step, res.Err, res.Failed(), res.Bake, moments)
	}
	if res.SnapshotID == "" || rr.Watch.SnapshotID != res.SnapshotID || rr.Watch.OperationID != res.Op.ID || res.Op.ID == "" {
		t.Fatalf("snapshot %q, watch %+v, op %q", res.SnapshotID, rr.Watch, res.Op.ID)
	}
	if now, err := c.GetEngine(ctx, user); err != nil || now.EngineVersion != "2.4.0" || now.Status != api.StatusRunning {
		t.Fatalf("engine after the run: %s %s (%v)", now.EngineVersion, now.Status, err)
	}

	// The same run from the stale read: the engine moved since, so nothing starts.
	moments = nil
	rr.TakeSnapshot, rr.EvalSuite, rr.Watch = false, "", nil
	res = d.Release(ctx, rr)
	var me *MoveError
	if res.Step != RunMove || !errors.As(res.Err, &me) || me.Step != MoveChanged || !reflect.DeepEqual(moments, []string{"snapshot"}) {
		t.Fatalf("stale run: step %q (%v), moments %v", res.Step, res.Err, moments)
	}
}
