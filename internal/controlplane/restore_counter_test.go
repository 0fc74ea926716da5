package controlplane

import (
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// A restore brings back the write counter with the brain: the engine reports the snapshot's
// brain_writes, a new snapshot records the same figure, and the next write counts on from it.
func TestRestore_bringsBackTheWriteCounter(t *testing.T) {
	restoreBringsBackTheWriteCounter(t, newEnv(t, withSeed(1, "2.3.1")))
}

func restoreBringsBackTheWriteCounter(t *testing.T, e *env) {
	t.Helper()
	const user = "user-0001"
	base := e.engine(user).BrainWrites
	e.turns(user, 2, "kept")
	s1 := e.snapshot(user)
	if s1.BrainWrites != base+2 {
		t.Fatalf("snapshot records %d writes, want %d", s1.BrainWrites, base+2)
	}
	e.turns(user, 3, "lost")
	op := e.wait(e.startOp("/v1/engines/"+user+"/restore", api.RestoreRequest{SnapshotID: s1.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	if got := e.engine(user).BrainWrites; got != s1.BrainWrites {
		t.Fatalf("after restoring %s the engine reports brain_writes %d, want the snapshot's %d", s1.ID, got, s1.BrainWrites)
	}
	if got := e.snapshot(user).BrainWrites; got != s1.BrainWrites {
		t.Fatalf("a snapshot after the restore records %d writes, want %d", got, s1.BrainWrites)
	}
	if tr := e.turns(user, 1, "after"); tr.BrainWrites != s1.BrainWrites+1 {
		t.Fatalf("the first write after the restore reports brain_writes %d, want %d", tr.BrainWrites, s1.BrainWrites+1)
	}
	if got := e.engine(user).BrainWrites; got != s1.BrainWrites+1 {
		t.Fatalf("the engine reports brain_writes %d after one more write, want %d", got, s1.BrainWrites+1)
	}
	if got := e.snapshot(user).BrainWrites; got != s1.BrainWrites+1 {
		t.Fatalf("a snapshot after one more write records %d writes, want %d", got, s1.BrainWrites+1)
	}
}

// After a restore the counter can come back to a figure it had before, over different rows;
// last_migration_at moves on every restore, so what a snapshot would capture (version, schema,
// counter, last migration) never repeats across one, and a snapshot older than the restore no
// longer counts as protecting the brain it replaced.
func TestRestore_movesLastMigrationAtEvenOnTheSameSchema(t *testing.T) {
	e := newEnv(t, withSeed(1, "2.3.1"))
	const user = "user-0001"
	s0 := e.snapshot(user)
	e.turns(user, 2, "before the restore")
	before := e.engine(user)
	op := e.wait(e.startOp("/v1/engines/"+user+"/restore", api.RestoreRequest{SnapshotID: s0.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	e.turns(user, 2, "after the restore")
	after := e.engine(user)
	if after.EngineVersion != before.EngineVersion || after.SchemaVersion != before.SchemaVersion || after.BrainWrites != before.BrainWrites {
		t.Fatalf("setup: before %+v, after %+v: want the same version, schema and counter", before, after)
	}
	if after.LastMigrationAt == nil || (before.LastMigrationAt != nil && !after.LastMigrationAt.After(*before.LastMigrationAt)) {
		t.Fatalf("last_migration_at %v after the restore, %v before: a brain with other rows looks the same", after.LastMigrationAt, before.LastMigrationAt)
	}
}
