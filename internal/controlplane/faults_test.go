package controlplane

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func (e *env) addFault(f api.Fault) api.Fault {
	e.t.Helper()
	var out api.Fault
	e.ok(e.do("POST", "/v1/faults", f), 201, &out)
	return out
}

func (e *env) fired(id string) int {
	e.t.Helper()
	var fl api.FaultList
	e.ok(e.do("GET", "/v1/faults", nil), 200, &fl)
	for _, f := range fl.Faults {
		if f.ID == id {
			return f.Fired
		}
	}
	e.t.Fatalf("fault %s not listed", id)
	return 0
}

func TestFaults_ServerErrorBurstAndScope(t *testing.T) {
	e := newEnv(t, withFaults)
	f := e.addFault(api.Fault{Kind: api.FaultServerError, UserID: "user-0001", Count: 2})
	for i := 0; i < 2; i++ {
		d := e.wantErr(e.do("GET", "/v1/engines/user-0001", nil), 500, api.CodeFaultInjected)
		if !strings.Contains(d.Message, f.ID) {
			t.Fatalf("message should name the fault: %s", d.Message)
		}
	}
	e.engine("user-0001") // the burst is over
	e.engine("user-0002") // never in scope
	if n := e.fired(f.ID); n != 2 {
		t.Fatalf("fired = %d", n)
	}
	// Version scope: only engines running 2.3.0; a path prefix and a method narrow it further.
	e.ok(e.do("DELETE", "/v1/faults", nil), 204, nil)
	f = e.addFault(api.Fault{Kind: api.FaultServerError, Version: "2.3.0", PathPrefix: "/v1/engines/user-0002/turns", Method: "POST"})
	e.turns("user-0001", 1, "")
	e.wantErr(e.do("POST", "/v1/engines/user-0002/turns", api.TurnsRequest{Count: 1}), 500, api.CodeFaultInjected)
	e.ok(e.do("GET", "/v1/engines/user-0002/turns", nil), 200, nil)
	if got := e.turnContents("user-0002"); len(got) != 0 {
		t.Fatalf("a 5xx before the work must not write: %v", got)
	}
	// Probability: about half of 200 requests fail.
	e.ok(e.do("DELETE", "/v1/faults", nil), 204, nil)
	f = e.addFault(api.Fault{Kind: api.FaultServerError, Probability: 0.5, PathPrefix: "/v1/versions"})
	failed := 0
	for i := 0; i < 200; i++ {
		if e.do("GET", "/v1/versions", nil).status == 500 {
			failed++
		}
	}
	if failed < 60 || failed > 140 || e.fired(f.ID) != failed {
		t.Fatalf("probability 0.5 failed %d of 200 (fired %d)", failed, e.fired(f.ID))
	}
}

func TestFaults_RateLimitWithAndWithoutRetryAfter(t *testing.T) {
	e := newEnv(t, withFaults)
	e.addFault(api.Fault{Kind: api.FaultRateLimit, RetryAfterSeconds: 7, Count: 1})
	r := e.do("GET", "/v1/engines", nil)
	e.wantErr(r, 429, api.CodeRateLimited)
	if r.header.Get("Retry-After") != "7" {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	e.addFault(api.Fault{Kind: api.FaultRateLimit, Count: 1})
	r = e.do("GET", "/v1/engines", nil)
	e.wantErr(r, 429, api.CodeRateLimited)
	if r.header.Get("Retry-After") != "" {
		t.Fatalf("Retry-After should be absent: %q", r.header.Get("Retry-After"))
	}
	e.ok(e.do("GET", "/v1/engines", nil), 200, nil)
}

// TestFaults_DropResponseDoesTheWork: the client sees a dropped connection, but the turn is in
// the brain — exactly the case a retrying client must handle.
func TestFaults_DropResponseDoesTheWork(t *testing.T) {
	e := newEnv(t, withFaults)
	e.addFault(api.Fault{Kind: api.FaultDropResponse, UserID: "user-0001", Method: "POST", Count: 1})
	_, err := e.try(context.Background(), "POST", "/v1/engines/user-0001/turns", api.TurnsRequest{Count: 1, Content: "written anyway"})
	if err == nil {
		t.Fatal("expected the connection to drop")
	}
	if got := e.turnContents("user-0001"); len(got) != 1 || got[0] != "written anyway" {
		t.Fatalf("turns = %v", got)
	}
	// An operation start dropped, then retried with the same key: one operation.
	// Go's transport itself may retry a request carrying an Idempotency-Key on a reused
	// connection, so the first call may or may not report the drop; either way the key makes
	// the retry return the operation the dropped request started.
	drop := e.addFault(api.Fault{Kind: api.FaultDropResponse, PathPrefix: "/v1/engines/user-0002/snapshots", Count: 1})
	key := "Idempotency-Key: snap-retry"
	_, _ = e.try(context.Background(), "POST", "/v1/engines/user-0002/snapshots", api.CreateSnapshotRequest{}, key) // may or may not see the drop
	if e.fired(drop.ID) != 1 {
		t.Fatal("the drop fault did not fire")
	}
	var op api.Operation
	e.ok(e.do("POST", "/v1/engines/user-0002/snapshots", api.CreateSnapshotRequest{}, key), 200, &op)
	e.wait(op)
	var st api.Stats
	e.ok(e.do("GET", "/v1/stats", nil), 200, &st)
	if st.OperationsByUser["user-0002/snapshot"] != 1 {
		t.Fatalf("retry after a dropped response started another operation: %v", st.OperationsByUser)
	}
}

func TestFaults_SlowResponse(t *testing.T) {
	e := newEnv(t, withFaults)
	e.addFault(api.Fault{Kind: api.FaultSlowResponse, DelayMS: 300, PathPrefix: "/v1/versions"})
	start := time.Now()
	e.ok(e.do("GET", "/v1/versions", nil), 200, nil)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("slow_response answered after %s", el)
	}
	start = time.Now()
	e.ok(e.do("GET", "/v1/engines", nil), 200, nil)
	if el := time.Since(start); el > 250*time.Millisecond {
		t.Fatalf("an unscoped path was slowed: %s", el)
	}
}

// TestFaults_MigrationFailsHalfWay: the transaction rolls back, the dirty flag stays set, the
// engine is failed and boots nothing until a restore.
func TestFaults_MigrationFailsHalfWay(t *testing.T) {
	e := newEnv(t, withFaults)
	const u = "user-0001"
	e.turns(u, 2, "precious")
	sn := e.snapshot(u)
	e.addFault(api.Fault{Kind: api.FaultMigrationFail, Version: "2.4.0"})
	op := e.wait(e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeMigrationFailed || !strings.Contains(op.Error.Message, sn.ID) {
		t.Fatalf("op = %+v", op.Error)
	}
	en := e.engine(u)
	if en.Status != api.StatusFailed || en.Error.Code != api.CodeMigrationFailed || en.SchemaVersion != 4 {
		t.Fatalf("engine = %+v", en)
	}
	db, err := sql.Open("sqlite", "file:"+e.srv.BrainPath(u)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var schema int
	var dirty bool
	if err := db.QueryRow(`SELECT version, dirty FROM schema_migrations`).Scan(&schema, &dirty); err != nil {
		t.Fatal(err)
	}
	half := tableExists(db, "skill_library")
	db.Close()
	if schema != 5 || !dirty || half {
		t.Fatalf("brain: schema %d dirty %v, half-applied table present %v", schema, dirty, half)
	}
	// Fail closed: no version boots on the dirty brain, not even with the fault gone.
	e.ok(e.do("DELETE", "/v1/faults", nil), 204, nil)
	e.wantErr(e.do("POST", "/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}, idem()), 409, api.CodeEngineUnavailable)
	op = e.wait(e.startOp("/v1/engines/"+u+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	if got := e.turnContents(u); len(got) != 2 {
		t.Fatalf("turns after recovery = %v", got)
	}
	// The retry goes through once the fault is gone.
	sn2 := e.snapshot(u)
	op = e.wait(e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn2.ID}))
	if op.Status != api.OpSucceeded || e.engine(u).SchemaVersion != 5 {
		t.Fatalf("upgrade after recovery: %+v", op.Error)
	}
}

func TestFaults_HealthNeverOK(t *testing.T) {
	e := newEnv(t, withFaults)
	f := e.addFault(api.Fault{Kind: api.FaultHealthNeverOK, UserID: "user-0002", Version: "2.3.1"})
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("out-of-scope engine: %+v", op.Error)
	}
	op = e.wait(e.startOp("/v1/engines/user-0002/upgrade", api.UpgradeRequest{Version: "2.3.1", HealthTimeoutSeconds: 5}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeHealthCheckFailed {
		t.Fatalf("op = %+v", op)
	}
	if en := e.engine("user-0002"); en.Status != api.StatusFailed || en.EngineVersion != "2.3.1" || en.Health.Status == "ok" {
		t.Fatalf("engine = %+v", en)
	}
	if e.fired(f.ID) != 1 {
		t.Fatal("fault should have fired once")
	}
}

func TestFaults_Validation(t *testing.T) {
	e := newEnv(t, withFaults)
	for _, c := range []struct {
		f     any
		field string
	}{
		{map[string]any{"kind": "meteor"}, "kind"},
		{map[string]any{"kind": "process_kill"}, "kind"},
		{map[string]any{"kind": "server_error", "probability": 2}, "probability"},
		{map[string]any{"kind": "server_error", "count": -1}, "count"},
		{map[string]any{"kind": "slow_response", "delay_ms": -5}, "delay_ms"},
		{map[string]any{"kind": "server_error", "user_id": "../x"}, "user_id"},
		{map[string]any{"kind": "server_error", "fired": 3}, "fired"},
		{map[string]any{"kind": "server_error", "bogus": 1}, "bogus"},
	} {
		d := e.wantErr(e.bad("POST", "/v1/faults", c.f), 400, api.CodeInvalidRequest)
		if d.Field != c.field {
			t.Fatalf("%v: field %q, want %q", c.f, d.Field, c.field)
		}
	}
	e.wantErr(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultServerError, Version: "1.0.0"}), 404, api.CodeVersionNotFound)
	var fl api.FaultList
	e.ok(e.do("GET", "/v1/faults", nil), 200, &fl)
	if len(fl.Faults) != 0 {
		t.Fatalf("rejected faults were added: %+v", fl)
	}
}
