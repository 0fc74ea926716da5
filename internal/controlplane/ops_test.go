package controlplane

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestUpgrade_SnapshotRequiredAndMismatch(t *testing.T) {
	e := newEnv(t)
	const u = "/v1/engines/user-0001"
	d := e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.4.0"}, idem()), 409, api.CodeSnapshotRequired)
	if d.Field != "snapshot_id" || !strings.Contains(d.Message, "user-0001") {
		t.Fatalf("detail = %+v", d)
	}
	// Another engine's snapshot does not protect this one.
	other := e.snapshot("user-0002")
	d = e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: other.ID}, idem()), 409, api.CodeSnapshotMismatch)
	if !strings.Contains(d.Message, other.ID) {
		t.Fatalf("mismatch message should name the snapshot: %s", d.Message)
	}
	// A snapshot taken at an earlier state (before the engine's last migration) does not either.
	old := e.snapshot("user-0001")
	op := e.wait(e.startOp(u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: old.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	d = e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "3.0.0", SnapshotID: old.ID}, idem()), 409, api.CodeSnapshotMismatch)
	if !strings.Contains(d.Message, "2.3.0") {
		t.Fatalf("message should say the snapshot's version: %s", d.Message)
	}
	// A patch without a schema change needs no snapshot.
	var path api.UpgradePath
	e.ok(e.do("GET", "/v1/upgrade-path?from=2.4.0&to=2.4.1", nil), 200, &path)
	if path.RequiresSnapshot {
		t.Fatal("2.4.0 -> 2.4.1 should need no snapshot")
	}
	op = e.wait(e.startOp(u+"/upgrade", api.UpgradeRequest{Version: "2.4.1"}))
	if op.Status != api.OpSucceeded || e.engine("user-0001").EngineVersion != "2.4.1" {
		t.Fatalf("patch upgrade: %+v", op)
	}
	for _, s := range op.Steps {
		if s.Name == api.StepMigrate {
			t.Fatalf("a patch must not migrate: %+v", op.Steps)
		}
	}
}

func TestUpgrade_MajorHopByHopRewritesData(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	sn := e.snapshot(u)
	op := e.wait(e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "3.0.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	en := e.engine(u)
	if en.EngineVersion != "3.0.0" || en.SchemaVersion != 6 {
		t.Fatalf("engine = %+v", en)
	}
	db, err := sql.Open("sqlite", "file:"+e.srv.BrainPath(u)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, debug int
	var value string
	if err := db.QueryRow(`SELECT count(*), min(value_json) FROM knowledge_store`).Scan(&n, &value); err != nil {
		t.Fatalf("3.0.0's knowledge_store: %v", err)
	}
	if n != 5 || !strings.HasPrefix(value, `{"text":`) {
		t.Fatalf("knowledge_store not rewritten into JSON: %d rows, %q", n, value)
	}
	if err := db.QueryRow(`SELECT count(*) FROM observability_events WHERE kind = 'debug'`).Scan(&debug); err != nil {
		t.Fatal(err)
	}
	if debug != 0 {
		t.Fatalf("destructive migration kept %d debug events", debug)
	}
	var schema int
	var dirty bool
	if err := db.QueryRow(`SELECT version, dirty FROM schema_migrations`).Scan(&schema, &dirty); err != nil {
		t.Fatal(err)
	}
	if schema != 6 || dirty {
		t.Fatalf("schema record = %d dirty=%v", schema, dirty)
	}
}

// TestOldVersionOnMigratedBrain: 2.3.1 on a brain 2.4.0 migrated fails to boot with
// MIGRATION_REQUIRED, the engine stays failed, and only a restore brings it back.
func TestOldVersionOnMigratedBrain(t *testing.T) {
	e := newEnv(t)
	const u = "/v1/engines/user-0001"
	e.turns("user-0001", 2, "kept")
	sn := e.snapshot("user-0001")
	e.wait(e.startOp(u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	d := e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, idem()), 409, api.CodeDowngradeNotAllowed)
	if d.Field != "allow_downgrade" {
		t.Fatalf("detail = %+v", d)
	}
	op := e.wait(e.startOp(u+"/upgrade", api.UpgradeRequest{Version: "2.3.1", AllowDowngrade: true}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeMigrationRequired {
		t.Fatalf("op = %+v", op)
	}
	en := e.engine("user-0001")
	if en.Status != api.StatusFailed || en.Error == nil || en.Error.Code != api.CodeMigrationRequired || en.SchemaVersion != 5 {
		t.Fatalf("engine = %+v", en)
	}
	e.wantErr(e.do("POST", u+"/turns", api.TurnsRequest{Count: 1}), 503, api.CodeEngineUnavailable)
	e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.4.0"}, idem()), 409, api.CodeEngineUnavailable)
	e.wantErr(e.do("POST", u+"/snapshots", nil, idem()), 409, api.CodeEngineUnavailable)
	e.wantErr(e.do("POST", u+"/evals", api.EvalRequest{Suite: "smoke"}, idem()), 409, api.CodeEngineUnavailable)
	// The snapshot holds schema 4: restoring it at 2.4.0 (schema 5) is refused, at 2.3.1 it works.
	e.wantErr(e.do("POST", u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.4.0"}, idem()), 409, api.CodeSnapshotMismatch)
	op = e.wait(e.startOp(u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	en = e.engine("user-0001")
	if en.Status != api.StatusRunning || en.EngineVersion != "2.3.1" || en.SchemaVersion != 4 || en.Error != nil {
		t.Fatalf("engine after restore = %+v", en)
	}
	if got := e.turnContents("user-0001"); len(got) != 2 {
		t.Fatalf("turns = %v", got)
	}
	e.turns("user-0001", 1, "works again")
}

func TestRestore_CorruptOrMissingSnapshotTouchesNothing(t *testing.T) {
	e := newEnv(t)
	const u = "/v1/engines/user-0001"
	sn := e.snapshot("user-0001")
	e.turns("user-0001", 3, "after snapshot")
	before := e.engine("user-0001")

	f, err := os.OpenFile(e.srv.SnapshotPath(sn.ID), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var got api.Snapshot
	e.ok(e.do("GET", "/v1/snapshots/"+sn.ID, nil), 200, &got)
	if got.Status != api.SnapshotCorrupt {
		t.Fatalf("status = %s, want corrupt", got.Status)
	}
	d := e.wantErr(e.do("POST", u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}, idem()), 409, api.CodeSnapshotCorrupt)
	if !strings.Contains(d.Message, "nothing was changed") {
		t.Fatalf("message = %s", d.Message)
	}
	e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}, idem()), 409, api.CodeSnapshotCorrupt)
	after := e.engine("user-0001")
	if after.Generation != before.Generation || after.Status != api.StatusRunning {
		t.Fatalf("engine changed: %+v -> %+v", before, after)
	}
	if got := e.turnContents("user-0001"); len(got) != 3 {
		t.Fatalf("turns = %v", got)
	}
	os.Remove(e.srv.SnapshotPath(sn.ID))
	e.ok(e.do("GET", "/v1/snapshots/"+sn.ID, nil), 200, &got)
	if got.Status != api.SnapshotMissing {
		t.Fatalf("status = %s, want missing", got.Status)
	}
	var list api.SnapshotList
	e.ok(e.do("GET", u+"/snapshots?status=missing", nil), 200, &list)
	if len(list.Snapshots) != 1 {
		t.Fatalf("list = %+v", list)
	}
	e.wantErr(e.do("POST", u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}, idem()), 409, api.CodeSnapshotCorrupt)
	// Another engine's snapshot is refused too.
	other := e.snapshot("user-0002")
	e.wantErr(e.do("POST", u+"/restore", api.RestoreRequest{SnapshotID: other.ID, Version: "2.3.0"}, idem()), 409, api.CodeSnapshotMismatch)
}

func TestRestore_NoStaleWALSurvives(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	sn := e.snapshot(u)
	e.turns(u, 4, "lost")
	// The engine keeps its brain open, so the turns may sit in the -wal file: the restore must
	// not let them come back.
	op := e.wait(e.startOp("/v1/engines/"+u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	if got := e.turnContents(u); len(got) != 0 {
		t.Fatalf("turns after restore = %v", got)
	}
	sum, _, _ := fileSHA256(e.srv.BrainPath(u))
	if sum != sn.SHA256 {
		// The engine reopened the brain; the main file is still the snapshot's bytes until
		// something is written.
		t.Fatalf("brain is not the snapshot's bytes")
	}
}

func TestSnapshot_RetentionPatchDelete(t *testing.T) {
	e := newEnv(t)
	sn := e.snapshot("user-0001")
	if sn.RetentionDays != 7 || !sn.RetainUntil.Equal(sn.CreatedAt.AddDate(0, 0, 7)) || len(sn.SHA256) != 64 || sn.SizeBytes == 0 {
		t.Fatalf("snapshot = %+v", sn)
	}
	d := e.wantErr(e.do("DELETE", "/v1/snapshots/"+sn.ID, nil), 409, api.CodeSnapshotRetained)
	if !strings.Contains(d.Message, sn.RetainUntil.UTC().Format(time.RFC3339)) || !strings.Contains(d.Message, "force=true") {
		t.Fatalf("message should say when retention ends and how to force: %s", d.Message)
	}
	var got api.Snapshot
	e.ok(e.do("PATCH", "/v1/snapshots/"+sn.ID, map[string]any{"retention_days": 30, "description": "pre-2.4"}), 200, &got)
	if got.RetentionDays != 30 || got.Description != "pre-2.4" || !got.RetainUntil.Equal(sn.CreatedAt.AddDate(0, 0, 30)) {
		t.Fatalf("patched = %+v", got)
	}
	e.ok(e.do("PATCH", "/v1/snapshots/"+sn.ID, map[string]any{"description": "only this"}), 200, &got)
	if got.RetentionDays != 30 || got.Description != "only this" {
		t.Fatalf("patch must leave absent fields alone: %+v", got)
	}
	e.ok(e.do("DELETE", "/v1/snapshots/"+sn.ID+"?force=true", nil), 204, nil)
	if _, err := os.Stat(e.srv.SnapshotPath(sn.ID)); !os.IsNotExist(err) {
		t.Fatalf("snapshot file still there: %v", err)
	}
	e.wantErr(e.do("GET", "/v1/snapshots/"+sn.ID, nil), 404, api.CodeSnapshotNotFound)
	e.wantErr(e.do("DELETE", "/v1/snapshots/"+sn.ID+"?force=true", nil), 404, api.CodeSnapshotNotFound)
}

// TestSnapshot_OnlineWhileTurnsArrive: turns keep succeeding during the backup, and the
// snapshot's brain_writes is exactly the number of turns its file holds.
func TestSnapshot_OnlineWhileTurnsArrive(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SeedBrainRows = 2000 })
	const u = "user-0001"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := e.do("POST", "/v1/engines/"+u+"/turns", api.TurnsRequest{Count: 1}); r.status == 200 {
				written.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()
	for written.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	sn := e.snapshot(u)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d turns failed during the online snapshot", failed.Load())
	}
	db, err := sql.Open("sqlite", "file:"+e.srv.SnapshotPath(sn.ID)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM conversations WHERE thread_id = ?`, turnsThread).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != sn.BrainWrites || n == 0 {
		t.Fatalf("snapshot holds %d turns but records brain_writes %d", n, sn.BrainWrites)
	}
	if en := e.engine(u); en.BrainWrites < sn.BrainWrites {
		t.Fatalf("engine brain_writes %d < snapshot's %d", en.BrainWrites, sn.BrainWrites)
	}
}

// TestDrain: a turn in flight when the upgrade starts finishes and is kept; new turns get 503
// until the engine runs again.
func TestDrain_InFlightTurnsFinishNewOnesGet503(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	unlock, done := e.holdTurnInFlight(u, "in flight")
	// The drain timeout is scaled too: 3600s nominal is 3.6s here.
	op := e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 3600})
	e.waitStatus(u, api.StatusDraining)
	time.Sleep(30 * time.Millisecond) // the drain keeps waiting for the turn
	var cur api.Operation
	e.ok(e.do("GET", "/v1/operations/"+op.ID, nil), 200, &cur)
	if cur.Done() || cur.Steps[0].Name != api.StepDrain || cur.Steps[0].Status != api.OpRunning {
		t.Fatalf("drain should wait for the in-flight turn: %+v", cur.Steps)
	}
	en := e.engine(u)
	if en.Status != api.StatusDraining || en.CurrentOperationID != op.ID {
		t.Fatalf("engine = %+v", en)
	}
	d := e.wantErr(e.do("POST", "/v1/engines/"+u+"/turns", api.TurnsRequest{Count: 1}), 503, api.CodeEngineUnavailable)
	if d.OperationID != op.ID {
		t.Fatalf("503 should name the operation: %+v", d)
	}
	unlock()
	if r := <-done; r.status != 200 {
		t.Fatalf("in-flight turn: %d %s", r.status, r.body)
	}
	op = e.wait(op)
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	if got := e.turnContents(u); len(got) != 1 || got[0] != "in flight" {
		t.Fatalf("turns = %v", got)
	}
}

func TestOperations_OnePerEngineIdempotencyIfMatch(t *testing.T) {
	e := newEnv(t, withTimeScale(0.05))
	const u = "/v1/engines/user-0001"
	en := e.engine("user-0001")
	e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, idem(), fmt.Sprintf(`If-Match: "%d"`, en.Generation+1)), 412, api.CodePreconditionFailed)

	key := "Idempotency-Key: upgrade-once"
	var op api.Operation
	e.ok(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, key, fmt.Sprintf(`If-Match: "%d"`, en.Generation)), 202, &op)
	running := e.engine("user-0001")
	if running.CurrentOperationID != op.ID || running.Generation <= en.Generation {
		t.Fatalf("engine while running = %+v", running)
	}
	// The same key and body: the same operation, not a second one.
	var again api.Operation
	r := e.do("POST", u+"/upgrade", map[string]any{"version": "2.3.1"}, key)
	e.ok(r, 200, &again)
	if again.ID != op.ID || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay = %+v", again)
	}
	// The same key with a different body.
	e.wantErr(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.4.1"}, key), 422, api.CodeIdempotencyMismatch)
	// Another operation while one runs.
	d := e.wantErr(e.do("POST", u+"/evals", api.EvalRequest{Suite: "smoke"}, idem()), 409, api.CodeOperationInProgress)
	if d.OperationID != op.ID {
		t.Fatalf("409 should carry the running operation: %+v", d)
	}
	op = e.wait(op)
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	// After it finished, the key still answers with the same operation.
	e.ok(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, key), 200, &again)
	if again.ID != op.ID || !again.Done() {
		t.Fatalf("replay after finish = %+v", again)
	}
	var st api.Stats
	e.ok(e.do("GET", "/v1/stats", nil), 200, &st)
	if st.Operations[api.OpUpgrade] != 1 || st.OperationsByUser["user-0001/upgrade"] != 1 || st.Requests["POST /v1/engines/{user_id}/upgrade"] != 5 {
		t.Fatalf("stats = %+v", st)
	}
	var list api.OperationList
	e.ok(e.do("GET", u+"/operations", nil), 200, &list)
	if len(list.Operations) != 1 || list.Operations[0].ID != op.ID {
		t.Fatalf("operations = %+v", list)
	}
	e.wantErr(e.do("GET", "/v1/operations/op-missing", nil), 404, api.CodeOperationNotFound)
	if e.engine("user-0001").CurrentOperationID != "" {
		t.Fatal("current_operation_id should clear when the operation ends")
	}
}

func TestLongPoll(t *testing.T) {
	e := newEnv(t, withTimeScale(0.05))
	op := e.startOp("/v1/engines/user-0001/evals", api.EvalRequest{Suite: "regression"})
	// A different revision answers at once.
	start := time.Now()
	var got api.Operation
	e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=30s&revision=%d", op.ID, op.Revision+100), nil), 200, &got)
	if time.Since(start) > time.Second {
		t.Fatal("a stale revision should answer at once")
	}
	// The current revision blocks until the operation changes, then answers with a newer one.
	e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=30s&revision=%d", got.ID, got.Revision), nil), 200, &got)
	if got.Revision <= op.Revision && !got.Done() {
		t.Fatalf("long-poll returned without a change: %+v", got)
	}
	got = e.wait(got)
	if got.Status != api.OpSucceeded || got.Result.EvalSuite != "regression" || got.Result.EvalScore <= 0 {
		t.Fatalf("eval = %+v", got)
	}
	// A done operation answers at once; an unchanged one waits out the wait.
	start = time.Now()
	e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=30s&revision=%d", got.ID, got.Revision), nil), 200, &got)
	if time.Since(start) > time.Second {
		t.Fatal("a done operation should answer at once")
	}
}

func TestLongPoll_WaitExpiresAndDisconnectReleases(t *testing.T) {
	e := newEnv(t, withTimeScale(10)) // the eval takes 30s: nothing changes during the test
	op := e.startOp("/v1/engines/user-0001/evals", api.EvalRequest{Suite: "slow"})
	e.ok(e.do("GET", "/v1/operations/"+op.ID, nil), 200, &op)
	start := time.Now()
	var got api.Operation
	e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=300ms&revision=%d", op.ID, op.Revision), nil), 200, &got)
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second || got.Revision != op.Revision {
		t.Fatalf("wait expiry after %s, revision %d", el, got.Revision)
	}
	// A client that goes away frees the handler (the server's Close would hang otherwise).
	ctx, cancel := contextWithTimeout(100 * time.Millisecond)
	defer cancel()
	_, err := e.try(ctx, "GET", fmt.Sprintf("/v1/operations/%s?wait=60s&revision=%d", op.ID, op.Revision), nil)
	if err == nil {
		t.Fatal("expected the client's deadline to end the long-poll")
	}
	e.ts.CloseClientConnections()
}

func TestEvalsAndMetrics_DeterministicAndProfiled(t *testing.T) {
	e := newEnv(t, withFaults)
	score := func(u, suite string) float64 {
		op := e.wait(e.startOp("/v1/engines/"+u+"/evals", api.EvalRequest{Suite: suite}))
		if op.Status != api.OpSucceeded {
			t.Fatalf("eval: %+v", op.Error)
		}
		return op.Result.EvalScore
	}
	a, b := score("user-0001", "regression"), score("user-0001", "regression")
	if a != b {
		t.Fatalf("same engine and suite gave %v and %v", a, b)
	}
	metrics := func(u string) api.Metrics {
		var m api.Metrics
		e.ok(e.do("GET", "/v1/engines/"+u+"/metrics?window=300s", nil), 200, &m)
		return m
	}
	m1 := metrics("user-0001")
	if m2 := metrics("user-0001"); m1.ErrorRate != m2.ErrorRate || m1.P99LatencyMS != m2.P99LatencyMS || m1.Requests != m2.Requests {
		t.Fatalf("metrics not deterministic: %+v vs %+v", m1, m2)
	}
	e.turns("user-0001", 10, "")
	if m := metrics("user-0001"); m.Requests != m1.Requests+10 || m.WindowSeconds != 300 {
		t.Fatalf("turns should count as requests: %d -> %d", m1.Requests, m.Requests)
	}
	// The bad patch: higher error rate, ~3x P99, a new warning kind, a clearly lower eval score.
	sn := e.snapshot("user-0002")
	op := e.wait(e.startOp("/v1/engines/user-0002/upgrade", api.UpgradeRequest{Version: "2.4.1", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	bad := metrics("user-0002")
	if bad.ErrorRate < 0.06 || bad.P99LatencyMS < 2.5*m1.P99LatencyMS || len(bad.WarningKinds) == 0 || len(m1.WarningKinds) != 0 {
		t.Fatalf("2.4.1 metrics = %+v vs %+v", bad, m1)
	}
	if s := score("user-0002", "regression"); s > a-0.1 {
		t.Fatalf("2.4.1 eval %v should be clearly below %v", s, a)
	}
	// eval_regression drops the score of the scoped engine only.
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultEvalRegression, UserID: "user-0001"}), 201, nil)
	if s := score("user-0001", "regression"); s > a-0.2 {
		t.Fatalf("eval_regression: %v vs %v", s, a)
	}
	e.ok(e.do("DELETE", "/v1/faults", nil), 204, nil)
	if s := score("user-0001", "regression"); s != a {
		t.Fatalf("after clearing faults: %v vs %v", s, a)
	}
}

func TestEngines_ListFilterPageETag(t *testing.T) {
	e := newEnv(t, withSeed(5, "2.3.0"))
	if err := e.srv.CreateEngine("alice", "2.4.0"); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.CreateEngine("alice", "2.4.0"); err == nil {
		t.Fatal("creating an engine twice should fail")
	}
	var seen []string
	tok := ""
	for pages := 0; ; pages++ {
		var l api.EngineList
		e.ok(e.do("GET", "/v1/engines?limit=2&page_token="+tok, nil), 200, &l)
		for _, en := range l.Engines {
			seen = append(seen, en.UserID)
			if !strings.HasSuffix(en.URL, "/engines/"+en.UserID) || en.Health.Status != "ok" {
				t.Fatalf("engine = %+v", en)
			}
		}
		if tok = l.NextPageToken; tok == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "alice,user-0001,user-0002,user-0003,user-0004,user-0005" {
		t.Fatalf("paged = %v", seen)
	}
	var l api.EngineList
	e.ok(e.do("GET", "/v1/engines?version=2.4.0", nil), 200, &l)
	if len(l.Engines) != 1 || l.Engines[0].UserID != "alice" || l.Engines[0].SchemaVersion != 5 {
		t.Fatalf("version filter = %+v", l)
	}
	e.ok(e.do("GET", "/v1/engines?user_id_prefix=user-000&status=running&limit=1000", nil), 200, &l)
	if len(l.Engines) != 5 || l.NextPageToken != "" {
		t.Fatalf("prefix filter = %d", len(l.Engines))
	}
	r := e.do("GET", "/v1/engines/alice", nil)
	var en api.Engine
	e.ok(r, 200, &en)
	if r.header.Get("ETag") != fmt.Sprintf(`"%d"`, en.Generation) {
		t.Fatalf("ETag %q for generation %d", r.header.Get("ETag"), en.Generation)
	}
}

func TestCatalogEndpoints(t *testing.T) {
	e := newEnv(t)
	var vl api.VersionList
	e.ok(e.do("GET", "/v1/versions", nil), 200, &vl)
	if len(vl.Versions) != 6 || vl.Versions[0].Version != "2.2.0" || vl.Versions[5].Version != "3.0.0" {
		t.Fatalf("versions = %+v", vl)
	}
	for _, v := range vl.Versions {
		for _, m := range v.Migrations {
			if m.SQL != "" {
				t.Fatalf("GET /v1/versions should omit SQL (%s)", m.ID)
			}
		}
	}
	var p api.UpgradePath
	e.ok(e.do("GET", "/v1/upgrade-path?from=2.3.0&to=3.0.0", nil), 200, &p)
	want, _ := e.srv.cat.Path("2.3.0", "3.0.0")
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("path = %+v\nwant %+v", p, want)
	}
	if !p.Destructive || !p.RequiresSnapshot || len(p.Hops) != 2 || len(p.BreakingChanges) == 0 || len(p.MigrationGuideURLs) != 1 {
		t.Fatalf("2.3.0 -> 3.0.0 = %+v", p)
	}
	e.ok(e.do("GET", "/v1/upgrade-path?from=2.4.0&to=2.3.1", nil), 200, &p)
	if !p.RequiresRestore || p.Kind != "downgrade" {
		t.Fatalf("downgrade path = %+v", p)
	}
}

// A client whose POST was cut off before the answer finds the operation it started by its
// Idempotency-Key, also after a restart; a key that started nothing finds nothing.
func TestOperations_FoundByIdempotencyKey(t *testing.T) {
	e := newEnv(t, withTimeScale(0.05))
	const u = "/v1/engines/user-0001"
	e.wait(e.startOp(u+"/evals", api.EvalRequest{Suite: "smoke"}))
	var op api.Operation
	e.ok(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, "Idempotency-Key: cut-off-create"), 202, &op)
	op = e.wait(op)
	find := func(e *env, key string) []api.Operation {
		var list api.OperationList
		e.ok(e.do("GET", u+"/operations?idempotency_key="+key, nil), 200, &list)
		return list.Operations
	}
	if got := find(e, "cut-off-create"); len(got) != 1 || got[0].ID != op.ID || got[0].IdempotencyKey != "cut-off-create" || got[0].FromVersion != "2.3.0" {
		t.Fatalf("operations by key = %+v, want only %s (from 2.3.0)", got, op.ID)
	}
	if got := find(e, "never-sent"); len(got) != 0 {
		t.Fatalf("a key that started nothing found %+v", got)
	}
	e.wantErr(e.bad("GET", u+"/operations?idempotency_key=", nil), 400, api.CodeInvalidRequest)
	if got := find(e.restart(), "cut-off-create"); len(got) != 1 || got[0].ID != op.ID {
		t.Fatalf("after a restart the key finds %+v, want %s", got, op.ID)
	}
}
