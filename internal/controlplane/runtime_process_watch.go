package controlplane

import (
	"fmt"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// healthy hands p over to crash detection once its starter has seen it healthy; an exit that
// slipped in meanwhile is reported at once.
func (r *procRuntime) healthy(p *engineProc) {
	p.watched.Store(false)
	select {
	case <-p.done:
		if !p.stopping.Load() {
			r.engineExited(p)
		}
		return
	default:
	}
	go r.probe(p)
}

// probe keeps asking a healthy engine's /health until it exits or is stopped
// (Server.probeHealth); a hung process is killed.
func (r *procRuntime) probe(p *engineProc) {
	r.s.probeHealth(&p.engineInstance, func() bool { return r.get(p.user) == p }, func(failures int, why string) string {
		return fmt.Sprintf("user %s's engine process (pid %d, version %s) stopped answering /health (%d probes in a row failed, last: %s); it was killed and the engine is failed: restore a snapshot to bring it back",
			p.user, p.pid, p.version, failures, why)
	}, func() { r.kill(p) })
}

// engineExited is called when an engine process that had been seen healthy ends without being
// asked to (a starting process's exit is reported by its starter): the engine is failed, even
// mid-operation, so a crash is never hidden.
func (r *procRuntime) engineExited(p *engineProc) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.engines[p.user]
	if e == nil || !p.current {
		return
	}
	if e.Status == api.StatusFailed {
		return
	}
	pe := exitOf(p)
	if err := s.engineLostLocked(e, api.CodeHealthCheckFailed, fmt.Sprintf("user %s's engine process (pid %d, version %s) exited unexpectedly (%s)%s; the engine is failed: restore a snapshot to bring it back",
		p.user, p.pid, p.version, p.exit, map[bool]string{true: "", false: "; last error: " + pe.msg}[pe.msg == ""])); err != nil {
		s.log.Error("registry write failed", "user_id", p.user, "error", err)
	}
	s.log.Error("engine process crashed", "user_id", p.user, "pid", p.pid, "exit", p.exit)
}
