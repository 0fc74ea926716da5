package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// restart closes the env's server and opens a new one over the same data dir.
func (e *env) restart(opts ...envOption) *env {
	e.t.Helper()
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		e.t.Fatal(err)
	}
	return newEnv(e.t, append([]envOption{withDir(e.dir)}, opts...)...)
}

func TestRestart_LosesNothing(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	e.turns(u, 3, "durable")
	sn := e.snapshot(u)
	key := "Idempotency-Key: before-restart"
	var op api.Operation
	e.ok(e.do("POST", "/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}, key), 202, &op)
	op = e.wait(op)
	before := e.engine(u)

	e2 := e.restart(withSeed(50, "2.2.0")) // seeding only happens into an empty data dir
	var l api.EngineList
	e2.ok(e2.do("GET", "/v1/engines", nil), 200, &l)
	if len(l.Engines) != 2 {
		t.Fatalf("engines after restart = %d", len(l.Engines))
	}
	after := e2.engine(u)
	if after.EngineVersion != "2.4.0" || after.SchemaVersion != 5 || after.BrainWrites != before.BrainWrites || after.Generation != before.Generation || after.EngineID != before.EngineID {
		t.Fatalf("engine after restart = %+v, before %+v", after, before)
	}
	var got api.Snapshot
	e2.ok(e2.do("GET", "/v1/snapshots/"+sn.ID, nil), 200, &got)
	if got.Status != api.SnapshotVerified || got.SHA256 != sn.SHA256 {
		t.Fatalf("snapshot after restart = %+v", got)
	}
	var again api.Operation
	e2.ok(e2.do("POST", "/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}, key), 200, &again)
	if again.ID != op.ID || again.Status != api.OpSucceeded {
		t.Fatalf("idempotent replay after restart = %+v", again)
	}
	if got := e2.turnContents(u); len(got) != 3 {
		t.Fatalf("turns after restart = %v", got)
	}
	// The restored engine still works: restore back across the restart.
	op = e2.wait(e2.startOp("/v1/engines/"+u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore after restart: %+v", op.Error)
	}
}

// TestRestart_RunningOperationIsMarkedFailed: an operation running when the control plane stops
// is reported failed (OPERATION_INTERRUPTED) by the next start, and its engine is booted on what
// its brain holds — never left "upgrading" with a dangling operation.
func TestRestart_RunningOperationIsMarkedFailed(t *testing.T) {
	e := newEnv(t, withTimeScale(1)) // real durations: the drain takes 2s
	const u = "user-0001"
	op := e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"})
	e.waitStatus(u, api.StatusDraining)
	snapOp := e.startOp("/v1/engines/user-0002/snapshots", nil)
	start := time.Now()
	e2 := e.restart(withTimeScale(0.001))
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Close waited %s for the running operation", time.Since(start))
	}
	var got api.Operation
	e2.ok(e2.do("GET", "/v1/operations/"+op.ID, nil), 200, &got)
	if got.Status != api.OpFailed || got.Error == nil || got.Error.Code != api.CodeInterrupted || !strings.Contains(got.Error.Message, "drain") {
		t.Fatalf("interrupted op = %+v", got)
	}
	// The step that was running failed; the steps that never ran are skipped, not failed.
	for _, st := range got.Steps {
		want := api.StepSkipped
		if st.Name == api.StepDrain {
			want = api.OpFailed
		}
		if st.Status != want {
			t.Errorf("step %s of the interrupted operation is %s, want %s", st.Name, st.Status, want)
		}
	}
	en := e2.engine(u)
	if en.Status != api.StatusRunning || en.EngineVersion != "2.3.0" || en.CurrentOperationID != "" {
		t.Fatalf("engine after restart = %+v", en)
	}
	// The snapshot operation either finished before the stop or was settled; no stray file is
	// left for an unrecorded snapshot.
	e2.ok(e2.do("GET", "/v1/operations/"+snapOp.ID, nil), 200, &got)
	if !got.Done() {
		t.Fatalf("snapshot op not settled: %+v", got)
	}
	if got.Status == api.OpFailed {
		if _, err := os.Stat(e2.srv.SnapshotPath(got.Result.SnapshotID)); !os.IsNotExist(err) {
			t.Fatalf("stray snapshot file: %v", err)
		}
	}
	// The engine takes new work.
	op = e2.wait(e2.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade after restart: %+v", op.Error)
	}
}

// TestRestart_InterruptedMigrationLeavesConsistentEngine: the registry says 2.3.0 mid-migration
// but the brain reached schema 5; the next start boots the version that reads it.
func TestRestart_InterruptedMigrationLeavesConsistentEngine(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	sn := e.snapshot(u)
	e.ts.Close()
	e.srv.Close()
	// Simulate a process that died right after the migration committed: the brain is at
	// schema 5, the registry still says 2.3.0 with an operation running.
	srv, err := New(Options{DataDir: e.dir, APIKey: testKey, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateBrain(srv.BrainPath(u), srv.mig, 5); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	en := srv.engines[u]
	now := time.Now().UTC()
	op := &operation{seq: 99, changed: make(chan struct{}), Operation: api.Operation{
		ID: "op-crashed", Kind: api.OpUpgrade, UserID: u, Status: api.OpRunning, Revision: 3,
		CreatedAt: now, UpdatedAt: now, FromVersion: "2.3.0", ToVersion: "2.4.0", SnapshotID: sn.ID,
		Steps: []api.Step{{Name: api.StepMigrate, Status: api.OpRunning}, {Name: api.StepBoot, Status: api.OpPending}},
	}}
	en.CurrentOperationID = op.ID
	en.Status = api.StatusUpgrading
	if err := srv.persistLocked(en, op); err != nil {
		t.Fatal(err)
	}
	srv.mu.Unlock()
	srv.Close()

	e2 := newEnv(t, withDir(e.dir))
	got := e2.engine(u)
	if got.Status != api.StatusRunning || got.EngineVersion != "2.4.0" || got.SchemaVersion != 5 || got.CurrentOperationID != "" {
		t.Fatalf("engine = %+v", got)
	}
	var o api.Operation
	e2.ok(e2.do("GET", "/v1/operations/op-crashed", nil), 200, &o)
	if o.Status != api.OpFailed || o.Error.Code != api.CodeInterrupted || o.Steps[0].Status != api.OpFailed || o.Steps[1].Status != api.StepSkipped {
		t.Fatalf("op = %+v", o)
	}
	// A dirty brain after a crash is failed, not booted.
	e2.ts.Close()
	e2.srv.Close()
	db, _ := openBrain(filepath.Join(e.dir, "brains", "user-0002.sqlite"))
	if _, err := db.Exec(`UPDATE schema_migrations SET dirty = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	srv, _ = New(Options{DataDir: e.dir, APIKey: testKey})
	srv.mu.Lock()
	en = srv.engines["user-0002"]
	op2 := &operation{seq: 100, changed: make(chan struct{}), Operation: api.Operation{ID: "op-crashed-2", Kind: api.OpUpgrade, UserID: "user-0002", Status: api.OpRunning, CreatedAt: now, UpdatedAt: now}}
	en.CurrentOperationID = op2.ID
	if err := srv.persistLocked(en, op2); err != nil {
		t.Fatal(err)
	}
	srv.mu.Unlock()
	srv.Close()
	e3 := newEnv(t, withDir(e.dir))
	if got := e3.engine("user-0002"); got.Status != api.StatusFailed || got.Error.Code != api.CodeMigrationFailed {
		t.Fatalf("dirty engine = %+v", got)
	}
}
