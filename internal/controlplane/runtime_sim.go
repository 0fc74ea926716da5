package controlplane

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Nominal durations of the simulated steps, multiplied by the time scale.
const (
	nominalDrain        = 2 * time.Second
	nominalStop         = time.Second
	nominalMigrateBase  = time.Second
	nominalMigratePerMB = 500 * time.Millisecond
	nominalHealth       = time.Second
)

// baseRequestsPerSecond is the synthetic traffic an engine serves besides test turns.
const baseRequestsPerSecond = 0.5

// simRuntime runs engines as state machines in this process (drain → stop → migrate → boot →
// health), so thousands fit on one machine. A running engine is its brain, opened by the control
// plane itself (engineState.db) when turns arrive; migrations run here with golang-migrate, and
// metrics come from the version's profile plus deterministic noise.
type simRuntime struct {
	s *Server
	hostBrain
}

var _ engineRuntime = (*simRuntime)(nil)

func newSimRuntime(s *Server) *simRuntime {
	return &simRuntime{s: s, hostBrain: hostBrain{path: s.BrainPath}}
}

func (r *simRuntime) name() string        { return RuntimeSim }
func (r *simRuntime) realProcesses() bool { return false }

// resume has nothing to start: a simulated engine runs as soon as its record says so.
func (r *simRuntime) resume() {}

// close closes the brains the control plane holds open for the engines.
func (r *simRuntime) close() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, e := range r.s.engines {
		r.closeBrainLocked(e)
	}
}

// boot has nothing to wait for: a provisioned engine is running.
func (r *simRuntime) boot(string, string) error { return nil }

func (r *simRuntime) removeLocked(e *engineState) { r.closeBrainLocked(e) }

func (r *simRuntime) closeBrainLocked(e *engineState) {
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
}

func (r *simRuntime) process(string) (int, string, string, bool) { return 0, "", "", false }

// fail ends op on a failed step with the engine failed and its brain closed.
func (r *simRuntime) fail(op *operation, step, code, msg string) {
	r.s.mu.Lock()
	r.closeBrainLocked(r.s.engines[op.UserID])
	r.s.mu.Unlock()
	r.s.failOp(op, step, code, msg, true)
}

// drainAndStop lets in-flight turns finish while new ones get 503, then stops the engine and
// closes its brain. A failed engine has nothing to drain.
func (r *simRuntime) drainAndStop(op *operation, timeout time.Duration) bool {
	s := r.s
	e, wasFailed := s.beginDrain(op)
	s.mu.Lock()
	var drained chan struct{}
	inflight := e.inflight
	if inflight > 0 {
		drained = make(chan struct{})
		e.drained = drained
	}
	s.mu.Unlock()
	if drained != nil {
		t := time.NewTimer(s.scaled(timeout))
		select {
		case <-drained:
			t.Stop()
		case <-t.C:
			s.mu.Lock()
			left := e.inflight
			s.mu.Unlock()
			s.failOp(op, api.StepDrain, api.CodeEngineUnavailable, fmt.Sprintf("%d turns were still in flight after the %s drain timeout; nothing was changed; retry or raise drain_timeout_seconds", left, timeout), false)
			return false
		case <-s.ctx.Done():
			return false
		}
	}
	if !wasFailed && !s.sleep(nominalDrain) {
		return false
	}
	s.finishStep(op, api.StepDrain, fmt.Sprintf("%d in-flight turns finished", inflight))
	s.begin(op, api.StepStop, map[bool]string{true: "", false: api.StatusStopped}[wasFailed])
	s.mu.Lock()
	r.closeBrainLocked(e)
	s.mu.Unlock()
	if !s.sleep(nominalStop) {
		return false
	}
	s.finishStep(op, api.StepStop, "engine stopped")
	return true
}

// migrate runs the path's migrations hop by hop in this process.
func (r *simRuntime) migrate(op *operation, path api.UpgradePath, _ time.Duration) bool {
	e := r.s.begin(op, api.StepMigrate, api.StatusUpgrading)
	for _, hop := range path.Hops {
		if len(hop.Migrations) == 0 {
			continue
		}
		if ok := r.migrateHop(op, e, hop); !ok {
			return false
		}
	}
	r.s.finishStep(op, api.StepMigrate, fmt.Sprintf("brain at schema %d", path.ToSchema))
	return true
}

// migrateHop runs one hop's migrations with golang-migrate. A migration_fail fault makes the
// hop's first migration run half its statements and fail: the transaction rolls back and the
// dirty flag stays, so the engine is failed until restored.
func (r *simRuntime) migrateHop(op *operation, e *engineState, hop api.Hop) bool {
	s := r.s
	brain := s.BrainPath(op.UserID)
	target := hop.Migrations[len(hop.Migrations)-1].ToSchema
	src := s.mig
	if f := s.faults.fire([]string{api.FaultMigrationFail}, op.UserID, hop.To, "", ""); s.opts.EnableFaults && f != nil {
		src = s.mig.failingAt(hop.Migrations[0].ToSchema)
	}
	var size int64
	if fi, err := os.Stat(brain); err == nil {
		size = fi.Size()
	}
	if !s.sleep(nominalMigrateBase + time.Duration(float64(nominalMigratePerMB)*float64(size)/(1<<20))) {
		return false
	}
	if err := migrateBrain(brain, src, target); err != nil {
		schema, dirty, _ := brainSchema(brain)
		msg := fmt.Sprintf("migration %s (%s to %s) failed: %v; the transaction rolled back and the brain is marked dirty at schema %d (dirty=%v); restore the snapshot taken before the upgrade", hop.Migrations[0].ID, hop.From, hop.To, err, schema, dirty)
		if op.SnapshotID != "" {
			msg += " (" + op.SnapshotID + ")"
		}
		r.fail(op, api.StepMigrate, api.CodeMigrationFailed, msg)
		return false
	}
	s.migrated(op, e, target)
	return true
}

// bootAndCheck boots version on the brain and waits for health. A version whose schema differs
// from the brain's refuses to boot (MIGRATION_REQUIRED), as the real Engine does.
func (r *simRuntime) bootAndCheck(op *operation, version string, healthTimeout time.Duration) {
	s := r.s
	e, v := s.beginBoot(op, version)
	if !s.sleep(time.Duration(v.Profile.BootSeconds * float64(time.Second))) {
		return
	}
	brain := s.BrainPath(op.UserID)
	schema, dirty, err := brainSchema(brain)
	switch {
	case err != nil:
		r.fail(op, api.StepBoot, api.CodeMigrationFailed, fmt.Sprintf("%s could not open user %s's brain: %v; restore a snapshot", v.Version, op.UserID, err))
		return
	case dirty:
		r.fail(op, api.StepBoot, api.CodeMigrationFailed, fmt.Sprintf("%s refuses to boot: the brain is dirty at schema %d (a migration failed); restore a snapshot", v.Version, schema))
		return
	case schema > v.SchemaVersion:
		r.fail(op, api.StepBoot, api.CodeMigrationRequired, fmt.Sprintf("%s reads brain schema %d, but user %s's brain is at schema %d (migrated forward by a newer version): restore a snapshot taken at schema %d to run %s", v.Version, v.SchemaVersion, op.UserID, schema, v.SchemaVersion, v.Version))
		return
	case schema < v.SchemaVersion:
		r.fail(op, api.StepBoot, api.CodeMigrationRequired, fmt.Sprintf("%s needs brain schema %d, but user %s's brain is at schema %d: upgrade through the catalog's migrations instead", v.Version, v.SchemaVersion, op.UserID, schema))
		return
	}
	db, err := openBrain(brain)
	if err != nil {
		r.fail(op, api.StepBoot, api.CodeInternal, err.Error())
		return
	}
	s.mu.Lock()
	e.db, e.SchemaVersion = db, schema
	s.mu.Unlock()
	s.finishStep(op, api.StepBoot, fmt.Sprintf("%s booted on schema %d", v.Version, schema))

	s.begin(op, api.StepHealth, "")
	if f := s.faults.fire([]string{api.FaultHealthNeverOK}, op.UserID, v.Version, "", ""); s.opts.EnableFaults && f != nil {
		if !s.sleep(healthTimeout) {
			return
		}
		r.fail(op, api.StepHealth, api.CodeHealthCheckFailed, fmt.Sprintf("%s on user %s never reported healthy within %s", v.Version, op.UserID, healthTimeout))
		return
	}
	if !s.sleep(nominalHealth) {
		return
	}
	s.mu.Lock()
	now := time.Now().UTC()
	e.Status, e.Health, e.LastHealthAt, e.Error = api.StatusRunning, healthOK(), &now, nil
	s.mu.Unlock()
	s.bootSucceeded(op, v.Version, schema)
}

// turns writes the turns into the brain through the control plane's own connection to it.
func (r *simRuntime) turns(e *engineState, req api.TurnsRequest) (api.TurnsResult, *apiError) {
	s := r.s
	e.turnMu.Lock()
	defer e.turnMu.Unlock()
	s.mu.Lock()
	if e.db == nil {
		db, err := openBrain(s.BrainPath(e.UserID))
		if err != nil {
			s.mu.Unlock()
			return api.TurnsResult{}, newErr(http.StatusInternalServerError, api.CodeInternal, err.Error())
		}
		e.db = db
	}
	db, after := e.db, e.BrainWrites+int64(req.Count)
	s.mu.Unlock()
	turns, err := writeTurns(db, req.Count, req.Content, after)
	if err != nil {
		return api.TurnsResult{}, newErr(http.StatusInternalServerError, api.CodeInternal, fmt.Sprintf("writing turns into user %s's brain failed: %v", e.UserID, err))
	}
	s.mu.Lock()
	e.BrainWrites = after
	now := time.Now()
	e.writes = append(e.writes, writeEvent{at: now, count: req.Count})
	if len(e.writes) > 1024 {
		e.writes = e.writes[len(e.writes)-1024:]
	}
	err = s.reg.putEngines(e.Engine)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("registry write failed", "user_id", e.UserID, "error", err)
	}
	return api.TurnsResult{Written: len(turns), BrainWrites: after, Turns: turns}, nil
}

// metricsLocked are the version's profile plus deterministic noise; test turns count as
// requests on top of the base rate.
func (r *simRuntime) metricsLocked(e *engineState, m *api.Metrics) {
	var turns int64
	for _, ev := range e.writes {
		if ev.at.After(m.From) {
			turns += int64(ev.count)
		}
	}
	user, version := e.UserID, e.EngineVersion
	v, _ := r.s.cat.Get(version)
	m.Requests = int64(math.Round(m.To.Sub(m.From).Seconds()*baseRequestsPerSecond)) + turns
	m.ErrorRate = clamp01(v.Profile.ErrorRate * (1 + 0.1*noise("err", user, version)))
	m.Errors = int64(math.Round(float64(m.Requests) * m.ErrorRate))
	m.P99LatencyMS = math.Round(v.Profile.P99LatencyMS*(1+0.05*noise("p99", user, version))*10) / 10
	m.CacheHitRatio = clamp01(v.Profile.CacheHitRatio + 0.02*noise("cache", user, version))
	m.WarningKinds = append(m.WarningKinds, v.Profile.WarningKinds...)
}
