//go:build linux

package controlplane

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
)

// withProcess runs the engines as stand-in processes (built once per test binary).
func withProcess(t *testing.T) envOption {
	t.Helper()
	cmd, err := standinbuild.Command()
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) { o.Runtime, o.EngineCommand = RuntimeProcess, cmd }
}

// enginePIDs lists the live engine processes of the control plane over dataDir.
func enginePIDs(dataDir string) []int { return standinbuild.EnginePIDs(dataDir) }

// noEnginesLeft fails unless every engine process of dataDir is gone (briefly waited for).
func noEnginesLeft(t *testing.T, dataDir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := enginePIDs(dataDir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine processes outlived their control plane: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEngineLog waits until user's engine log (the processes' stdout) contains text.
func (e *env) waitEngineLog(user, text string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(e.dir, "logs", user+".log"))
		if bytes.Contains(b, []byte(text)) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("engine log of %s never showed %s:\n%s", user, text, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) pid(user string) int {
	e.t.Helper()
	pid, _, _, ok := e.srv.EngineProcess(user)
	if !ok {
		e.t.Fatalf("no engine process for %s", user)
	}
	return pid
}

func alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(st), ") Z ")
}

// engineTurn sends a turn straight to user's engine process, past the control plane.
func (e *env) engineTurn(user string, req EngineTurnRequest) (int, api.ErrorBody) {
	_, url, key, ok := e.srv.EngineProcess(user)
	if !ok {
		return 0, api.ErrorBody{}
	}
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest("POST", url+"/v1/turns", bytes.NewReader(b))
	hr.Header.Set("X-Engine-Key", key)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return -1, api.ErrorBody{Error: api.ErrorDetail{Message: err.Error()}}
	}
	defer res.Body.Close()
	var eb api.ErrorBody
	if res.StatusCode != 200 {
		if err := json.NewDecoder(res.Body).Decode(&eb); err != nil {
			eb.Error.Message = "undecodable error body: " + err.Error()
		}
	}
	return res.StatusCode, eb
}

func tableCount(t *testing.T, brain, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+brain+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProcess_upgradeSnapshotAndMetricsOnRealProcesses(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.1"))
	old := e.pid("user-0001")
	if en := e.engine("user-0001"); en.Status != api.StatusRunning || en.EngineVersion != "2.3.1" {
		t.Fatalf("seeded engine: %+v", en)
	}
	if tr := e.turns("user-0001", 5, "before"); tr.Written != 5 || tr.BrainWrites != 5 {
		t.Fatalf("turns through the engine process: %+v", tr)
	}
	var m api.Metrics
	e.ok(e.do("GET", "/v1/engines/user-0001/metrics?window=60s", nil), 200, &m)
	if m.Requests != 5 || m.P99LatencyMS <= 0 || m.P99LatencyMS > 790 || m.CacheHitRatio < 0.6 || m.CacheHitRatio > 0.72 {
		t.Fatalf("metrics are not the engine's reported turns: %+v", m)
	}
	// Online snapshot while the engine process holds the brain open.
	sn := e.snapshot("user-0001")
	if sn.BrainWrites != 5 || sn.SchemaVersion != 4 || !alive(old) {
		t.Fatalf("snapshot %+v (engine %d alive: %v)", sn, old, alive(old))
	}
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	if msg := step(op, api.StepMigrate).Message; !strings.Contains(msg, "migrated the brain to schema 5") {
		t.Fatalf("migrate step: %q", msg)
	}
	en := e.engine("user-0001")
	now := e.pid("user-0001")
	if en.EngineVersion != "2.4.0" || en.SchemaVersion != 5 || en.Status != api.StatusRunning || now == old || alive(old) {
		t.Fatalf("after upgrade: %+v, pid %d (old %d alive %v)", en, now, old, alive(old))
	}
	if schema, dirty, _ := brainSchema(e.srv.BrainPath("user-0001")); schema != 5 || dirty {
		t.Fatalf("brain at %d dirty %v", schema, dirty)
	}
	if got := e.turnContents("user-0001"); len(got) != 5 {
		t.Fatalf("turns after upgrade: %v", got)
	}
	if tr := e.turns("user-0001", 1, "after"); tr.BrainWrites != 6 {
		t.Fatalf("new version did not continue the brain's counter: %+v", tr)
	}
	e.ts.Close()
	e.srv.Close()
	noEnginesLeft(t, e.dir)
}

// TestProcess_snapshotsWhileTheEngineProcessWrites: the engine process commits multi-row turns
// into the brain while the control plane snapshots it from its own process; every snapshot must
// still be a committed state, verified, with its sha256 and size recorded exactly.
func TestProcess_snapshotsWhileTheEngineProcessWrites(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.1"))
	e.snapshotsWhileTurns("user-0001", 4)
}

func TestProcess_drainFinishesInFlightAndRefusesNew(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.0"))
	old := e.pid("user-0001")
	inflight := make(chan int, 1)
	go func() {
		c, _ := e.engineTurn("user-0001", EngineTurnRequest{Count: 1, Content: "in flight", DelayMS: 3000})
		inflight <- c
	}()
	e.waitEngineLog("user-0001", `"delay_ms":3000`)
	op := e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 3600})
	e.waitStatus("user-0001", api.StatusDraining)
	if r := e.do("POST", "/v1/engines/user-0001/turns", api.TurnsRequest{Count: 1, Content: "refused by the control plane"}); r.status != 503 {
		t.Fatalf("turn through the control plane during drain: %d", r.status)
	}
	// The old process itself, still draining, refuses new turns with 503.
	e.waitEngineLog("user-0001", `"message":"draining on terminated"`)
	c, eb := e.engineTurn("user-0001", EngineTurnRequest{Count: 1, Content: "refused by the engine"})
	if c != 503 || eb.Error.Code != api.CodeEngineUnavailable {
		t.Fatalf("turn straight to the draining engine: %d %+v, want 503", c, eb)
	}
	if c := <-inflight; c != 200 {
		t.Fatalf("in-flight turn: %d, want 200", c)
	}
	op = e.wait(op)
	if op.Status != api.OpSucceeded || !strings.Contains(step(op, api.StepDrain).Message, "in-flight turns finished") {
		t.Fatalf("upgrade: %+v", op)
	}
	if alive(old) {
		t.Fatalf("old engine process %d still alive", old)
	}
	got := e.turnContents("user-0001")
	if len(got) != 1 || got[0] != "in flight" {
		t.Fatalf("brain turns: %v, want only the in-flight one", got)
	}
}

func TestProcess_ignoreSIGTERMIsKilledAfterGrace(t *testing.T) {
	e := newEnv(t, withProcess(t), withFaults, withSeed(0, "2.3.0"))
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultIgnoreSIGTERM, UserID: "user-0009"}), 201, nil)
	if err := e.srv.CreateEngine("user-0009", "2.3.0"); err != nil {
		t.Fatal(err)
	}
	old := e.pid("user-0009")
	start := time.Now()
	op := e.wait(e.startOp("/v1/engines/user-0009/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 1}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	if msg := step(op, api.StepStop).Message; !strings.Contains(msg, "ignored SIGTERM") || !strings.Contains(msg, "SIGKILL") {
		t.Fatalf("stop step does not say the engine was killed: %q", msg)
	}
	if took := time.Since(start); took < minProcessGrace || alive(old) {
		t.Fatalf("killed after %s (grace %s); old alive %v", took, minProcessGrace, alive(old))
	}
	if en := e.engine("user-0009"); en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning {
		t.Fatalf("engine after upgrade: %+v", en)
	}
}

func TestProcess_killMidMigrationFailsClosedAndRestoreRecovers(t *testing.T) {
	e := newEnv(t, withProcess(t), withFaults, withSeed(1, "2.3.1"))
	e.turns("user-0001", 3, "kept")
	sn := e.snapshot("user-0001")
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultProcessKill, UserID: "user-0001"}), 201, nil)
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeMigrationFailed || !strings.Contains(op.Error.Message, "killed with SIGKILL") {
		t.Fatalf("upgrade with process_kill: %+v %+v", op.Status, op.Error)
	}
	en := e.engine("user-0001")
	if en.Status != api.StatusFailed || en.Error == nil || en.Error.Code != api.CodeMigrationFailed {
		t.Fatalf("engine after the kill: %+v", en)
	}
	if _, _, _, ok := e.srv.EngineProcess("user-0001"); ok {
		t.Fatal("an engine process still runs for the failed engine")
	}
	brain := e.srv.BrainPath("user-0001")
	if schema, dirty, _ := brainSchema(brain); schema != 5 || !dirty {
		t.Fatalf("brain schema %d dirty %v, want dirty at 5", schema, dirty)
	}
	if n := tableCount(t, brain, "skill_library"); n != 0 {
		t.Fatal("the killed migration's table exists: the brain is half-migrated")
	}
	// Rollback: restore the snapshot and boot the old version on a real process.
	op = e.wait(e.startOp("/v1/engines/user-0001/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	en = e.engine("user-0001")
	if en.Status != api.StatusRunning || en.EngineVersion != "2.3.1" || en.SchemaVersion != 4 || !alive(e.pid("user-0001")) {
		t.Fatalf("engine after restore: %+v", en)
	}
	if got := e.turnContents("user-0001"); len(got) != 3 {
		t.Fatalf("turns after restore: %v", got)
	}
	var faults api.FaultList
	e.ok(e.do("GET", "/v1/faults", nil), 200, &faults)
	if faults.Faults[0].Fired != 1 {
		t.Fatalf("process_kill fired %d times", faults.Faults[0].Fired)
	}
}

func TestProcess_versionThatNeverTurnsHealthyFails(t *testing.T) {
	e := newEnv(t, withProcess(t), withFaults, withSeed(1, "2.3.0"))
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultHealthNeverOK, Version: "2.3.1"}), 201, nil)
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1", HealthTimeoutSeconds: 2}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeHealthCheckFailed || step(op, api.StepHealth).Status != api.OpFailed {
		t.Fatalf("upgrade to a never-healthy version: %+v %+v", op.Status, op.Error)
	}
	if took := step(op, api.StepHealth).FinishedAt.Sub(*step(op, api.StepBoot).StartedAt); took < 2*time.Second || took > 8*time.Second {
		t.Fatalf("the health wait took %s, want the requested 2s", took)
	}
	if en := e.engine("user-0001"); en.Status != api.StatusFailed {
		t.Fatalf("engine: %+v", en)
	}
	if _, _, _, ok := e.srv.EngineProcess("user-0001"); ok {
		t.Fatal("the never-healthy process was left running")
	}
	noEnginesLeft(t, e.dir)
}

func TestProcess_crashIsDetected(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.1"))
	pid := e.pid("user-0001")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	en := e.waitStatus("user-0001", api.StatusFailed)
	if en.Error == nil || !strings.Contains(en.Error.Message, "exited unexpectedly") || !strings.Contains(en.Error.Message, "signal: killed") {
		t.Fatalf("crash report: %+v", en.Error)
	}
	if r := e.do("POST", "/v1/engines/user-0001/turns", api.TurnsRequest{Count: 1}); r.status != 503 {
		t.Fatalf("turn to a crashed engine: %d", r.status)
	}
}

func TestProcess_hungEngineIsFailedAndKilled(t *testing.T) {
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.1"))
	pid := e.pid("user-0001")
	first := e.engine("user-0001").LastHealthAt
	time.Sleep(3 * probeInterval)
	if again := e.engine("user-0001").LastHealthAt; again == nil || first == nil || !again.After(*first) {
		t.Fatalf("last_health_at is not refreshed by probes: %v then %v", first, again)
	}
	// Frozen: alive, holding its port, answering nothing.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	en := e.waitStatus("user-0001", api.StatusFailed)
	if en.Error == nil || en.Error.Code != api.CodeHealthCheckFailed || !strings.Contains(en.Error.Message, "stopped answering /health") {
		t.Fatalf("hung engine: %+v", en.Error)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("hung engine process %d was not killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcess_restartRestartsEnginesAndLeavesNoChild(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, withProcess(t), withDir(dir), withSeed(2, "2.3.1"))
	e.turns("user-0002", 2, "survives")
	before := []int{e.pid("user-0001"), e.pid("user-0002")}
	if got := enginePIDs(dir); len(got) != 2 {
		t.Fatalf("engine processes for the data dir: %v, want 2", got)
	}
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	noEnginesLeft(t, dir)

	e2 := newEnv(t, withProcess(t), withDir(dir), withSeed(2, "2.3.1"))
	for i, u := range []string{"user-0001", "user-0002"} {
		if en := e2.engine(u); en.Status != api.StatusRunning || e2.pid(u) == before[i] || !alive(e2.pid(u)) {
			t.Fatalf("%s after restart: %+v", u, en)
		}
	}
	if got := e2.turnContents("user-0002"); len(got) != 2 {
		t.Fatalf("turns after restart: %v", got)
	}
	if tr := e2.turns("user-0002", 1, "again"); tr.BrainWrites != 3 {
		t.Fatalf("restarted engine's counter: %+v", tr)
	}
}

func TestProcess_optionsAreChecked(t *testing.T) {
	for name, o := range map[string]Options{
		"unknown runtime":  {Runtime: "podman"},
		"docker command":   {Runtime: RuntimeDocker, EngineCommand: "engine-standin"},
		"docker template":  {Runtime: RuntimeDocker, Docker: DockerOptions{Image: "september-engine:latest"}},
		"docker admin env": {Runtime: RuntimeDocker, Docker: DockerOptions{EnvPassthrough: []string{"ENGINE_CONTROLPLANE_API_KEY"}}},
		"docker for sim":   {Docker: DockerOptions{Network: "engine_net"}},
		"process docker":   {Runtime: RuntimeProcess, EngineCommand: "sh", Docker: DockerOptions{Network: "engine_net"}},
		"command for sim":  {EngineCommand: "engine-standin"},
		"missing program":  {Runtime: RuntimeProcess, EngineCommand: "/nonexistent/engine --version {version}"},
		"bad port range":   {Runtime: RuntimeProcess, EngineCommand: "sh", PortMin: 9100, PortMax: 9001},
		"unknown version":  {Runtime: RuntimeProcess, EngineCommand: "sh", EngineCommands: map[string]string{"9.9.9": "sh"}},
		"empty command":    {Runtime: RuntimeProcess, EngineCommand: "  "},
		"sim with a range": {PortMin: 9001, PortMax: 9002},
	} {
		t.Run(name, func(t *testing.T) {
			o.DataDir, o.APIKey = t.TempDir(), testKey
			if s, err := New(o); err == nil {
				s.Close()
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func TestProcess_faultsNeedTheProcessRuntime(t *testing.T) {
	e := newEnv(t, withFaults, withSeed(1, "2.3.1"))
	e.wantErr(e.bad("POST", "/v1/faults", api.Fault{Kind: api.FaultProcessKill}), 400, api.CodeInvalidRequest)
	p := newEnv(t, withProcess(t), withFaults, withSeed(1, "2.3.1"))
	p.ok(p.do("POST", "/v1/faults", api.Fault{Kind: api.FaultProcessKill}), 201, nil)
}

// TestProcess_cleanCloseDrainsEngines: a clean stop of the control plane (what SIGTERM does)
// gives every engine its drain: the turn in flight finishes and is in the brain, and the engine
// exits by itself instead of being SIGKILLed at once.
func TestProcess_cleanCloseDrainsEngines(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, withProcess(t), withDir(dir), withSeed(1, "2.3.1"))
	pr, _ := e.srv.rt.(*procRuntime)
	p := pr.get("user-0001")
	inflight := make(chan int, 1)
	go func() {
		c, _ := e.engineTurn("user-0001", EngineTurnRequest{Count: 1, Content: "in flight at close", DelayMS: 800})
		inflight <- c
	}()
	e.waitEngineLog("user-0001", `"delay_ms":800`)
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if p.exit != "exit status 0" {
		t.Fatalf("engine process at close: %s, want a clean exit after its drain", p.exit)
	}
	if c := <-inflight; c != 200 {
		t.Fatalf("turn in flight at close: %d, want 200", c)
	}
	noEnginesLeft(t, dir)
	e2 := newEnv(t, withProcess(t), withDir(dir), withSeed(1, "2.3.1"))
	if got := e2.turnContents("user-0001"); len(got) != 1 || got[0] != "in flight at close" {
		t.Fatalf("brain turns after restart: %v, want the in-flight one", got)
	}
}

// TestProcess_engineEnvironmentIsAnAllowList: an engine process inherits only what a program
// needs to run, never the control plane's admin key or any other setting or secret of the
// control plane's environment.
func TestProcess_engineEnvironmentIsAnAllowList(t *testing.T) {
	t.Setenv("ENGINE_CONTROLPLANE_API_KEY", "admin-key-from-env")
	t.Setenv("ENGINE_CONTROLPLANE_API_KEY_FILE", "/run/secrets/admin-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
	t.Setenv("LC_ALL", "C")
	e := newEnv(t, withProcess(t), withSeed(1, "2.3.1"))
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", e.pid("user-0001")))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"ENGINE_CONTROLPLANE_", "admin-key-from-env", "AWS_SECRET_ACCESS_KEY", "cloud-secret", testKey} {
		if bytes.Contains(env, []byte(leak)) {
			t.Errorf("the engine's environment holds %q", leak)
		}
	}
	for _, want := range []string{"PATH=" + os.Getenv("PATH") + "\x00", "LC_ALL=C\x00", "PORT=", "SQLITE_DB_PATH=", "ENGINE_KEY_HASH="} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("the engine's environment lacks %q", want)
		}
	}
}

// TestUpgrade_ToTheRunningVersionIsANoop: an upgrade to the version an engine already runs
// succeeds at once without touching the engine: no drain, no restart (same process), no new
// generation; the operation is recorded, and its idempotency key replays it.
func TestUpgrade_ToTheRunningVersionIsANoop(t *testing.T) {
	for name, opts := range map[string][]envOption{"sim": nil, "process": {withProcess(t)}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, append(opts, withSeed(1, "2.3.1"))...)
			const u = "/v1/engines/user-0001"
			before := e.engine("user-0001")
			pid := 0
			if name == "process" {
				pid = e.pid("user-0001")
			}
			key := idem()
			var op api.Operation
			e.ok(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, key), 202, &op)
			if op.Status != api.OpSucceeded || len(op.Steps) != 0 || op.Result.EngineVersion != "2.3.1" || op.FromVersion != "2.3.1" {
				t.Fatalf("upgrade to the running version: %+v", op)
			}
			after := e.engine("user-0001")
			if after.Generation != before.Generation || after.Status != api.StatusRunning || after.CurrentOperationID != "" {
				t.Fatalf("the engine changed: %+v -> %+v", before, after)
			}
			if name == "process" && e.pid("user-0001") != pid {
				t.Fatalf("the engine process was restarted: pid %d -> %d", pid, e.pid("user-0001"))
			}
			var again api.Operation
			e.ok(e.do("POST", u+"/upgrade", api.UpgradeRequest{Version: "2.3.1"}, key), 200, &again)
			if again.ID != op.ID {
				t.Fatalf("the replay answered another operation: %s, want %s", again.ID, op.ID)
			}
			var list api.OperationList
			e.ok(e.do("GET", u+"/operations", nil), 200, &list)
			if len(list.Operations) != 1 || list.Operations[0].ID != op.ID {
				t.Fatalf("operations: %+v", list)
			}
			// The engine answers turns right after.
			if tr := e.turns("user-0001", 1, "after the no-op"); tr.Written != 1 {
				t.Fatalf("turn after the no-op: %+v", tr)
			}
		})
	}
}
