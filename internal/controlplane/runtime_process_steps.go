package controlplane

import (
	"errors"
	"fmt"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// drainAndStop is the process runtime's drain: SIGTERM (the engine refuses new turns and
// finishes the ones in flight), the grace (drain_timeout), then SIGKILL. An engine that ignores
// SIGTERM is killed and the stop step says so.
func (r *procRuntime) drainAndStop(op *operation, timeout time.Duration) bool {
	s := r.s
	s.beginDrain(op)
	p := r.get(op.UserID)
	if p == nil {
		s.nothingToDrain(op, "engine process")
		return true
	}
	grace := r.s.realWait(timeout, minProcessGrace)
	took, killed := r.stop(p, grace)
	if s.ctx.Err() != nil {
		return false
	}
	if killed {
		s.finishStep(op, api.StepDrain, fmt.Sprintf("SIGTERM sent to engine process %d; it was still running when the %s grace (drain_timeout) ran out", p.pid, grace))
		s.begin(op, api.StepStop, api.StatusStopped)
		s.finishStep(op, api.StepStop, fmt.Sprintf("engine process %d ignored SIGTERM for %s; killed with SIGKILL after the grace period", p.pid, grace))
		return true
	}
	s.finishStep(op, api.StepDrain, fmt.Sprintf("SIGTERM sent to engine process %d; in-flight turns finished and it exited (%s) after %s", p.pid, p.exit, took.Round(time.Millisecond)))
	s.begin(op, api.StepStop, api.StatusStopped)
	s.finishStep(op, api.StepStop, "engine process stopped")
	return true
}

// failWith kills p (when there is one) and fails the operation with the engine failed.
func (r *procRuntime) failWith(op *operation, p *engineProc, step, code, msg string) {
	if p != nil {
		r.kill(p)
	}
	r.s.failOp(op, step, code, msg, true)
}

// migrate starts the target version, which migrates the brain at start-up, and follows the
// migration in the brain's own schema record until it reaches toSchema clean. With the
// process_kill fault the process is SIGKILLed as soon as the brain shows the migration under way
// (dirty): the transaction never commits, the dirty flag stays, the engine is failed.
func (r *procRuntime) migrate(op *operation, path api.UpgradePath, healthTimeout time.Duration) bool {
	s := r.s
	e := s.begin(op, api.StepMigrate, api.StatusUpgrading)
	env, killMid := r.s.faultEnv(op.UserID, path.To, true)
	p, err := r.spawn(op.UserID, path.To, env)
	if err != nil {
		s.failOp(op, api.StepMigrate, api.CodeInternal, fmt.Sprintf("could not start %s to migrate user %s's brain: %v; nothing was migrated", path.To, op.UserID, err), false)
		return false
	}
	w := migrationWatch{inst: &p.engineInstance, deadline: time.Now().Add(r.s.realWait(healthTimeout, minProcessWait)),
		kill: func() { r.kill(p) }, faultKill: killMid}
	if !s.followMigration(op, path, w) {
		return false
	}
	s.migrated(op, e, path.ToSchema)
	s.finishStep(op, api.StepMigrate, fmt.Sprintf("%s (process %d) migrated the brain to schema %d at start-up", path.To, p.pid, path.ToSchema))
	return true
}

// bootAndCheck boots version (reusing the process the migrate step started) and waits for
// /health to answer, then to say ok, within the health timeout.
func (r *procRuntime) bootAndCheck(op *operation, version string, healthTimeout time.Duration) {
	s := r.s
	e, v := s.beginBoot(op, version)
	p := r.get(op.UserID)
	if p != nil && p.version != v.Version {
		r.kill(p)
		p = nil
	}
	if p == nil {
		env, _ := r.s.faultEnv(op.UserID, v.Version, false)
		var err error
		if p, err = r.spawn(op.UserID, v.Version, env); err != nil {
			s.failOp(op, api.StepBoot, api.CodeInternal, fmt.Sprintf("could not start %s for user %s: %v", v.Version, op.UserID, err), true)
			return
		}
	}
	wait := r.s.realWait(healthTimeout, minProcessWait)
	deadline := time.Now().Add(wait)
	if err := p.waitHealth(r.s.ctx, deadline, false); err != nil {
		r.failBoot(op, p, api.StepBoot, v, err, wait)
		return
	}
	s.finishStep(op, api.StepBoot, fmt.Sprintf("%s running as process %d on 127.0.0.1:%d", v.Version, p.pid, p.port))
	s.begin(op, api.StepHealth, "")
	if err := p.waitHealth(r.s.ctx, deadline, true); err != nil {
		r.failBoot(op, p, api.StepHealth, v, err, wait)
		return
	}
	schema, _, _ := brainSchema(s.BrainPath(op.UserID))
	s.mu.Lock()
	now := time.Now().UTC()
	e.Status, e.Health, e.LastHealthAt, e.Error, e.SchemaVersion = api.StatusRunning, healthOK(), &now, nil, schema
	s.mu.Unlock()
	r.healthy(p)
	s.bootSucceeded(op, v.Version, schema)
}

func (r *procRuntime) failBoot(op *operation, p *engineProc, step string, v api.Version, err error, wait time.Duration) {
	if r.s.ctx.Err() != nil {
		r.kill(p)
		return
	}
	var pe *processExit
	if errors.As(err, &pe) {
		r.failWith(op, nil, step, pe.apiCode(api.CodeHealthCheckFailed), fmt.Sprintf("%v; restore a snapshot to bring user %s's engine back", pe, op.UserID))
		return
	}
	r.failWith(op, p, step, api.CodeHealthCheckFailed, fmt.Sprintf("%s on user %s never reported healthy within %s; the process (%d) was killed; restore a snapshot", v.Version, op.UserID, wait, p.pid))
}
