package controlplane

import (
	"errors"
	"fmt"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// drainAndStop is docker stop with the drain timeout as its grace: SIGTERM (the Engine refuses
// new turns and finishes the ones in flight), the grace, then SIGKILL, and the operation says
// when it had to kill. The stopped container is kept until its successor is healthy.
func (r *dockerRuntime) drainAndStop(op *operation, timeout time.Duration) bool {
	s := r.s
	s.beginDrain(op)
	c := r.get(op.UserID)
	if c == nil {
		s.nothingToDrain(op, "engine container")
		return true
	}
	grace := s.realWait(timeout, minProcessGrace)
	took, killed, err := r.stop(c, grace)
	if s.ctx.Err() != nil {
		return false
	}
	if err != nil {
		s.failOp(op, api.StepDrain, api.CodeInternal, fmt.Sprintf("docker stop of user %s's container %s failed: %v; check the Docker daemon, then retry", op.UserID, c.name, err), false)
		return false
	}
	secs := int((grace + time.Second - 1) / time.Second)
	kept := r.keepPrevious(c)
	keep := map[bool]string{true: fmt.Sprintf("; kept stopped as %s until the new container is healthy", c.name), false: "; removed"}[kept]
	if killed {
		s.finishStep(op, api.StepDrain, fmt.Sprintf("SIGTERM sent to %s (docker stop, %ds grace from drain_timeout); it was still running when the grace ran out", c.desc, secs))
		s.begin(op, api.StepStop, api.StatusStopped)
		s.finishStep(op, api.StepStop, fmt.Sprintf("%s ignored SIGTERM for %ds; killed with SIGKILL after the grace period%s", c.desc, secs, keep))
		return true
	}
	s.finishStep(op, api.StepDrain, fmt.Sprintf("SIGTERM sent to %s (docker stop); in-flight turns finished and it exited (%s) after %s", c.desc, c.exit, took.Round(time.Millisecond)))
	s.begin(op, api.StepStop, api.StatusStopped)
	s.finishStep(op, api.StepStop, "engine container stopped"+keep)
	return true
}

// migrate starts a container from the target version's image on the same brain; the Engine
// migrates at start-up and the control plane follows the brain's schema record. With the
// process_kill fault the container is killed (docker kill) as soon as the brain shows the
// migration under way.
func (r *dockerRuntime) migrate(op *operation, path api.UpgradePath, healthTimeout time.Duration) bool {
	s := r.s
	e := s.begin(op, api.StepMigrate, api.StatusUpgrading)
	env, killMid := s.faultEnv(op.UserID, path.To, true)
	c, err := r.create(op.UserID, path.To, env)
	if err == nil {
		err = r.start(c)
	}
	if err != nil {
		if c != nil {
			r.discard(c)
		}
		code := api.CodeInternal
		if errIsImageMissing(err) {
			code = api.CodeImageNotFound
		}
		s.failOp(op, api.StepMigrate, code, fmt.Sprintf("could not start %s to migrate user %s's brain: %v; nothing was migrated", path.To, op.UserID, err), false)
		return false
	}
	w := migrationWatch{inst: &c.engineInstance, deadline: time.Now().Add(r.realWait(healthTimeout)),
		kill: func() { r.kill(c) }, faultKill: killMid, discard: func() { r.discard(c) }}
	if !s.followMigration(op, path, w) {
		return false
	}
	s.migrated(op, e, path.ToSchema)
	s.finishStep(op, api.StepMigrate, fmt.Sprintf("%s (%s, image %s) migrated the brain to schema %d at start-up", path.To, c.desc, c.image, path.ToSchema))
	return true
}

// bootAndCheck runs version: the container the migrate step started, the previous container
// when it runs version (an image rollback restarts it), or a new one; then /health must answer,
// then say ok, within the health timeout. The previous container is removed once it is healthy.
func (r *dockerRuntime) bootAndCheck(op *operation, version string, healthTimeout time.Duration) {
	s := r.s
	e, v := s.beginBoot(op, version)
	c := r.get(op.UserID)
	if c != nil && c.version != v.Version {
		r.discard(c)
		c = nil
	}
	how, restarted := "started", false
	if c == nil {
		var err error
		if c = r.takePrevious(op.UserID, v.Version); c != nil {
			how, restarted = "the previous container restarted (image rollback)", true
			err = r.start(c)
		} else {
			env, _ := s.faultEnv(op.UserID, v.Version, false)
			if c, err = r.create(op.UserID, v.Version, env); err == nil {
				how = "a new container"
				err = r.start(c)
			}
		}
		if err != nil {
			if c != nil {
				r.dispose(c, restarted)
			}
			code := api.CodeInternal
			if errIsImageMissing(err) {
				code = api.CodeImageNotFound
			}
			s.failOp(op, api.StepBoot, code, fmt.Sprintf("could not start %s for user %s: %v", v.Version, op.UserID, err), true)
			return
		}
	}
	wait := r.realWait(healthTimeout)
	deadline := time.Now().Add(wait)
	if err := c.waitHealth(s.ctx, deadline, false); err != nil {
		r.failBoot(op, c, restarted, api.StepBoot, v, err, wait)
		return
	}
	s.finishStep(op, api.StepBoot, fmt.Sprintf("%s running as %s (%s, image %s) on %s", v.Version, c.desc, how, c.image, c.url))
	s.begin(op, api.StepHealth, "")
	if err := c.waitHealth(s.ctx, deadline, true); err != nil {
		r.failBoot(op, c, restarted, api.StepHealth, v, err, wait)
		return
	}
	schema, _, _ := brainSchema(s.BrainPath(op.UserID))
	s.mu.Lock()
	now := time.Now().UTC()
	e.Status, e.Health, e.LastHealthAt, e.Error, e.SchemaVersion = api.StatusRunning, healthOK(), &now, nil, schema
	s.mu.Unlock()
	r.healthy(c)
	if old := r.dropPrevious(op.UserID); old != "" {
		s.log.Info("previous container removed", "user_id", op.UserID, "container", old)
	}
	s.bootSucceeded(op, v.Version, schema)
}

// dispose stops a container that failed to come up: one the operation created is removed; the
// previous container, restarted for a rollback, is kept stopped as it was.
func (r *dockerRuntime) dispose(c *engineContainer, restarted bool) {
	r.kill(c)
	if restarted {
		r.keepPrevious(c)
		return
	}
	r.discard(c)
}

func (r *dockerRuntime) failBoot(op *operation, c *engineContainer, restarted bool, step string, v api.Version, err error, wait time.Duration) {
	if r.s.ctx.Err() != nil {
		return
	}
	r.dispose(c, restarted)
	var ce *containerExit
	if errors.As(err, &ce) {
		r.s.failOp(op, step, ce.apiCode(api.CodeHealthCheckFailed), fmt.Sprintf("%v; restore a snapshot to bring user %s's engine back", ce, op.UserID), true)
		return
	}
	r.s.failOp(op, step, api.CodeHealthCheckFailed, fmt.Sprintf("%s on user %s never reported healthy within %s; %s was stopped; restore a snapshot", v.Version, op.UserID, wait, c.desc), true)
}
