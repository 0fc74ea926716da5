package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// brainSum is the sha256 of a brain as it is on disk: its file and its WAL.
func brainSum(t *testing.T, path string) string {
	t.Helper()
	h := sha256.New()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func ptr(f float64) *float64 { return &f }

// rehearse starts a rehearsal of user's engine and waits for its operation.
func (e *env) rehearse(user string, req api.RehearsalRequest) (api.Operation, api.Rehearsal) {
	e.t.Helper()
	op := e.wait(e.startOp("/v1/engines/"+user+"/rehearsals", req))
	var reh api.Rehearsal
	e.ok(e.do("GET", "/v1/rehearsals/"+op.Result.RehearsalID, nil), 200, &reh)
	return op, reh
}

func listed(e *env, query string) []string {
	var l api.EngineList
	e.ok(e.do("GET", "/v1/engines"+query, nil), 200, &l)
	var ids []string
	for _, en := range l.Engines {
		ids = append(ids, en.UserID)
	}
	return ids
}

var rehearsalAnalysis = api.RehearsalAnalysis{MaxErrorRate: ptr(0.05), MaxP99LatencyMS: ptr(1500), MinCacheHitRatio: ptr(0.6),
	BaselineTolerance: 0.5, MaxEvalRegression: 0.05}

// TestRehearsal_majorOnACopy: 2.4.0 → 3.0.0 rehearsed on a brain with turns. The destructive
// migration runs on the copy only (timed), the source keeps its brain byte for byte, the staging
// engine answers /health while kept, is never listed with the fleet, and DELETE removes it and
// its brain.
func TestRehearsal_majorOnACopy(t *testing.T) {
	e := newEnv(t, withSeed(1, "2.4.0"))
	e.turns("user-0001", 5, "what is on my calendar")
	// The snapshot checkpoints the brain's WAL into its file (its bytes move, its content does
	// not); from then on nothing may change a byte of it.
	sn := e.snapshot("user-0001")
	before := brainSum(t, e.srv.BrainPath("user-0001"))
	op, reh := e.rehearse("user-0001", api.RehearsalRequest{Version: "3.0.0", SnapshotID: sn.ID, ReplayTurns: 3, EvalSuite: "regression",
		Analysis: rehearsalAnalysis, KeepEngine: true})
	if op.Status != api.OpSucceeded || reh.Status != api.RehearsalPassed {
		t.Fatalf("rehearsal: op %s %+v, rehearsal %s %+v", op.Status, op.Error, reh.Status, reh.FailedChecks)
	}
	if after := brainSum(t, e.srv.BrainPath("user-0001")); after != before {
		t.Fatal("the source brain changed during the rehearsal")
	}
	if en := e.engine("user-0001"); en.EngineVersion != "2.4.0" || en.SchemaVersion != 5 || en.Status != api.StatusRunning {
		t.Fatalf("source engine moved: %+v", en)
	}
	if len(reh.Migrations) != 1 || reh.Migrations[0].ID != "0006_knowledge_json" || !reh.Migrations[0].Destructive ||
		reh.Migrations[0].DurationMS <= 0 {
		t.Fatalf("migrations: %+v", reh.Migrations)
	}
	if reh.ReplayedTurns != 3 || reh.FromVersion != "2.4.0" || reh.ToVersion != "3.0.0" || reh.SnapshotID != sn.ID || reh.SnapshotSchema != 5 {
		t.Fatalf("rehearsal record: %+v", reh)
	}
	if schema, _, err := brainSchema(e.srv.BrainPath(reh.StagingUserID)); err != nil || schema != 6 {
		t.Fatalf("staging brain at schema %d (%v), want 6", schema, err)
	}
	contents := e.turnContents(reh.StagingUserID)
	if len(contents) < 3 || contents[len(contents)-1] != "what is on my calendar" {
		t.Fatalf("replayed turns on staging: %v", contents)
	}
	if ids := listed(e, ""); strings.Join(ids, ",") != "user-0001" {
		t.Fatalf("GET /v1/engines lists %v, want the fleet only", ids)
	}
	if ids := listed(e, "?include_staging=true"); len(ids) != 2 {
		t.Fatalf("include_staging lists %v", ids)
	}
	res, err := http.Get(reh.StagingURL + "/health")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("staging_url %s /health: %v %v", reh.StagingURL, res, err)
	}
	res.Body.Close()
	e.wantErr(e.do("POST", "/v1/engines/"+reh.StagingUserID+"/upgrade", api.UpgradeRequest{Version: "3.0.0"}, idem()), 409,
		api.CodeInvalidRequest)
	var l api.RehearsalList
	e.ok(e.do("GET", "/v1/engines/user-0001/rehearsals", nil), 200, &l)
	if len(l.Rehearsals) != 1 || l.Rehearsals[0].ID != reh.ID {
		t.Fatalf("list: %+v", l)
	}
	e.ok(e.do("DELETE", "/v1/rehearsals/"+reh.ID, nil), 204, nil)
	if ids := listed(e, "?include_staging=true"); len(ids) != 1 {
		t.Fatalf("staging engine left after DELETE: %v", ids)
	}
	if _, err := os.Stat(e.srv.BrainPath(reh.StagingUserID)); !os.IsNotExist(err) {
		t.Fatalf("staging brain left after DELETE: %v", err)
	}
	reh = api.Rehearsal{ID: reh.ID}
	e.ok(e.do("GET", "/v1/rehearsals/"+reh.ID, nil), 200, &reh)
	if reh.StagingStatus != api.StagingRemoved || reh.StagingURL != "" || reh.Status != api.RehearsalPassed {
		t.Fatalf("after DELETE: %+v", reh)
	}
	e.wantErr(e.do("GET", "/v1/rehearsals/reh-nope", nil), 404, api.CodeRehearsalNotFound)
}

// TestRehearsal_badPatchFailsAndLeavesNothing: 2.4.1 fails its verdict, naming the metrics, and
// its staging engine is gone even with keep_engine. The source serves turns throughout.
func TestRehearsal_badPatchFailsAndLeavesNothing(t *testing.T) {
	e := newEnv(t, withSeed(1, "2.4.0"))
	e.turns("user-0001", 3, "hello")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var served, refused int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := e.do("POST", "/v1/engines/user-0001/turns", api.TurnsRequest{Count: 1, Content: "during"})
			if r.status == 200 {
				served++
			} else {
				refused++
			}
		}
	}()
	op, reh := e.rehearse("user-0001", api.RehearsalRequest{Version: "2.4.1", Analysis: rehearsalAnalysis, KeepEngine: true})
	close(stop)
	wg.Wait()
	if served == 0 || refused != 0 {
		t.Fatalf("source engine during the rehearsal: %d turns served, %d refused", served, refused)
	}
	if op.Status != api.OpSucceeded || reh.Status != api.RehearsalFailed {
		t.Fatalf("want a failed verdict: op %s %+v, rehearsal %s", op.Status, op.Error, reh.Status)
	}
	var names []string
	for _, c := range reh.FailedChecks {
		t.Logf("failed check: %s", c.Detail)
		names = append(names, c.Metric)
		if !strings.Contains(c.Detail, "staging") {
			t.Errorf("check %s does not give the figures: %s", c.Metric, c.Detail)
		}
	}
	for _, want := range []string{"error_rate", "p99_latency_ms", "cache_hit_ratio"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("failed checks %v do not name %s", names, want)
		}
	}
	if reh.StagingStatus != api.StagingRemoved || reh.StagingURL != "" {
		t.Fatalf("staging engine of a failed rehearsal: %s %s", reh.StagingStatus, reh.StagingURL)
	}
	if ids := listed(e, "?include_staging=true"); len(ids) != 1 {
		t.Fatalf("engines left: %v", ids)
	}
	if _, err := os.Stat(e.srv.BrainPath(reh.StagingUserID)); !os.IsNotExist(err) {
		t.Fatalf("staging brain left: %v", err)
	}
	if got := len(e.turnContents("user-0001")); got != 3+served {
		t.Fatalf("source brain holds %d test turns, want %d", got, 3+served)
	}
}

// TestRehearsal_badRequests: bad input is refused before anything starts.
func TestRehearsal_badRequests(t *testing.T) {
	e := newEnv(t, withSeed(2, "2.4.0"))
	sn := e.snapshot("user-0002")
	for name, c := range map[string]struct {
		req  api.RehearsalRequest
		code string
	}{
		"no version":       {api.RehearsalRequest{}, api.CodeInvalidRequest},
		"unknown version":  {api.RehearsalRequest{Version: "9.9.9"}, api.CodeVersionNotFound},
		"not an upgrade":   {api.RehearsalRequest{Version: "2.4.0"}, api.CodeInvalidRequest},
		"other's snapshot": {api.RehearsalRequest{Version: "3.0.0", SnapshotID: sn.ID}, api.CodeSnapshotMismatch},
		"replay too many":  {api.RehearsalRequest{Version: "3.0.0", ReplayTurns: 5000}, api.CodeInvalidRequest},
	} {
		r := e.bad("POST", "/v1/engines/user-0001/rehearsals", c.req, idem())
		if got := r.errCode(); got != c.code {
			t.Errorf("%s: %d %s, want %s", name, r.status, got, c.code)
		}
	}
	if ids := listed(e, "?include_staging=true"); len(ids) != 2 {
		t.Fatalf("engines: %v", ids)
	}
}

// TestRehearsal_processRuntime: on the process runtime the staging engine is a real process on
// the migrated copy, the replay real requests to it, its staging_url a real /health; a failed
// verdict leaves no process. The source serves turns in the window, which is its baseline.
func TestRehearsal_processRuntime(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.4.0"))
	rehearseOnRealEngines(t, e, func() int { return len(enginePIDs(e.dir)) })
}

// rehearseOnRealEngines is the rehearsal on a runtime whose engines are real (processes,
// containers): live counts the engines that run.
func rehearseOnRealEngines(t *testing.T, e *env, live func() int) {
	t.Helper()
	e.turns("user-0001", 20, "summarise my inbox")
	sn := e.snapshot("user-0001")
	before := brainSum(t, e.srv.BrainPath("user-0001"))
	_, reh := e.rehearse("user-0001", api.RehearsalRequest{Version: "3.0.0", SnapshotID: sn.ID, ReplayTurns: 20, Analysis: rehearsalAnalysis,
		KeepEngine: true})
	if reh.Status != api.RehearsalPassed {
		t.Fatalf("rehearsal %s: %+v %+v", reh.Status, reh.FailedChecks, reh.Error)
	}
	if after := brainSum(t, e.srv.BrainPath("user-0001")); after != before {
		t.Fatal("the source brain changed during the rehearsal")
	}
	if reh.Staging.Requests != 20 || reh.Production == nil || reh.Production.Requests != 20 || len(reh.Migrations) != 1 ||
		reh.Migrations[0].DurationMS <= 0 {
		t.Fatalf("figures: staging %+v production %+v migrations %+v", reh.Staging, reh.Production, reh.Migrations)
	}
	t.Logf("migration %s on the copy: %.3f ms", reh.Migrations[0].ID, reh.Migrations[0].DurationMS)
	_, url, _, ok := e.srv.EngineProcess(reh.StagingUserID)
	if !ok || url != reh.StagingURL {
		t.Fatalf("staging engine: %s %v, staging_url %s", url, ok, reh.StagingURL)
	}
	res, err := http.Get(reh.StagingURL + "/health")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("staging_url /health: %v %v", res, err)
	}
	res.Body.Close()
	if n := live(); n != 2 {
		t.Fatalf("%d engines run, want the source and the staging engine", n)
	}
	e.ok(e.do("DELETE", "/v1/rehearsals/"+reh.ID, nil), 204, nil)
	if n := live(); n != 1 {
		t.Fatalf("%d engines run after DELETE, want the source only", n)
	}

	e.turns("user-0001", 20, "summarise my inbox")
	_, bad := e.rehearse("user-0001", api.RehearsalRequest{Version: "2.4.1", SnapshotID: sn.ID, ReplayTurns: 20, Analysis: rehearsalAnalysis,
		KeepEngine: true})
	if bad.Status != api.RehearsalFailed || len(bad.FailedChecks) == 0 {
		t.Fatalf("2.4.1 rehearsal %s: %+v", bad.Status, bad.FailedChecks)
	}
	if n := live(); n != 1 {
		t.Fatalf("%d engines run after a failed rehearsal, want the source only", n)
	}
}

// TestRehearsal_restartMidRehearsal: a control plane stopped while a rehearsal runs comes back
// with the rehearsal errored (interrupted), its staging engine and brain removed, the source
// engine running as it was, and a kept staging engine of a passed rehearsal still there.
func TestRehearsal_restartMidRehearsal(t *testing.T) {
	e := newEnv(t, withSeed(1, "2.4.0"), withTimeScale(0.05))
	kept := e.wait(e.startOp("/v1/engines/user-0001/rehearsals", api.RehearsalRequest{Version: "3.0.0", MetricsWindowSeconds: 1,
		KeepEngine: true,
		Analysis:   api.RehearsalAnalysis{BaselineTolerance: 10, MaxNewWarningKinds: 5}}))
	var keptReh api.Rehearsal
	e.ok(e.do("GET", "/v1/rehearsals/"+kept.Result.RehearsalID, nil), 200, &keptReh)
	if keptReh.Status != api.RehearsalPassed || keptReh.StagingStatus != api.StagingRunning {
		t.Fatalf("the kept rehearsal: %s %s %+v %+v", keptReh.Status, keptReh.StagingStatus, keptReh.FailedChecks, keptReh.Error)
	}
	op := e.startOp("/v1/engines/user-0001/rehearsals", api.RehearsalRequest{Version: "3.0.0", MetricsWindowSeconds: 60})
	for deadline := time.Now().Add(20 * time.Second); step(op, api.StepMetrics).Status != api.OpRunning; {
		if time.Now().After(deadline) || op.Done() {
			t.Fatalf("the rehearsal never reached its metrics window: %+v", op)
		}
		e.ok(e.do("GET", fmt.Sprintf("/v1/operations/%s?wait=5s&revision=%d", op.ID, op.Revision), nil), 200, &op)
	}
	var running api.Rehearsal
	e.ok(e.do("GET", "/v1/rehearsals/"+op.Result.RehearsalID, nil), 200, &running)
	e2 := e.restart()
	var reh api.Rehearsal
	e2.ok(e2.do("GET", "/v1/rehearsals/"+running.ID, nil), 200, &reh)
	if reh.Status != api.RehearsalErrored || reh.Error == nil || reh.Error.Code != api.CodeInterrupted ||
		reh.StagingStatus != api.StagingRemoved {
		t.Fatalf("after the restart: %+v", reh)
	}
	if _, err := os.Stat(e2.srv.BrainPath(running.StagingUserID)); !os.IsNotExist(err) {
		t.Fatalf("the interrupted rehearsal's staging brain is left: %v", err)
	}
	if en := e2.engine("user-0001"); en.Status != api.StatusRunning || en.EngineVersion != "2.4.0" || en.CurrentOperationID != "" {
		t.Fatalf("source engine after the restart: %+v", en)
	}
	if ids := listed(e2, "?include_staging=true"); len(ids) != 2 {
		t.Fatalf("engines after the restart: %v, want the source and the kept staging engine of %s", ids, kept.Result.RehearsalID)
	}
}
