package client_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// These tests run the client against the real local control plane (real SQLite brains, time
// scale near zero), so the client and the server are checked to agree on the wire.

const cpKey = "integration-admin-key"

// startControlPlane runs a control plane over a fresh data dir; scale multiplies every
// nominal duration (a 30s drain takes 30s × scale).
func startControlPlane(t *testing.T, faults bool, scale float64) *client.Client {
	t.Helper()
	srv, err := controlplane.New(controlplane.Options{
		DataDir: t.TempDir(), APIKey: cpKey, SeedEngines: 3, SeedVersion: "2.3.0",
		SeedBrainRows: 5, TimeScale: scale, EnableFaults: faults,
	})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	c, err := client.New(client.Config{
		Endpoint: ts.URL, APIKey: cpKey, MaxRetries: client.DefaultMaxRetries,
		RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond,
		UserAgent: "terraform-provider-engine/test Terraform/1.11.4",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestControlPlane_readFleet(t *testing.T) {
	c := startControlPlane(t, false, 0.001)
	ctx := context.Background()

	h, err := c.Health(ctx)
	if err != nil || h.Engines != 3 {
		t.Fatalf("health %+v, %v", h, err)
	}
	all, err := c.AllEngines(ctx, client.ListEnginesOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].UserID != "user-0001" || all[2].UserID != "user-0003" {
		t.Fatalf("paged fleet %+v", all)
	}
	e, err := c.GetEngine(ctx, "user-0002")
	if err != nil || e.EngineVersion != "2.3.0" || e.Status != api.StatusRunning {
		t.Fatalf("engine %+v, %v", e, err)
	}
	if _, err := c.GetEngine(ctx, "nobody"); !client.IsNotFound(err) || !client.HasCode(err, api.CodeEngineNotFound) {
		t.Errorf("missing engine: %v", err)
	}
	vs, err := c.Versions(ctx)
	if err != nil || len(vs) < 5 || vs[0].Version != "2.2.0" {
		t.Fatalf("catalog %+v, %v", vs, err)
	}
	p, err := c.UpgradePath(ctx, "2.3.0", "2.4.0")
	if err != nil || !p.Valid || !p.RequiresSnapshot || !p.ForwardOnly {
		t.Errorf("path 2.3.0→2.4.0 %+v, %v", p, err)
	}

	bad, err := client.New(client.Config{Endpoint: c.Endpoint(), APIKey: "wrong", MaxRetries: client.DefaultMaxRetries})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = bad.AllEngines(ctx, client.ListEnginesOptions{})
	if !client.IsInvalidKey(err) || time.Since(start) > time.Second {
		t.Errorf("wrong key after %s: %v", time.Since(start), err)
	}
}

func TestControlPlane_snapshotUpgradeRestore(t *testing.T) {
	// Slow enough (a 30s drain takes 300ms) that the second upgrade below surely meets the
	// first one still running.
	c := startControlPlane(t, true, 0.01)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const user = "user-0001"

	// Test traffic that must survive the upgrade and the restore.
	if _, err := c.WriteTurns(ctx, user, api.TurnsRequest{Count: 3, Content: "before"}); err != nil {
		t.Fatal(err)
	}

	key := client.NewIdempotencyKey()
	started, err := c.CreateSnapshot(ctx, user, key, api.CreateSnapshotRequest{Description: "before 2.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	snapOp, err := c.WaitOperation(ctx, started.ID, nil)
	if err != nil || snapOp.Status != api.OpSucceeded || snapOp.Result.SnapshotID == "" {
		t.Fatalf("snapshot operation %+v, %v", snapOp, err)
	}
	replay, err := c.CreateSnapshot(ctx, user, key, api.CreateSnapshotRequest{Description: "before 2.4.0"})
	if err != nil || replay.ID != started.ID {
		t.Errorf("replaying the idempotency key gave %q (%v), want the first operation %q", replay.ID, err, started.ID)
	}
	snap, err := c.GetSnapshot(ctx, snapOp.Result.SnapshotID)
	if err != nil || snap.Status != api.SnapshotVerified || snap.EngineVersion != "2.3.0" {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}

	before, err := c.GetEngine(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upgrade(ctx, user, client.NewIdempotencyKey(), before.Generation+100, api.UpgradeRequest{Version: "2.4.0", SnapshotID: snap.ID}); !client.IsPreconditionFailed(err) {
		t.Errorf("stale If-Match: %v", err)
	}

	// Injected 5xx on reads cost retries, not the upgrade.
	if _, err := c.AddFault(ctx, api.Fault{Kind: api.FaultServerError, Method: "GET", PathPrefix: "/v1/operations/", Count: 2}); err != nil {
		t.Fatal(err)
	}
	up, err := c.Upgrade(ctx, user, client.NewIdempotencyKey(), before.Generation, api.UpgradeRequest{Version: "2.4.0", SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Upgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.4.0", SnapshotID: snap.ID})
	if id, ok := client.OperationInProgress(err); !ok || id != up.ID {
		t.Errorf("a second upgrade while one runs: %v", err)
	}
	var revisions []int64
	done, err := c.WaitOperation(ctx, up.ID, func(op api.Operation) { revisions = append(revisions, op.Revision) })
	if err != nil || done.Status != api.OpSucceeded {
		t.Fatalf("upgrade %+v, %v", done, err)
	}
	for i := 1; i < len(revisions); i++ {
		if revisions[i] <= revisions[i-1] {
			t.Errorf("onChange revisions not increasing: %v", revisions)
		}
	}
	after, err := c.GetEngine(ctx, user)
	if err != nil || after.EngineVersion != "2.4.0" || after.SchemaVersion != 5 {
		t.Fatalf("after upgrade %+v, %v", after, err)
	}
	faults, err := c.Faults(ctx)
	if err != nil || len(faults) != 1 || faults[0].Fired != 2 {
		t.Errorf("the injected 5xx did not fire twice: %+v, %v", faults, err)
	}
	if err := c.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}

	// Back to 2.3.0: only the snapshot can undo the forward-only migration.
	rs, err := c.Restore(ctx, user, client.NewIdempotencyKey(), after.Generation, api.RestoreRequest{SnapshotID: snap.ID, Version: "2.3.0"})
	if err != nil {
		t.Fatal(err)
	}
	if op, err := c.WaitOperation(ctx, rs.ID, nil); err != nil || op.Status != api.OpSucceeded {
		t.Fatalf("restore %+v, %v", op, err)
	}
	back, err := c.GetEngine(ctx, user)
	if err != nil || back.EngineVersion != "2.3.0" || back.SchemaVersion != 4 {
		t.Errorf("after restore %+v, %v", back, err)
	}
	turns, err := c.Turns(ctx, user)
	if err != nil || countContent(turns, "before") != 3 {
		t.Errorf("the turns written before the snapshot are not all back: %+v, %v", turns, err)
	}
	ops, err := c.ListOperations(ctx, user)
	if err != nil || len(ops) != 3 || ops[0].ID != rs.ID {
		t.Errorf("operations %d, %v", len(ops), err)
	}
}

func countContent(turns []api.Turn, content string) int {
	n := 0
	for _, t := range turns {
		if t.Content == content {
			n++
		}
	}
	return n
}

// TestControlPlane_faultsCostRetriesNotDuplicates: a snapshot POST whose response is dropped
// after the work was done is retried with the same Idempotency-Key and answered with the
// first operation, never a second snapshot; a 429 with Retry-After delays a read, not fails it.
func TestControlPlane_faultsCostRetriesNotDuplicates(t *testing.T) {
	c := startControlPlane(t, true, 0.001)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const user = "user-0002"

	if _, err := c.AddFault(ctx, api.Fault{Kind: api.FaultDropResponse, Method: "POST", PathPrefix: "/v1/engines/" + user + "/snapshots", Count: 1}); err != nil {
		t.Fatal(err)
	}
	op, err := c.CreateSnapshot(ctx, user, client.NewIdempotencyKey(), api.CreateSnapshotRequest{Description: "dropped once"})
	if err != nil {
		t.Fatalf("a dropped response to an idempotent POST must be retried: %v", err)
	}
	if op, err = c.WaitOperation(ctx, op.ID, nil); err != nil || op.Status != api.OpSucceeded {
		t.Fatalf("snapshot %+v, %v", op, err)
	}
	ops, err := c.ListOperations(ctx, user)
	if err != nil || len(ops) != 1 {
		t.Errorf("%d operations after one dropped-and-retried POST, want exactly 1 (%v)", len(ops), err)
	}
	snaps, err := c.ListSnapshots(ctx, user, client.ListSnapshotsOptions{})
	if err != nil || len(snaps) != 1 || snaps[0].ID != op.Result.SnapshotID {
		t.Errorf("snapshots %+v, %v; want exactly the one operation's", snaps, err)
	}

	// Without an Idempotency-Key the same drop is an error, and the client must not resend.
	if _, err := c.AddFault(ctx, api.Fault{Kind: api.FaultDropResponse, Method: "POST", PathPrefix: "/v1/engines/" + user + "/turns", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTurns(ctx, user, api.TurnsRequest{Count: 2, Content: "once"}); err == nil {
		t.Error("a dropped non-idempotent POST reported success")
	}
	turns, err := c.Turns(ctx, user)
	if err != nil || countContent(turns, "once") != 2 {
		t.Errorf("turns written %d times over, want exactly one write of 2 (%v)", countContent(turns, "once"), err)
	}

	if _, err := c.AddFault(ctx, api.Fault{Kind: api.FaultRateLimit, Method: "GET", PathPrefix: "/v1/engines/" + user, Count: 1, RetryAfterSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.GetEngine(ctx, user); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Retry-After 1 was not honoured: retried after %s", d)
	}
}
