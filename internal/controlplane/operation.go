package controlplane

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// The request's timeouts when it leaves them at 0, in seconds.
const (
	defaultDrainTimeout  = 30
	defaultHealthTimeout = 60
)

// An operation is one piece of work a POST started on one engine: an upgrade (op_upgrade.go), a
// restore (op_restore.go), a snapshot (op_snapshot.go) or an eval (op_eval.go). This file is what
// every kind shares: how a POST becomes an operation (start: Idempotency-Key, If-Match, one
// operation per engine), its record and steps (written through the registry on every change),
// the long-poll that waits for a change, and the settling of an operation a stopped control
// plane left running. The steps that touch the engine itself are the runtime's (runtime.go).
type operation struct {
	api.Operation
	seq     int64
	changed chan struct{} // closed and replaced on every change: wakes long-polls
}

// idemEntry is what an Idempotency-Key (scoped by user and kind) was first used for.
type idemEntry struct {
	bodyHash string
	opID     string
}

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
	if e.RehearsalID != "" && st.kind != api.OpRehearsal {
		writeError(w, newErr(http.StatusConflict, api.CodeInvalidRequest, fmt.Sprintf(
			"%s is the staging engine of rehearsal %s: it takes turns for spot-checks, no %s; delete the rehearsal to remove it",
			st.userID, e.RehearsalID, st.kind)))
		return
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
	// A prepare that finished the operation found nothing to do (an upgrade to the version
	// already running): it is recorded and answered, and the engine is left alone.
	noop := op.Done()
	engine := e
	if noop {
		engine = nil
	} else {
		e.CurrentOperationID = op.ID
		e.Generation++
	}
	if err := s.persistLocked(engine, op); err != nil {
		if !noop {
			e.CurrentOperationID = ""
			e.Generation--
		}
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
	if !noop {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			st.run(op)
		}()
	}
	writeJSON(w, http.StatusAccepted, op.view())
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

func pendingSteps(names ...string) []api.Step {
	out := make([]api.Step, len(names))
	for i, n := range names {
		out[i] = api.Step{Name: n, Status: api.OpPending}
	}
	return out
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

// failOp ends an operation on a failed step. engineFailed leaves the engine failed with that
// error (its runtime has stopped it); otherwise the engine goes back to running.
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
			op.Steps[i].Status = api.StepSkipped
		}
	}
	op.Status, op.FinishedAt = api.OpFailed, &now
	op.Error = &api.ErrorDetail{Code: code, Message: msg}
	e := s.engines[op.UserID]
	e.CurrentOperationID = ""
	if engineFailed {
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

// settleInterrupted fails an operation the previous process did not finish, and boots its
// engine on what the brain really holds: the engine runs if its brain's schema is one the
// recorded (or the operation's target) version reads, and is failed otherwise.
func (s *Server) settleInterrupted(op *operation) error {
	now := time.Now().UTC()
	step := ""
	for i := range op.Steps {
		// The step that was running failed with the stop; the ones after it never ran.
		switch op.Steps[i].Status {
		case api.OpRunning:
			if step == "" {
				step = op.Steps[i].Name
			}
			op.Steps[i].Status = api.OpFailed
			op.Steps[i].FinishedAt = &now
		case api.OpPending:
			op.Steps[i].Status = api.StepSkipped
		}
	}
	op.Status = api.OpFailed
	op.Error = &api.ErrorDetail{Code: api.CodeInterrupted, Message: fmt.Sprintf("the control plane stopped while this %s operation was running (step %q); nothing more was done; inspect the engine and retry", op.Kind, step)}
	op.FinishedAt = &now
	op.UpdatedAt = now
	op.Revision++
	if op.Kind == api.OpSnapshot && op.Result.SnapshotID != "" {
		if _, recorded := s.snapshots[op.Result.SnapshotID]; !recorded {
			os.Remove(s.SnapshotPath(op.Result.SnapshotID))
			os.Remove(partialSnapshot(s.SnapshotPath(op.Result.SnapshotID)))
		}
	}
	if err := s.reg.putOperation(op.Operation, op.seq); err != nil {
		return err
	}
	e := s.engines[op.UserID]
	if e == nil {
		return nil
	}
	e.CurrentOperationID = ""
	schema, dirty, err := brainSchema(s.BrainPath(e.UserID))
	switch {
	case err != nil:
		e.fail(api.CodeMigrationFailed, fmt.Sprintf("the brain could not be read after an interrupted %s: %v; restore a snapshot", op.Kind, err))
	case dirty:
		e.fail(api.CodeMigrationFailed, fmt.Sprintf("a migration to schema %d was interrupted and left the brain dirty; restore a snapshot", schema))
	default:
		// The recorded version is what last booted (boot records its version first); the
		// target only wins when a migration moved the brain to its schema before the stop.
		version := e.EngineVersion
		if v, ok := s.cat.Get(version); !ok || v.SchemaVersion != schema {
			if t, ok := s.cat.Get(op.ToVersion); ok && t.SchemaVersion == schema {
				version = t.Version
			}
		}
		if v, ok := s.cat.Get(version); ok && v.SchemaVersion == schema {
			e.EngineVersion, e.SchemaVersion = version, schema
			e.Status, e.Health, e.Error = api.StatusRunning, healthOK(), nil
			e.LastHealthAt = &now
		} else {
			e.SchemaVersion = schema
			e.fail(api.CodeMigrationRequired, fmt.Sprintf("version %s cannot run on a brain at schema %d; restore a snapshot", version, schema))
		}
	}
	e.Generation++
	return s.reg.putEngines(e.Engine)
}

// view is an operation's wire form, deep enough a copy to hand out without the lock.
func (o *operation) view() api.Operation {
	out := o.Operation
	out.Steps = append([]api.Step(nil), o.Steps...)
	if out.Steps == nil {
		out.Steps = []api.Step{}
	}
	if o.Error != nil {
		d := *o.Error
		out.Error = &d
	}
	return out
}

// listOperations lists an engine's operations, newest first; ?idempotency_key= keeps those
// started with that key, so a client whose POST was cut off finds what it started.
func (s *Server) listOperations(w http.ResponseWriter, r *http.Request, p params) {
	key, filtered := r.URL.Query()["idempotency_key"]
	if filtered && (len(key) != 1 || key[0] == "" || len(key[0]) > 255) {
		writeError(w, badField("idempotency_key", "idempotency_key must be given once, 1-255 characters: the Idempotency-Key the operation was started with"))
		return
	}
	e := s.lockEngine(w, p["user_id"])
	if e == nil {
		return
	}
	defer s.mu.Unlock()
	out := api.OperationList{Operations: make([]api.Operation, 0, len(e.opIDs))}
	for i := len(e.opIDs) - 1; i >= 0; i-- {
		op := s.ops[e.opIDs[i]]
		if filtered && op.IdempotencyKey != key[0] {
			continue
		}
		out.Operations = append(out.Operations, op.view())
	}
	writeJSON(w, http.StatusOK, out)
}

// parseWait accepts a Go duration ("25s") or whole seconds ("25"), capped at api.MaxWait.
func parseWait(v string) (time.Duration, *apiError) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, badField("wait", fmt.Sprintf("wait %q must be a duration such as 25s", v))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, badField("wait", "wait must not be negative")
	}
	return min(d, api.MaxWait), nil
}

// getOperation long-polls: with ?wait it blocks until the operation's revision differs from
// ?revision (or it is done), the wait expires or the client goes away. It waits on the
// operation's change channel, never polling.
func (s *Server) getOperation(w http.ResponseWriter, r *http.Request, p params) {
	q := r.URL.Query()
	wait, e := parseWait(q.Get("wait"))
	if e != nil {
		writeError(w, e)
		return
	}
	rev := int64(-1)
	if v := q.Get("revision"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, badField("revision", fmt.Sprintf("revision %q must be a non-negative integer", v)))
			return
		}
		rev = n
	}
	id := p["operation_id"]
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		s.mu.Lock()
		op := s.ops[id]
		if op == nil {
			s.mu.Unlock()
			e := newErr(http.StatusNotFound, api.CodeOperationNotFound, fmt.Sprintf("no operation %q", id))
			e.detail.Field = "operation_id"
			writeError(w, e)
			return
		}
		view, changed := op.view(), op.changed
		s.mu.Unlock()
		if wait == 0 || rev < 0 || view.Revision != rev || view.Done() {
			writeJSON(w, http.StatusOK, view)
			return
		}
		select {
		case <-changed:
		case <-deadline:
			writeJSON(w, http.StatusOK, view)
			return
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			writeJSON(w, http.StatusOK, view)
			return
		}
	}
}
