package upgrade

import (
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func engineAt(version string, schema int) api.Engine {
	return api.Engine{UserID: "user-0001", EngineID: "eng-1", EngineVersion: version, SchemaVersion: schema, BrainWrites: 100}
}

func hasProblem(ps []Problem, attr, summary string) bool {
	for _, p := range ps {
		if p.Attribute == attr && p.Summary == summary {
			return true
		}
	}
	return false
}

func TestPlanReleasePatchNeedsNothing(t *testing.T) {
	d := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.0", 4), Target: "2.3.1"})
	if d.Action != ActionUpgrade || len(d.Errors) != 0 || len(d.Warnings) != 0 || d.TakeSnapshot {
		t.Fatalf("%+v", d)
	}
}

func TestPlanReleaseNoChange(t *testing.T) {
	d := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.3.1"})
	if d.Action != ActionNone || len(d.Errors)+len(d.Warnings) != 0 {
		t.Fatalf("%+v", d)
	}
}

func TestPlanReleaseMigrationWithoutSnapshot(t *testing.T) {
	d := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.4.0"})
	if !hasProblem(d.Errors, "snapshot_id", "Snapshot Required Before Migration") {
		t.Fatalf("want snapshot error, got %+v", d.Errors)
	}
	if !strings.Contains(d.Errors[0].Detail, "auto_snapshot") || !strings.Contains(d.Errors[0].Detail, "user-0001") {
		t.Fatalf("error does not say what to do: %s", d.Errors[0].Detail)
	}
}

func TestPlanReleaseAutoSnapshot(t *testing.T) {
	d := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.4.0", AutoSnapshot: true})
	if len(d.Errors) != 0 || !d.TakeSnapshot || !hasProblem(d.Warnings, "version", "Forward-Only Brain Migration") {
		t.Fatalf("%+v", d)
	}
}

func TestPlanReleaseSnapshotLineage(t *testing.T) {
	now := time.Now()
	snap := api.Snapshot{ID: "snap-1", UserID: "user-0001", EngineID: "eng-1", EngineVersion: "2.3.1", SchemaVersion: 4, Status: api.SnapshotVerified, CreatedAt: now, RetainUntil: now.Add(7 * 24 * time.Hour)}
	ok := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.4.0", SnapshotID: "snap-1", Snapshot: &snap, Deadline: now.Add(time.Hour)})
	if len(ok.Errors) != 0 || ok.TakeSnapshot {
		t.Fatalf("good snapshot refused: %+v", ok.Errors)
	}
	other := snap
	other.UserID = "user-0002"
	bad := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.4.0", SnapshotID: "snap-1", Snapshot: &other})
	if !hasProblem(bad.Errors, "snapshot_id", "Snapshot Cannot Protect This Upgrade") {
		t.Fatalf("other engine's snapshot accepted: %+v", bad)
	}
	unknown := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.4.0", SnapshotUnknown: true})
	if len(unknown.Errors) != 0 {
		t.Fatalf("unknown snapshot must wait for apply: %+v", unknown.Errors)
	}
}

func TestPlanReleaseMajor(t *testing.T) {
	in := ReleaseIntent{Engine: engineAt("2.4.1", 5), Target: "3.0.0", AutoSnapshot: true}
	d := PlanRelease(testCatalog(t), in)
	if !hasProblem(d.Errors, "allow_major_upgrade", "Major Upgrade Not Allowed") || !strings.Contains(d.Errors[0].Detail, "https://example.test/3.0") {
		t.Fatalf("%+v", d.Errors)
	}
	in.AllowMajor = true
	d = PlanRelease(testCatalog(t), in)
	if len(d.Errors) != 0 || !hasProblem(d.Warnings, "version", "Destructive Brain Migration") || !hasProblem(d.Warnings, "version", "Major Upgrade With Breaking Changes") {
		t.Fatalf("%+v", d)
	}
}

func TestPlanReleaseUnknownVersionListsTargets(t *testing.T) {
	d := PlanRelease(testCatalog(t), ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.9.0"})
	if !hasProblem(d.Errors, "version", "Unknown Engine Version") || !strings.Contains(d.Errors[0].Detail, "2.4.0, 2.4.1, 3.0.0") {
		t.Fatalf("%+v", d.Errors)
	}
}

func TestPlanReleaseDowngrades(t *testing.T) {
	c := testCatalog(t)
	d := PlanRelease(c, ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.3.0"})
	if !hasProblem(d.Errors, "allow_downgrade", "Downgrade Not Allowed") {
		t.Fatalf("%+v", d)
	}
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.3.1", 4), Target: "2.3.0", AllowDowngrade: true})
	if d.Action != ActionDowngrade || len(d.Errors) != 0 {
		t.Fatalf("%+v", d)
	}
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.0", 5), Target: "2.3.1", AllowDowngrade: true})
	if d.Action != ActionRestore || !hasProblem(d.Errors, "snapshot_id", "Downgrade Needs A Snapshot") {
		t.Fatalf("%+v", d)
	}
	snap := api.Snapshot{ID: "s", UserID: "user-0001", EngineVersion: "2.3.1", SchemaVersion: 4, Status: api.SnapshotVerified, BrainWrites: 60}
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.0", 5), Target: "2.3.1", AllowDowngrade: true, RestoreSnapshot: &snap})
	if len(d.Errors) != 0 || !hasProblem(d.Warnings, "version", "Downgrade Restores A Snapshot") || !strings.Contains(d.Warnings[0].Detail, "40 brain writes") {
		t.Fatalf("%+v", d)
	}
}

// A rollback loses the writes since the snapshot only when it must restore it: across a schema
// change, or from a failed engine; a redeploy on the same schema loses nothing.
func TestRollbackLoss(t *testing.T) {
	snap := api.Snapshot{SchemaVersion: 4, BrainWrites: 10}
	cases := []struct {
		e    api.Engine
		want int64
	}{
		{api.Engine{SchemaVersion: 5, BrainWrites: 17, Status: api.StatusRunning}, 7},
		{api.Engine{SchemaVersion: 4, BrainWrites: 17, Status: api.StatusRunning}, 0},
		{api.Engine{SchemaVersion: 4, BrainWrites: 17, Status: api.StatusFailed}, 7},
		{api.Engine{SchemaVersion: 5, BrainWrites: 3, Status: api.StatusRunning}, 0}, // counter behind the snapshot
	}
	for _, c := range cases {
		if got := RollbackLoss(c.e, snap); got != c.want {
			t.Errorf("RollbackLoss(%+v) = %d, want %d", c.e, got, c.want)
		}
	}
}

// An engine moved above the version a resource holds: a plan that asks for nothing new leaves it
// there with a warning naming both ways out; only a move refuses, saying the resource did not
// make the upgrade; allow_downgrade plans the way back.
func TestPlanReleaseDriftAbove(t *testing.T) {
	c := testCatalog(t)
	d := PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.0", 5), Target: "2.3.1", Held: "2.3.1", PreviousVersion: "2.3.1"})
	if d.Action != ActionNone || len(d.Errors) != 0 || !hasProblem(d.Warnings, "version", "Engine Moved Above Its Version") {
		t.Fatalf("%+v", d)
	}
	for _, want := range []string{"from 2.3.1 to 2.4.0 outside this resource", "leaves the engine on 2.4.0", `set version = "2.4.0"`,
		"allow_downgrade = true and snapshot_id to a verified snapshot of the engine taken on 2.3.1 (schema 4)"} {
		if !strings.Contains(d.Warnings[0].Detail, want) {
			t.Errorf("warning %q does not say %q", d.Warnings[0].Detail, want)
		}
	}
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.0", 5), Target: "2.3.0", Held: "2.3.1", PreviousVersion: "2.3.1"})
	if !hasProblem(d.Errors, "allow_downgrade", "Downgrade Not Allowed") || !strings.Contains(d.Errors[0].Detail, "this resource did not make that upgrade") ||
		strings.Contains(d.Errors[0].Detail, "destroy") {
		t.Fatalf("%+v", d.Errors)
	}
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.0", 5), Target: "2.3.1", Held: "2.3.1", AllowDowngrade: true})
	if d.Action != ActionRestore || len(d.Warnings) != 0 {
		t.Fatalf("%+v", d)
	}
	// Without drift the hint names what destroy really rolls back to.
	d = PlanRelease(c, ReleaseIntent{Engine: engineAt("2.4.1", 5), Target: "2.4.0", PreviousVersion: "2.3.1"})
	if !hasProblem(d.Errors, "allow_downgrade", "Downgrade Not Allowed") || !strings.Contains(d.Errors[0].Detail, "rolls the engine back to 2.3.1, the version it found") {
		t.Fatalf("%+v", d.Errors)
	}
}

func TestHoldsDrift(t *testing.T) {
	for _, tc := range []struct {
		version, running string
		allow, want      bool
	}{
		{"2.4.0", "2.4.1", false, true},
		{"2.4.0", "3.0.0", false, true},
		{"2.4.0", "2.4.1", true, false}, // the drift is planned as the downgrade it asks for
		{"2.4.1", "2.4.0", false, false},
		{"2.4.0", "2.4.0", false, false},
		{"", "2.4.1", false, false}, // import: nothing held yet
		{"2.4.0", "not-a-version", false, false},
	} {
		if got := HoldsDrift(tc.version, tc.running, tc.allow); got != tc.want {
			t.Errorf("HoldsDrift(%q, %q, %v) = %v, want %v", tc.version, tc.running, tc.allow, got, tc.want)
		}
	}
}
