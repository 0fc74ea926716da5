package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Nominal durations, multiplied by the time scale.
const (
	nominalDrain        = 2 * time.Second
	nominalStop         = time.Second
	nominalMigrateBase  = time.Second
	nominalMigratePerMB = 500 * time.Millisecond
	nominalHealth       = time.Second
	nominalEval         = 3 * time.Second
	// A snapshot's verification (integrity_check and sha256 of the copy) on a real volume.
	nominalVerify        = time.Second
	defaultDrainTimeout  = 30
	defaultHealthTimeout = 60
)

// opStart is what a POST that starts work has settled before the operation exists.
type opStart struct {
	kind     string
	userID   string
	hash     string
	ifMatch  bool
	validate func(e *engineState) *apiError // under s.mu
	prepare  func(op *operation)            // under s.mu: steps, versions, snapshot
	run      func(op *operation)            // in its own goroutine
}

// start applies the rules every operation-starting POST shares, in order: Idempotency-Key,
// engine exists, an idempotent replay, If-Match, one operation per engine, the kind's own rules.
// Nothing is changed unless all pass.
func (s *Server) start(w http.ResponseWriter, r *http.Request, st opStart) {
	key := r.Header.Get(api.IdempotencyHeader)
	if key == "" || len(key) > 255 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		e := badField(api.IdempotencyHeader, fmt.Sprintf("the %s header is required on this POST (1-255 printable characters, for example a UUID) so a retry never starts the work twice", api.IdempotencyHeader))
		writeError(w, e)
		return
	}
	e := s.lockEngine(w, st.userID)
	if e == nil {
		return
	}
	defer s.mu.Unlock()
	scope := st.userID + "/" + st.kind + "/" + key
	if prev, ok := s.idem[scope]; ok {
		if prev.bodyHash != st.hash {
			writeError(w, newErr(http.StatusUnprocessableEntity, api.CodeIdempotencyMismatch, fmt.Sprintf("%s %q was already used for a different %s request (operation %s); use a new key for new work", api.IdempotencyHeader, key, st.kind, prev.opID)))
			return
		}
		if op := s.ops[prev.opID]; op != nil {
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, http.StatusOK, op.view())
			return
		}
	}
	if im := r.Header.Get("If-Match"); im != "" && st.ifMatch {
		g, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(strings.TrimSpace(im), "W/"), `"`), 10, 64)
		if err != nil {
			writeError(w, badField("If-Match", fmt.Sprintf("If-Match %q must be the engine's generation, for example \"7\"", im)))
			return
		}
		if g != e.Generation {
			writeError(w, newErr(http.StatusPreconditionFailed, api.CodePreconditionFailed, fmt.Sprintf("user %s's engine is at generation %d, not %d: it changed since you read it; read it again and re-plan", st.userID, e.Generation, g)))
			return
		}
	}
	if e.CurrentOperationID != "" {
		ae := newErr(http.StatusConflict, api.CodeOperationInProgress, fmt.Sprintf("operation %s is already running on user %s's engine; wait for it (GET /v1/operations/%s) and retry", e.CurrentOperationID, st.userID, e.CurrentOperationID))
		ae.detail.OperationID = e.CurrentOperationID
		writeError(w, ae)
		return
	}
	if ae := st.validate(e); ae != nil {
		writeError(w, ae)
		return
	}
	now := time.Now().UTC()
	s.opSeq++
	op := &operation{seq: s.opSeq, changed: make(chan struct{}), Operation: api.Operation{
		ID: "op-" + randomHex(8), Kind: st.kind, UserID: st.userID, Status: api.OpRunning, Revision: 1,
		CreatedAt: now, UpdatedAt: now, FromVersion: e.EngineVersion, IdempotencyKey: key,
	}}
	st.prepare(op)
	e.CurrentOperationID = op.ID
	e.Generation++
	if err := s.persistLocked(e, op); err != nil {
		e.CurrentOperationID = ""
		e.Generation--
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, "could not record the operation: "+err.Error()))
		return
	}
	if err := s.reg.putIdempotency(scope, st.hash, op.ID); err != nil {
		s.log.Warn("idempotency key not recorded", "operation_id", op.ID, "error", err)
	}
	s.idem[scope] = idemEntry{bodyHash: st.hash, opID: op.ID}
	s.ops[op.ID] = op
	e.opIDs = append(e.opIDs, op.ID)
	s.stats.operation(st.userID, st.kind)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		st.run(op)
	}()
	writeJSON(w, http.StatusAccepted, op.view())
}

func pendingSteps(names ...string) []api.Step {
	out := make([]api.Step, len(names))
	for i, n := range names {
		out[i] = api.Step{Name: n, Status: api.OpPending}
	}
	return out
}

func (s *Server) persistLocked(e *engineState, op *operation) error {
	if op != nil {
		if err := s.reg.putOperation(op.Operation, op.seq); err != nil {
			return err
		}
	}
	if e != nil {
		return s.reg.putEngines(e.Engine)
	}
	return nil
}

// changedLocked records a change of op (and of its engine's state when e is not nil): revision,
// persistence, and a wake-up for every long-poll.
func (s *Server) changedLocked(op *operation, e *engineState) {
	op.Revision++
	op.UpdatedAt = time.Now().UTC()
	if e != nil {
		e.Generation++
	}
	if err := s.persistLocked(e, op); err != nil {
		s.log.Error("registry write failed", "operation_id", op.ID, "error", err)
	}
	close(op.changed)
	op.changed = make(chan struct{})
}

func (op *operation) step(name string) *api.Step {
	for i := range op.Steps {
		if op.Steps[i].Name == name {
			return &op.Steps[i]
		}
	}
	op.Steps = append(op.Steps, api.Step{Name: name})
	return &op.Steps[len(op.Steps)-1]
}

// begin marks a step running; when status is not empty the engine moves to it too.
func (s *Server) begin(op *operation, name, status string) *engineState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	st := op.step(name)
	st.Status, st.StartedAt = api.OpRunning, &now
	e := s.engines[op.UserID]
	if status != "" && e.Status != status {
		e.Status = status
		s.changedLocked(op, e)
	} else {
		s.changedLocked(op, nil)
	}
	return e
}

func (s *Server) finishStep(op *operation, name, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	st := op.step(name)
	st.Status, st.FinishedAt, st.Message = api.OpSucceeded, &now, msg
	s.changedLocked(op, nil)
}

// failOp ends an operation on a failed step. engineCode/engineMsg, when set, leave the engine
// failed with that error; otherwise the engine goes back to running.
func (s *Server) failOp(op *operation, step, code, msg string, engineFailed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	st := op.step(step)
	st.Status, st.FinishedAt, st.Message = api.OpFailed, &now, msg
	if st.StartedAt == nil {
		st.StartedAt = &now
	}
	for i := range op.Steps {
		if op.Steps[i].Status == api.OpPending {
			op.Steps[i].Status = "skipped"
		}
	}
	op.Status, op.FinishedAt = api.OpFailed, &now
	op.Error = &api.ErrorDetail{Code: code, Message: msg}
	e := s.engines[op.UserID]
	e.CurrentOperationID = ""
	if engineFailed {
		s.closeBrainLocked(e)
		e.fail(code, msg)
	} else if e.Status != api.StatusFailed {
		e.Status = api.StatusRunning
	}
	s.changedLocked(op, e)
}

func (s *Server) succeedOp(op *operation, result api.OperationResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	op.Status, op.FinishedAt, op.Result = api.OpSucceeded, &now, result
	e := s.engines[op.UserID]
	e.CurrentOperationID = ""
	s.changedLocked(op, e)
}

func (s *Server) closeBrainLocked(e *engineState) {
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
}

// sleep waits a scaled nominal duration; false means the server is closing and the operation
// must stop where it is (the next start reports it interrupted).
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(s.scaled(d))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request, p params) {
	var req api.CreateSnapshotRequest
	if e := decodeBody(w, r, &req, true); e != nil {
		writeError(w, e)
		return
	}
	if req.RetentionDays == 0 {
		req.RetentionDays = 7
	}
	if e := checkRetention(req.RetentionDays); e != nil {
		writeError(w, e)
		return
	}
	if e := checkDescription(req.Description); e != nil {
		writeError(w, e)
		return
	}
	s.start(w, r, opStart{
		kind: api.OpSnapshot, userID: p["user_id"], hash: bodyHash(req),
		validate: s.requireRunning("snapshot"),
		prepare: func(op *operation) {
			op.Result.SnapshotID = "snap-" + randomHex(8)
			op.SnapshotID = op.Result.SnapshotID
			op.Steps = pendingSteps(api.StepSnapshot, api.StepVerify)
		},
		run: func(op *operation) { s.runSnapshot(op, req) },
	})
}

// requireRunning is the validation of operations that need a running engine.
func (s *Server) requireRunning(what string) func(e *engineState) *apiError {
	return func(e *engineState) *apiError {
		if e.Status != api.StatusRunning {
			return s.unavailable(e, what)
		}
		return nil
	}
}

func (s *Server) unavailable(e *engineState, what string) *apiError {
	msg := fmt.Sprintf("user %s's engine is %s; a %s needs it running", e.UserID, e.Status, what)
	if e.Status == api.StatusFailed {
		msg += "; restore a snapshot to recover it (POST /v1/engines/" + e.UserID + "/restore)"
	}
	if e.Error != nil {
		msg += " (" + e.Error.Code + ": " + e.Error.Message + ")"
	}
	return newErr(http.StatusConflict, api.CodeEngineUnavailable, msg)
}

func (s *Server) runSnapshot(op *operation, req api.CreateSnapshotRequest) {
	id := op.Result.SnapshotID
	e := s.begin(op, api.StepSnapshot, "")
	s.mu.Lock()
	version := e.EngineVersion
	s.mu.Unlock()
	created := time.Now().UTC()
	dst := s.SnapshotPath(id)
	tmp := partialSnapshot(dst)
	os.Remove(tmp)
	sc, err := copyBrain(s.ctx, s.BrainPath(op.UserID), tmp)
	if err != nil {
		os.Remove(tmp)
		s.failOp(op, api.StepSnapshot, api.CodeInternal, fmt.Sprintf("copying user %s's brain failed: %v; take the snapshot again", op.UserID, err), false)
		return
	}
	if !sc.Pinned {
		s.log.Info("snapshot fell back to the online backup", "user_id", op.UserID, "snapshot_id", id, "how", sc.How)
	}
	s.finishStep(op, api.StepSnapshot, sc.How)
	s.begin(op, api.StepVerify, "")
	if !s.sleep(nominalVerify) {
		os.Remove(tmp)
		return
	}
	sf, err := sealSnapshot(tmp, dst, sc.Digest)
	if err != nil {
		os.Remove(tmp)
		os.Remove(dst)
		if errors.Is(err, errSnapshotUnverified) {
			s.failOp(op, api.StepVerify, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s failed verification: %v", id, err), false)
		} else {
			s.failOp(op, api.StepVerify, api.CodeInternal, fmt.Sprintf("snapshot %s passed verification but could not be put in place: %v; take the snapshot again", id, err), false)
		}
		return
	}
	fi, err := os.Stat(dst)
	if err != nil {
		s.failOp(op, api.StepVerify, api.CodeInternal, fmt.Sprintf("snapshot %s vanished right after it was written: %v; take the snapshot again", id, err), false)
		return
	}
	sn := api.Snapshot{
		ID: id, UserID: op.UserID, EngineID: e.EngineID, EngineVersion: version, SchemaVersion: sf.Schema,
		SizeBytes: sf.Size, SHA256: sf.SHA256, BrainWrites: sf.Writes, Description: req.Description,
		RetentionDays: req.RetentionDays, CreatedAt: created, RetainUntil: created.AddDate(0, 0, req.RetentionDays),
		Status: api.SnapshotVerified,
	}
	s.mu.Lock()
	if err := s.reg.putSnapshot(sn); err != nil {
		s.mu.Unlock()
		os.Remove(dst)
		s.failOp(op, api.StepVerify, api.CodeInternal, "could not record the snapshot: "+err.Error(), false)
		return
	}
	s.snapshots[id] = &snapshotState{Snapshot: sn, checkedSize: fi.Size(), checkedMtime: fi.ModTime()}
	s.mu.Unlock()
	s.finishStep(op, api.StepVerify, fmt.Sprintf("integrity_check ok; sha256 %s; %d bytes", sf.SHA256[:12], sf.Size))
	s.succeedOp(op, api.OperationResult{SnapshotID: id, EngineVersion: version, SchemaVersion: sf.Schema})
}

func (s *Server) startUpgrade(w http.ResponseWriter, r *http.Request, p params) {
	var req api.UpgradeRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if req.Version == "" {
		writeError(w, badField("version", "version is required, for example \"2.4.0\""))
		return
	}
	if e := checkTimeouts(req.DrainTimeoutSeconds, req.HealthTimeoutSeconds); e != nil {
		writeError(w, e)
		return
	}
	target, ok := s.cat.Get(req.Version)
	if !ok {
		writeError(w, s.versionNotFound("version", req.Version))
		return
	}
	if req.SnapshotID != "" && !validID(req.SnapshotID) {
		writeError(w, badField("snapshot_id", fmt.Sprintf("snapshot_id must match %s", api.IDPattern)))
		return
	}
	var path api.UpgradePath
	s.start(w, r, opStart{
		kind: api.OpUpgrade, userID: p["user_id"], hash: bodyHash(req), ifMatch: true,
		validate: func(e *engineState) *apiError {
			if e.Status != api.StatusRunning {
				return s.unavailable(e, "upgrade")
			}
			var err error
			if path, err = s.cat.Path(e.EngineVersion, target.Version); err != nil {
				return newErr(http.StatusConflict, api.CodeVersionNotFound, err.Error())
			}
			if path.Kind == upgrade.KindDowngrade && !req.AllowDowngrade {
				ae := newErr(http.StatusConflict, api.CodeDowngradeNotAllowed, fmt.Sprintf("%s is older than user %s's %s: set allow_downgrade to go back (a lower schema needs a snapshot restore instead)", target.Version, e.UserID, e.EngineVersion))
				ae.detail.Field = "allow_downgrade"
				return ae
			}
			if len(path.Migrations) == 0 {
				if req.SnapshotID != "" && s.snapshots[req.SnapshotID] == nil {
					return s.snapshotNotFound(req.SnapshotID)
				}
				return nil
			}
			if req.SnapshotID == "" {
				ae := newErr(http.StatusConflict, api.CodeSnapshotRequired, fmt.Sprintf("upgrading user %s from %s to %s migrates the brain (schema %d to %d, forward-only): take a snapshot of this engine first (POST /v1/engines/%s/snapshots) and name it in snapshot_id", e.UserID, e.EngineVersion, target.Version, path.FromSchema, path.ToSchema, e.UserID))
				ae.detail.Field = "snapshot_id"
				return ae
			}
			sn := s.snapshots[req.SnapshotID]
			if sn == nil {
				return s.snapshotNotFound(req.SnapshotID)
			}
			view := sn.Snapshot
			if fi, err := os.Stat(s.SnapshotPath(sn.ID)); err != nil {
				view.Status = api.SnapshotMissing
			} else if fi.Size() != sn.checkedSize || !fi.ModTime().Equal(sn.checkedMtime) {
				// Changed since it was last hashed: hash again (under the lock, rare).
				if sum, _, err := fileSHA256(s.SnapshotPath(sn.ID)); err != nil || sum != sn.SHA256 {
					view.Status = api.SnapshotCorrupt
				}
			}
			if prob := upgrade.CheckSnapshot(e.Engine, view, time.Now()); prob != nil {
				ae := newErr(http.StatusConflict, prob.Code, prob.Reason)
				ae.detail.Field = "snapshot_id"
				return ae
			}
			return nil
		},
		prepare: func(op *operation) {
			op.ToVersion, op.SnapshotID = target.Version, req.SnapshotID
			names := []string{api.StepDrain, api.StepStop}
			if len(path.Migrations) > 0 {
				names = append(names, api.StepMigrate)
			}
			op.Steps = pendingSteps(append(names, api.StepBoot, api.StepHealth)...)
		},
		run: func(op *operation) { s.runUpgrade(op, path, req) },
	})
}

func checkTimeouts(drain, health int) *apiError {
	if drain < 0 || drain > 3600 {
		return badField("drain_timeout_seconds", "drain_timeout_seconds must be between 0 (default 30) and 3600")
	}
	if health < 0 || health > 3600 {
		return badField("health_timeout_seconds", "health_timeout_seconds must be between 0 (default 60) and 3600")
	}
	return nil
}

func orDefault(v, d int) time.Duration {
	if v == 0 {
		v = d
	}
	return time.Duration(v) * time.Second
}

func (s *Server) runUpgrade(op *operation, path api.UpgradePath, req api.UpgradeRequest) {
	if !s.drainAndStop(op, orDefault(req.DrainTimeoutSeconds, defaultDrainTimeout)) {
		return
	}
	if len(path.Migrations) > 0 && s.proc != nil {
		if !s.proc.migrate(op, path, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout)) {
			return
		}
	} else if len(path.Migrations) > 0 {
		e := s.begin(op, api.StepMigrate, api.StatusUpgrading)
		for _, hop := range path.Hops {
			if len(hop.Migrations) == 0 {
				continue
			}
			if ok := s.migrateHop(op, e, hop); !ok {
				return
			}
		}
		s.finishStep(op, api.StepMigrate, fmt.Sprintf("brain at schema %d", path.ToSchema))
	}
	s.bootAndCheck(op, path.To, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout))
}

// drainAndStop lets in-flight turns finish while new ones get 503, then stops the engine and
// closes its brain. A failed engine has nothing to drain.
func (s *Server) drainAndStop(op *operation, timeout time.Duration) bool {
	if s.proc != nil {
		return s.proc.drainAndStop(op, timeout)
	}
	s.mu.Lock()
	wasFailed := s.engines[op.UserID].Status == api.StatusFailed
	s.mu.Unlock()
	e := s.begin(op, api.StepDrain, map[bool]string{true: "", false: api.StatusDraining}[wasFailed])
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
	s.closeBrainLocked(e)
	s.mu.Unlock()
	if !s.sleep(nominalStop) {
		return false
	}
	s.finishStep(op, api.StepStop, "engine stopped")
	return true
}

// migrateHop runs one hop's migrations with golang-migrate. A migration_fail fault makes the
// hop's first migration run half its statements and fail: the transaction rolls back and the
// dirty flag stays, so the engine is failed until restored.
func (s *Server) migrateHop(op *operation, e *engineState, hop api.Hop) bool {
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
		s.failOp(op, api.StepMigrate, api.CodeMigrationFailed, msg, true)
		return false
	}
	s.mu.Lock()
	now := time.Now().UTC()
	e.SchemaVersion, e.LastMigrationAt = target, &now
	s.changedLocked(op, e)
	s.mu.Unlock()
	return true
}

// bootAndCheck boots version on the brain and waits for health. A version whose schema differs
// from the brain's refuses to boot (MIGRATION_REQUIRED), as the real Engine does.
func (s *Server) bootAndCheck(op *operation, version string, healthTimeout time.Duration) {
	if s.proc != nil {
		s.proc.bootAndCheck(op, version, healthTimeout)
		return
	}
	v, _ := s.cat.Get(version)
	e := s.begin(op, api.StepBoot, api.StatusUpgrading)
	s.mu.Lock()
	e.EngineVersion = v.Version
	s.mu.Unlock()
	if !s.sleep(time.Duration(v.Profile.BootSeconds * float64(time.Second))) {
		return
	}
	brain := s.BrainPath(op.UserID)
	schema, dirty, err := brainSchema(brain)
	switch {
	case err != nil:
		s.failOp(op, api.StepBoot, api.CodeMigrationFailed, fmt.Sprintf("%s could not open user %s's brain: %v; restore a snapshot", v.Version, op.UserID, err), true)
		return
	case dirty:
		s.failOp(op, api.StepBoot, api.CodeMigrationFailed, fmt.Sprintf("%s refuses to boot: the brain is dirty at schema %d (a migration failed); restore a snapshot", v.Version, schema), true)
		return
	case schema > v.SchemaVersion:
		s.failOp(op, api.StepBoot, api.CodeMigrationRequired, fmt.Sprintf("%s reads brain schema %d, but user %s's brain is at schema %d (migrated forward by a newer version): restore a snapshot taken at schema %d to run %s", v.Version, v.SchemaVersion, op.UserID, schema, v.SchemaVersion, v.Version), true)
		return
	case schema < v.SchemaVersion:
		s.failOp(op, api.StepBoot, api.CodeMigrationRequired, fmt.Sprintf("%s needs brain schema %d, but user %s's brain is at schema %d: upgrade through the catalog's migrations instead", v.Version, v.SchemaVersion, op.UserID, schema), true)
		return
	}
	db, err := openBrain(brain)
	if err != nil {
		s.failOp(op, api.StepBoot, api.CodeInternal, err.Error(), true)
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
		s.failOp(op, api.StepHealth, api.CodeHealthCheckFailed, fmt.Sprintf("%s on user %s never reported healthy within %s", v.Version, op.UserID, healthTimeout), true)
		return
	}
	if !s.sleep(nominalHealth) {
		return
	}
	s.mu.Lock()
	now := time.Now().UTC()
	e.Status, e.Health, e.LastHealthAt, e.Error = api.StatusRunning, healthOK(), &now, nil
	s.mu.Unlock()
	s.finishStep(op, api.StepHealth, "health ok")
	s.succeedOp(op, api.OperationResult{EngineVersion: v.Version, SchemaVersion: schema, SnapshotID: op.SnapshotID})
}

func (s *Server) startRestore(w http.ResponseWriter, r *http.Request, p params) {
	var req api.RestoreRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.SnapshotID == "":
		writeError(w, badField("snapshot_id", "snapshot_id is required: the snapshot to restore"))
		return
	case !validID(req.SnapshotID):
		writeError(w, badField("snapshot_id", fmt.Sprintf("snapshot_id must match %s", api.IDPattern)))
		return
	case req.Version == "":
		writeError(w, badField("version", "version is required: the version to boot on the restored brain (the snapshot's own version is the safe choice)"))
		return
	}
	if e := checkTimeouts(req.DrainTimeoutSeconds, req.HealthTimeoutSeconds); e != nil {
		writeError(w, e)
		return
	}
	v, ok := s.cat.Get(req.Version)
	if !ok {
		writeError(w, s.versionNotFound("version", req.Version))
		return
	}
	// The checksum is verified first, in full and synchronously: a tampered snapshot is refused
	// before anything about the engine changes.
	sn, ok := s.snapshotView(req.SnapshotID, true)
	if !ok {
		writeError(w, s.snapshotNotFound(req.SnapshotID))
		return
	}
	if sn.Status != api.SnapshotVerified {
		ae := newErr(http.StatusConflict, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s is %s (its file no longer matches sha256 %s): it cannot be restored; nothing was changed", sn.ID, sn.Status, sn.SHA256))
		ae.detail.Field = "snapshot_id"
		writeError(w, ae)
		return
	}
	s.start(w, r, opStart{
		kind: api.OpRestore, userID: p["user_id"], hash: bodyHash(req), ifMatch: true,
		validate: func(e *engineState) *apiError {
			if prob := upgrade.CheckRestore(e.Engine, sn, v); prob != nil {
				ae := newErr(http.StatusConflict, prob.Code, prob.Reason)
				ae.detail.Field = "snapshot_id"
				return ae
			}
			return nil
		},
		prepare: func(op *operation) {
			op.ToVersion, op.SnapshotID = v.Version, sn.ID
			op.Steps = pendingSteps(api.StepDrain, api.StepStop, api.StepRestore, api.StepBoot, api.StepHealth)
		},
		run: func(op *operation) { s.runRestore(op, sn, req) },
	})
}

func (s *Server) runRestore(op *operation, sn api.Snapshot, req api.RestoreRequest) {
	if !s.drainAndStop(op, orDefault(req.DrainTimeoutSeconds, defaultDrainTimeout)) {
		return
	}
	e := s.begin(op, api.StepRestore, api.StatusUpgrading)
	// Checked again: the file could have changed since the request was accepted.
	if sum, _, err := fileSHA256(s.SnapshotPath(sn.ID)); err != nil || sum != sn.SHA256 {
		s.failOp(op, api.StepRestore, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s changed or vanished before the swap; the brain was not touched", sn.ID), false)
		return
	}
	if err := swapBrain(s.SnapshotPath(sn.ID), s.BrainPath(op.UserID)); err != nil {
		s.failOp(op, api.StepRestore, api.CodeInternal, fmt.Sprintf("swapping user %s's brain failed: %v; restore again", op.UserID, err), true)
		return
	}
	s.mu.Lock()
	if e.SchemaVersion != sn.SchemaVersion {
		now := time.Now().UTC()
		e.LastMigrationAt = &now
	}
	e.SchemaVersion = sn.SchemaVersion
	s.changedLocked(op, e)
	s.mu.Unlock()
	s.finishStep(op, api.StepRestore, fmt.Sprintf("brain replaced by snapshot %s (schema %d, %d writes)", sn.ID, sn.SchemaVersion, sn.BrainWrites))
	s.bootAndCheck(op, req.Version, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout))
}

func (s *Server) startEval(w http.ResponseWriter, r *http.Request, p params) {
	var req api.EvalRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if !validID(req.Suite) {
		writeError(w, badField("suite", fmt.Sprintf("suite %q must be a name matching %s, for example \"regression\"", req.Suite, api.IDPattern)))
		return
	}
	s.start(w, r, opStart{
		kind: api.OpEval, userID: p["user_id"], hash: bodyHash(req),
		validate: s.requireRunning("eval"),
		prepare: func(op *operation) {
			op.ToVersion = op.FromVersion
			op.Steps = pendingSteps(api.StepEval)
		},
		run: func(op *operation) { s.runEval(op, req.Suite) },
	})
}

func (s *Server) runEval(op *operation, suite string) {
	s.begin(op, api.StepEval, "")
	if !s.sleep(nominalEval) {
		return
	}
	v, _ := s.cat.Get(op.FromVersion)
	score := evalScore(op.UserID, suite, v)
	if f := s.faults.fire([]string{api.FaultEvalRegression}, op.UserID, v.Version, "", ""); s.opts.EnableFaults && f != nil {
		score = max(0, score-0.3)
	}
	s.finishStep(op, api.StepEval, fmt.Sprintf("suite %s scored %.3f", suite, score))
	s.succeedOp(op, api.OperationResult{EvalSuite: suite, EvalScore: score, EngineVersion: v.Version, SchemaVersion: v.SchemaVersion})
}
