package controlplane

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-migrate/migrate/v4/database"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Bounds and defaults of a rehearsal request.
const (
	defaultReplayTurns   = 20
	maxReplayTurns       = 1000
	defaultMetricsWindow = 60
)

// startRehearsal is POST /v1/engines/{user_id}/rehearsals: the upgrade to req.Version rehearsed
// on a staging engine, a hidden engine record booted by the runtime on a copy of a verified
// snapshot of the engine's brain. The source engine is never stopped, migrated or written to.
func (s *Server) startRehearsal(w http.ResponseWriter, r *http.Request, p params) {
	var req api.RehearsalRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if e := checkRehearsalRequest(&req); e != nil {
		writeError(w, e)
		return
	}
	target, ok := s.cat.Get(req.Version)
	if !ok {
		writeError(w, s.versionNotFound("version", req.Version))
		return
	}
	var reh *api.Rehearsal
	s.start(w, r, opStart{
		kind: api.OpRehearsal, userID: p["user_id"], hash: bodyHash(req),
		validate: func(e *engineState) *apiError {
			var ae *apiError
			reh, ae = s.newRehearsalLocked(e, target, req)
			return ae
		},
		prepare: func(op *operation) {
			op.ToVersion, op.SnapshotID = target.Version, req.SnapshotID
			reh.OperationID, op.Result.RehearsalID = op.ID, reh.ID
			var names []string
			if req.SnapshotID == "" {
				names = append(names, api.StepSnapshot, api.StepVerify)
			}
			names = append(names, api.StepCopy, api.StepMigrate, api.StepBoot, api.StepHealth, api.StepReplay, api.StepMetrics)
			if req.EvalSuite != "" {
				names = append(names, api.StepEval)
			}
			op.Steps = pendingSteps(append(names, api.StepVerdict)...)
			s.rehearsals[reh.ID] = reh
			s.putRehearsalLocked(reh)
		},
		run: func(op *operation) { s.runRehearsal(op, reh, req) },
	})
}

func checkRehearsalRequest(req *api.RehearsalRequest) *apiError {
	if req.Version == "" {
		return badField("version", "version is required: the version to rehearse, for example \"3.0.0\"")
	}
	if req.SnapshotID != "" && !validID(req.SnapshotID) {
		return badField("snapshot_id", fmt.Sprintf("snapshot_id must match %s", api.IDPattern))
	}
	if req.ReplayTurns == 0 {
		req.ReplayTurns = defaultReplayTurns
	}
	if req.ReplayTurns < 1 || req.ReplayTurns > maxReplayTurns {
		return badField("replay_turns", fmt.Sprintf("replay_turns %d must be between 1 and %d (0 takes "+
			"%d)", req.ReplayTurns, maxReplayTurns, defaultReplayTurns))
	}
	if req.EvalSuite != "" && !validID(req.EvalSuite) {
		return badField("eval_suite", fmt.Sprintf("eval_suite %q must be a name matching %s, for example "+
			"\"regression\"", req.EvalSuite, api.IDPattern))
	}
	if req.MetricsWindowSeconds == 0 {
		req.MetricsWindowSeconds = defaultMetricsWindow
	}
	if req.MetricsWindowSeconds < 1 || req.MetricsWindowSeconds > 86400 {
		return badField("metrics_window_seconds", "metrics_window_seconds must be between 1 and 86400 (0 takes 60)")
	}
	a := req.Analysis
	for _, row := range upgrade.Metrics {
		if v := rehearsalThreshold(a, row.Limit); v != nil && (*v < row.Min || *v > row.Max) {
			return badField("analysis."+row.Limit, fmt.Sprintf("analysis.%s %v must be between %v and %v", row.Limit, *v, row.Min, row.Max))
		}
	}
	if a.MaxNewWarningKinds < 0 || a.BaselineTolerance < 0 || a.MaxEvalRegression < 0 || a.MaxEvalRegression > 1 {
		return badField("analysis", "analysis.max_new_warning_kinds and baseline_tolerance must not be negative, max_eval_regression must be "+
			"between 0 and 1")
	}
	return nil
}

// rehearsalThreshold is the threshold a request sets for the analysis row named limit.
func rehearsalThreshold(a api.RehearsalAnalysis, limit string) *float64 {
	switch limit {
	case "max_error_rate":
		return a.MaxErrorRate
	case "max_p99_latency_ms":
		return a.MaxP99LatencyMS
	case "min_cache_hit_ratio":
		return a.MinCacheHitRatio
	}
	return nil
}

func rehearsalConfig(a api.RehearsalAnalysis) upgrade.AnalysisConfig {
	cfg := upgrade.AnalysisConfig{MaxNewWarningKinds: a.MaxNewWarningKinds, BaselineTolerance: a.BaselineTolerance,
		MaxEvalRegression: a.MaxEvalRegression}
	for _, row := range upgrade.Metrics {
		row.SetThreshold(&cfg, rehearsalThreshold(a, row.Limit))
	}
	return cfg
}

// newRehearsalLocked checks that e can be rehearsed to target from req's snapshot and returns the
// rehearsal's record, under s.mu.
func (s *Server) newRehearsalLocked(e *engineState, target api.Version, req api.RehearsalRequest) (*api.Rehearsal, *apiError) {
	if e.RehearsalID != "" {
		return nil, newErr(http.StatusConflict, api.CodeInvalidRequest, fmt.Sprintf("%s is the staging engine of rehearsal %s; rehearse the "+
			"source engine instead", e.UserID, e.RehearsalID))
	}
	if e.Status != api.StatusRunning {
		return nil, s.unavailable(e, "rehearsal")
	}
	path, err := s.cat.Path(e.EngineVersion, target.Version)
	if err != nil {
		return nil, newErr(http.StatusConflict, api.CodeVersionNotFound, err.Error())
	}
	if path.Kind == upgrade.KindNone || path.Kind == upgrade.KindDowngrade {
		ae := newErr(http.StatusConflict, api.CodeInvalidRequest, fmt.Sprintf("user %s's engine runs %s: a rehearsal rehearses an upgrade to a "+
			"newer version, and %s is not one", e.UserID, e.EngineVersion, target.Version))
		ae.detail.Field = "version"
		return nil, ae
	}
	reh := &api.Rehearsal{
		ID: "reh-" + randomHex(8), UserID: e.UserID, Status: api.RehearsalRunning,
		FromVersion: e.EngineVersion, FromSchema: e.SchemaVersion, ToVersion: target.Version, ToSchema: target.SchemaVersion,
		SnapshotID: req.SnapshotID, KeepEngine: req.KeepEngine, EvalSuite: req.EvalSuite,
		Migrations: []api.RehearsalMigration{}, FailedChecks: []api.RehearsalCheck{}, CreatedAt: time.Now().UTC(),
	}
	for _, h := range path.Hops {
		if len(reh.Path) == 0 {
			reh.Path = append(reh.Path, h.From)
		}
		reh.Path = append(reh.Path, h.To)
	}
	reh.StagingUserID = e.UserID + ".rehearsal-" + reh.ID[len("reh-"):len("reh-")+6]
	if !validID(reh.StagingUserID) {
		return nil, newErr(http.StatusUnprocessableEntity, api.CodeInvalidRequest, fmt.Sprintf("user id %s is too long to name a staging engine "+
			"(%s); rehearsals need user ids of at most 110 characters", e.UserID, reh.StagingUserID))
	}
	if req.SnapshotID == "" {
		return reh, nil
	}
	sn := s.snapshots[req.SnapshotID]
	switch {
	case sn == nil:
		return nil, s.snapshotNotFound(req.SnapshotID)
	case sn.UserID != e.UserID:
		ae := newErr(http.StatusConflict, api.CodeSnapshotMismatch, fmt.Sprintf("snapshot %s is of user %s's engine, not %s's: rehearse on a "+
			"snapshot of this engine (or leave snapshot_id out to take one)", sn.ID, sn.UserID, e.UserID))
		ae.detail.Field = "snapshot_id"
		return nil, ae
	case sn.SchemaVersion > target.SchemaVersion:
		ae := newErr(http.StatusConflict, api.CodeSnapshotMismatch, fmt.Sprintf("snapshot %s is at schema %d, above %s's %d: it cannot be "+
			"upgraded to %s", sn.ID, sn.SchemaVersion, target.Version, target.SchemaVersion, target.Version))
		ae.detail.Field = "snapshot_id"
		return nil, ae
	}
	return reh, nil
}

// runRehearsal runs the rehearsal's steps on the staging engine and ends with the verdict.
func (s *Server) runRehearsal(op *operation, reh *api.Rehearsal, req api.RehearsalRequest) {
	sn, ok := s.rehearsalSnapshot(op, reh)
	if !ok {
		return
	}
	turns, ok := s.stageCopy(op, reh, sn, req.ReplayTurns)
	if !ok || !s.stageMigrate(op, reh) || !s.stageBoot(op, reh) {
		return
	}
	staging, prod, ok := s.stageTraffic(op, reh, turns, time.Duration(req.MetricsWindowSeconds)*time.Second)
	if !ok {
		return
	}
	var stagingEval, prodEval *float64
	if req.EvalSuite != "" {
		s.begin(op, api.StepEval, "")
		if !s.sleep(2 * nominalEval) {
			return
		}
		tv, _ := s.cat.Get(reh.ToVersion)
		fv, _ := s.cat.Get(reh.FromVersion)
		st, pr := evalScore(reh.UserID, req.EvalSuite, tv), evalScore(reh.UserID, req.EvalSuite, fv)
		stagingEval, prodEval = &st, &pr
		s.finishStep(op, api.StepEval, fmt.Sprintf("suite %s: staging (%s) %.3f, production baseline (%s) "+
			"%.3f", req.EvalSuite, tv.Version, st, fv.Version, pr))
	}
	s.rehearsalVerdict(op, reh, rehearsalConfig(req.Analysis), staging, prod, stagingEval, prodEval)
}

// rehearsalSnapshot is the verified snapshot the rehearsal copies: the one named, or one it takes.
func (s *Server) rehearsalSnapshot(op *operation, reh *api.Rehearsal) (api.Snapshot, bool) {
	if reh.SnapshotID == "" {
		sn, ok := s.takeSnapshot(op, "snap-"+randomHex(8), api.CreateSnapshotRequest{
			RetentionDays: 7, Description: fmt.Sprintf("taken by rehearsal %s of %s", reh.ID, reh.ToVersion)})
		if !ok {
			// The snapshot failed the operation, or the control plane is closing (the next
			// start settles the rehearsal).
			s.mu.Lock()
			failed, detail := op.Done(), op.Error
			s.mu.Unlock()
			if failed {
				s.rehearsalEnded(reh, detail, nil)
			}
			return sn, false
		}
		s.mu.Lock()
		reh.SnapshotID = sn.ID
		s.mu.Unlock()
		return sn, true
	}
	s.mu.Lock()
	sn := s.snapshots[reh.SnapshotID]
	s.mu.Unlock()
	if sn == nil {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeSnapshotNotFound, fmt.Sprintf("snapshot %s was deleted before the rehearsal could copy "+
			"it; rehearse again", reh.SnapshotID))
		return api.Snapshot{}, false
	}
	return sn.Snapshot, true
}

// stageCopy copies the snapshot into the staging engine's brain, checking the sha256 of the
// snapshot and of the copy, registers the staging engine (stopped) and reads the last user
// turns the brain recorded, to replay.
func (s *Server) stageCopy(op *operation, reh *api.Rehearsal, sn api.Snapshot, replay int) ([]string, bool) {
	s.begin(op, api.StepCopy, "")
	if err := s.registerStaging(reh, sn); err != nil {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeInternal, "could not record the staging engine: "+err.Error())
		return nil, false
	}
	dst := s.BrainPath(reh.StagingUserID)
	if sum, _, err := fileSHA256(s.SnapshotPath(sn.ID)); err != nil || sum != sn.SHA256 {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s does not match its recorded sha256 (%v); take "+
			"a new snapshot and rehearse again", sn.ID, err))
		return nil, false
	}
	err := os.MkdirAll(filepath.Dir(dst), 0o700)
	if err == nil {
		err = copyFile(s.SnapshotPath(sn.ID), dst)
	}
	if err != nil {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeInternal, fmt.Sprintf("copying snapshot %s to the staging brain failed: %v", sn.ID, err))
		return nil, false
	}
	if sum, _, err := fileSHA256(dst); err != nil || sum != sn.SHA256 {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeSnapshotCorrupt, fmt.Sprintf("the staging copy of snapshot %s does not match its sha256 "+
			"(%v); rehearse again", sn.ID, err))
		return nil, false
	}
	turns, err := lastUserTurns(dst, replay)
	if err != nil {
		s.rehearsalFail(op, reh, api.StepCopy, api.CodeInternal, fmt.Sprintf("reading the turns to replay from the copy of snapshot %s: "+
			"%v", sn.ID, err))
		return nil, false
	}
	s.finishStep(op, api.StepCopy, fmt.Sprintf("snapshot %s copied to %s's brain; sha256 %s checked; %d user turns to "+
		"replay", sn.ID, reh.StagingUserID, sn.SHA256[:12], len(turns)))
	return turns, true
}

// registerStaging records the staging engine (stopped) before its brain exists, so whatever
// happens next (a failed step, a restart) removes it and its brain through DeleteEngine.
func (s *Server) registerStaging(reh *api.Rehearsal, sn api.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	created := sn.CreatedAt
	reh.SnapshotSchema, reh.SnapshotCreatedAt, reh.StagingStatus = sn.SchemaVersion, &created, api.StagingRunning
	e := &engineState{Engine: api.Engine{
		UserID: reh.StagingUserID, EngineID: "eng-" + randomHex(8), EngineVersion: sn.EngineVersion, SchemaVersion: sn.SchemaVersion,
		Status: api.StatusStopped, Health: api.Health{Status: "stopped"}, Generation: 1, RehearsalID: reh.ID,
	}}
	if err := s.reg.putEngines(e.Engine); err != nil {
		return err
	}
	s.addEngineLocked(e)
	s.putRehearsalLocked(reh)
	return nil
}

// lastUserTurns reads the content of the last n user turns a brain recorded, oldest first.
func lastUserTurns(path string, n int) ([]string, error) {
	db, err := openBrain(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT content FROM (
		SELECT id, content FROM conversations WHERE role = 'user' ORDER BY id DESC LIMIT ?
	) ORDER BY id`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c sql.NullString
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c.String)
	}
	return out, rows.Err()
}

// stageMigrate runs the migrations from the copy's schema to the target's on the staging brain
// with golang-migrate, timing each: what the production upgrade's migrate step will cost. It
// runs here, on the copy the control plane holds, for every runtime.
func (s *Server) stageMigrate(op *operation, reh *api.Rehearsal) bool {
	s.begin(op, api.StepMigrate, "")
	migs := s.migrationsBetween(reh.SnapshotSchema, reh.ToSchema)
	var timed []api.RehearsalMigration
	start := time.Now()
	wrap := func(d database.Driver) database.Driver {
		return &timedDriver{Driver: d, done: func(schema int, took time.Duration) {
			for _, m := range migs {
				if m.ToSchema == schema {
					timed = append(timed, api.RehearsalMigration{ID: m.ID, FromSchema: m.FromSchema, ToSchema: m.ToSchema,
						Destructive: m.Destructive, DurationMS: float64(took.Microseconds()) / 1000})
				}
			}
		}}
	}
	if err := migrateBrainWith(s.BrainPath(reh.StagingUserID), s.mig, reh.ToSchema, wrap); err != nil {
		s.rehearsalFail(op, reh, api.StepMigrate, api.CodeMigrationFailed, fmt.Sprintf("migrating the staging copy from schema %d to %d failed: "+
			"%v; the production upgrade would fail the same way (the source engine was not touched)", reh.SnapshotSchema, reh.ToSchema, err))
		return false
	}
	s.mu.Lock()
	reh.Migrations = append([]api.RehearsalMigration{}, timed...)
	if e := s.engines[reh.StagingUserID]; e != nil {
		now := time.Now().UTC()
		e.SchemaVersion, e.LastMigrationAt = reh.ToSchema, &now
	}
	s.putRehearsalLocked(reh)
	s.mu.Unlock()
	s.finishStep(op, api.StepMigrate, fmt.Sprintf("%d migrations on the copy to schema %d in "+
		"%s", len(timed), reh.ToSchema, time.Since(start).Round(time.Microsecond)))
	return true
}

// migrationsBetween are the catalog's migrations from schema from to schema to.
func (s *Server) migrationsBetween(from, to int) []api.Migration {
	var out []api.Migration
	for _, v := range s.cat.Versions() {
		for _, m := range v.Migrations {
			if m.FromSchema >= from && m.ToSchema <= to {
				out = append(out, m)
			}
		}
	}
	return out
}

// timedDriver reports each migration's duration: from golang-migrate's dirty SetVersion to the
// clean one that follows its commit.
type timedDriver struct {
	database.Driver
	done    func(schema int, took time.Duration)
	pending int
	started time.Time
}

func (d *timedDriver) SetVersion(version int, dirty bool) error {
	if err := d.Driver.SetVersion(version, dirty); err != nil {
		return err
	}
	switch {
	case dirty:
		d.pending, d.started = version, time.Now()
	case !d.started.IsZero() && version == d.pending:
		d.done(version, time.Since(d.started))
		d.started = time.Time{}
	}
	return nil
}

// stageBoot boots the target version on the migrated copy with the runtime's boot, as any
// engine is booted, and checks that it runs.
func (s *Server) stageBoot(op *operation, reh *api.Rehearsal) bool {
	s.begin(op, api.StepBoot, "")
	s.mu.Lock()
	if e := s.engines[reh.StagingUserID]; e != nil {
		now := time.Now().UTC()
		e.EngineVersion, e.Status, e.Health, e.LastHealthAt = reh.ToVersion, api.StatusRunning, healthOK(), &now
		_ = s.reg.putEngines(e.Engine)
	}
	s.mu.Unlock()
	if err := s.rt.boot(reh.StagingUserID, reh.ToVersion); err != nil {
		s.rehearsalFail(op, reh, api.StepBoot, api.CodeHealthCheckFailed, fmt.Sprintf("the staging engine did not start: %v", err))
		return false
	}
	s.finishStep(op, api.StepBoot, fmt.Sprintf("%s booted on the staging copy at schema %d", reh.ToVersion, reh.ToSchema))
	s.begin(op, api.StepHealth, "")
	s.mu.Lock()
	e := s.engines[reh.StagingUserID]
	ok := e != nil && e.Status == api.StatusRunning
	s.mu.Unlock()
	if !ok {
		s.rehearsalFail(op, reh, api.StepHealth, api.CodeHealthCheckFailed, "the staging engine stopped answering its health checks right after "+
			"it booted")
		return false
	}
	s.finishStep(op, api.StepHealth, "staging engine healthy")
	return true
}

// stageTraffic replays the turns to the staging engine through the runtime (real requests to a
// process or container), waits out the window and reads both engines' metrics over it. The
// production figures are nil when the source served no requests in the window.
func (s *Server) stageTraffic(op *operation, reh *api.Rehearsal, turns []string, window time.Duration) (api.Metrics, *api.Metrics, bool) {
	s.begin(op, api.StepReplay, "")
	s.mu.Lock()
	e := s.engines[reh.StagingUserID]
	s.mu.Unlock()
	var failed []string
	for _, c := range turns {
		if _, ae := s.rt.turns(e, api.TurnsRequest{Count: 1, Content: c}); ae != nil {
			failed = append(failed, ae.Error())
		}
	}
	s.mu.Lock()
	reh.ReplayedTurns = len(turns) - len(failed)
	if len(failed) > 0 {
		reh.FailedChecks = append(reh.FailedChecks, api.RehearsalCheck{Metric: "replay", Staging: float64(len(failed)), Threshold: 0,
			Detail: fmt.Sprintf("replay: the staging engine refused %d of %d replayed turns (first: %s)", len(failed), len(turns), failed[0])})
	}
	s.mu.Unlock()
	s.finishStep(op, api.StepReplay, fmt.Sprintf("%d of %d turns replayed", len(turns)-len(failed), len(turns)))
	s.begin(op, api.StepMetrics, "")
	if !s.sleep(window) {
		return api.Metrics{}, nil, false
	}
	s.mu.Lock()
	to := time.Now().UTC()
	read := func(e *engineState) api.Metrics {
		m := api.Metrics{UserID: e.UserID, EngineVersion: e.EngineVersion, WindowSeconds: int(window / time.Second), From: to.Add(-window),
			To: to, WarningKinds: []string{}}
		s.rt.metricsLocked(e, &m)
		return m
	}
	staging := read(e)
	var prod *api.Metrics
	if src := s.engines[reh.UserID]; src != nil {
		if m := read(src); m.Requests > 0 {
			prod = &m
		}
	}
	s.mu.Unlock()
	baseline := "baseline read"
	if prod == nil {
		baseline = "no requests in the window (thresholds only)"
	}
	s.finishStep(op, api.StepMetrics, fmt.Sprintf("staging: %d requests in the window; production: %s", staging.Requests, baseline))
	return staging, prod, true
}

func figures(m api.Metrics, eval *float64) *api.RehearsalFigures {
	kinds := append([]string{}, m.WarningKinds...)
	return &api.RehearsalFigures{Version: m.EngineVersion, Requests: m.Requests, ErrorRate: m.ErrorRate, P99LatencyMS: m.P99LatencyMS,
		CacheHitRatio: m.CacheHitRatio, WarningKinds: kinds, EvalScore: eval}
}

// rehearsalVerdict judges the figures, records the verdict and ends the operation; a failed
// rehearsal, or one that does not keep its engine, tears the staging engine down first.
func (s *Server) rehearsalVerdict(op *operation, reh *api.Rehearsal, cfg upgrade.AnalysisConfig, staging api.Metrics, prod *api.Metrics, se,
	pe *float64) {
	s.begin(op, api.StepVerdict, "")
	v := upgrade.AnalyzeRehearsal(cfg, staging, prod, se, pe)
	s.mu.Lock()
	reh.Staging = figures(staging, se)
	if prod != nil {
		reh.Production = figures(*prod, pe)
	} else if pe != nil {
		reh.Production = &api.RehearsalFigures{Version: reh.FromVersion, WarningKinds: []string{}, EvalScore: pe}
	}
	for _, f := range v.Findings {
		reh.FailedChecks = append(reh.FailedChecks, api.RehearsalCheck{Metric: f.Metric, Staging: f.Canary, Production: f.Baseline,
			Threshold: f.Threshold, Detail: f.Detail})
	}
	passed := len(reh.FailedChecks) == 0
	s.mu.Unlock()
	status, msg := api.RehearsalPassed, "passed"
	if !passed {
		status, msg = api.RehearsalFailed, fmt.Sprintf("failed %d checks", len(reh.FailedChecks))
	}
	s.rehearsalEnded(reh, nil, func() { reh.Status = status })
	if !passed || !reh.KeepEngine {
		s.removeStaging(reh)
	}
	s.finishStep(op, api.StepVerdict, msg)
	s.succeedOp(op, api.OperationResult{RehearsalID: reh.ID, EngineVersion: reh.ToVersion, SchemaVersion: reh.ToSchema,
		SnapshotID: reh.SnapshotID})
}

// rehearsalFail ends a rehearsal that could not run a step: the staging engine is torn down,
// the rehearsal is errored and the operation failed (the source engine keeps running).
func (s *Server) rehearsalFail(op *operation, reh *api.Rehearsal, step, code, msg string) {
	s.removeStaging(reh)
	s.failOp(op, step, code, msg, false)
	s.rehearsalEnded(reh, &api.ErrorDetail{Code: code, Message: msg}, nil)
}

// rehearsalEnded records a finished rehearsal: errored with err, or as set does.
func (s *Server) rehearsalEnded(reh *api.Rehearsal, err *api.ErrorDetail, set func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	reh.FinishedAt = &now
	if set != nil {
		set()
	} else {
		reh.Status, reh.Error = api.RehearsalErrored, err
	}
	s.putRehearsalLocked(reh)
}

// removeStaging stops the staging engine and deletes its record and brain.
func (s *Server) removeStaging(reh *api.Rehearsal) {
	s.mu.Lock()
	_, exists := s.engines[reh.StagingUserID]
	s.mu.Unlock()
	if exists {
		if err := s.DeleteEngine(reh.StagingUserID); err != nil {
			s.log.Error("staging engine not removed", "rehearsal_id", reh.ID, "error", err)
			return
		}
	}
	s.mu.Lock()
	if reh.StagingStatus != "" {
		reh.StagingStatus = api.StagingRemoved
	}
	s.putRehearsalLocked(reh)
	s.mu.Unlock()
}
