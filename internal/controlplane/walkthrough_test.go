package controlplane

import (
	"slices"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// TestUpgradeRestoreWalkthrough is the README's walk-through: turns, snapshot, upgrade to
// 2.4.0, more turns, restore at 2.3.0 — the first turns are there, the later ones are gone.
func TestUpgradeRestoreWalkthrough(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	e.turns(u, 3, "before")
	sn := e.snapshot(u)
	if sn.BrainWrites != 3 || sn.SchemaVersion != 4 || sn.EngineVersion != "2.3.0" || sn.Status != api.SnapshotVerified {
		t.Fatalf("snapshot = %+v", sn)
	}
	op := e.wait(e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op)
	}
	en := e.engine(u)
	if en.EngineVersion != "2.4.0" || en.SchemaVersion != 5 || en.Status != api.StatusRunning || en.LastMigrationAt == nil {
		t.Fatalf("engine after upgrade = %+v", en)
	}
	e.turns(u, 2, "after")
	if got := e.turnContents(u); len(got) != 5 {
		t.Fatalf("turns = %v", got)
	}
	op = e.wait(e.startOp("/v1/engines/"+u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	en = e.engine(u)
	if en.EngineVersion != "2.3.0" || en.SchemaVersion != 4 || en.Status != api.StatusRunning {
		t.Fatalf("engine after restore = %+v", en)
	}
	if got := e.turnContents(u); !slices.Equal(got, []string{"before", "before", "before"}) {
		t.Fatalf("turns after restore = %v", got)
	}
	if en.BrainWrites != sn.BrainWrites {
		t.Fatalf("brain_writes after the restore is %d, want the snapshot's %d", en.BrainWrites, sn.BrainWrites)
	}
}
