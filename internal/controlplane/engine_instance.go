package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// engineInstance is one running Engine as the control plane talks to it: over HTTP at url, with
// the key it accepts in X-Engine-Key. The runtimes whose engines are real programs (process,
// docker) share it: waiting for health, probing, test turns and following a migration in the
// brain's schema record are the same whether the Engine is a child process or a container.
type engineInstance struct {
	user, version string
	url, key      string
	// what names it in messages: "process 1234", "container engine-user-0001".
	desc string
	// done is closed once the instance has exited; exited then says why.
	done   chan struct{}
	exited func() error
	// stopping: an exit the control plane asked for is not a crash.
	stopping atomic.Bool
}

// probeHealth keeps asking a healthy instance's /health every probeInterval until it exits, is
// stopped or the control plane closes. Answers refresh last_health_at while current (called
// under s.mu) says inst is still the engine's; probeFailures failures in a row mean it hangs:
// the engine is failed with hangMsg's message, as an orchestrator's health loop would, and kill
// ends the instance.
func (s *Server) probeHealth(inst *engineInstance, current func() bool, hangMsg func(failures int, why string) string, kill func()) {
	c := &http.Client{Timeout: probeTimeout}
	failures := 0
	for {
		select {
		case <-inst.done:
			return
		case <-s.ctx.Done():
			return
		case <-time.After(probeInterval):
		}
		if inst.stopping.Load() {
			return
		}
		_, ok, why := inst.checkHealth(c)
		if ok {
			failures = 0
			s.mu.Lock()
			if e := s.engines[inst.user]; e != nil && e.Status == api.StatusRunning && current() {
				now := time.Now().UTC()
				e.LastHealthAt = &now
			}
			s.mu.Unlock()
			continue
		}
		if failures++; failures < probeFailures || inst.stopping.Load() {
			continue
		}
		s.mu.Lock()
		e := s.engines[inst.user]
		hung := e != nil && e.Status == api.StatusRunning && current() && !inst.stopping.Load()
		if hung {
			inst.stopping.Store(true) // reported here, not again as a crash
			if err := s.engineLostLocked(e, api.CodeHealthCheckFailed, hangMsg(failures, why)); err != nil {
				s.log.Error("registry write failed", "user_id", inst.user, "error", err)
			}
		}
		s.mu.Unlock()
		if hung {
			s.log.Error("engine hung; killed", "user_id", inst.user, "engine", inst.desc)
			kill()
		}
		return
	}
}

// waitHealth polls /health until it answers (ok=false) or answers 200 "ok" (ok=true), the
// instance exits (its exited error), the deadline passes or ctx ends.
func (i *engineInstance) waitHealth(ctx context.Context, deadline time.Time, ok bool) error {
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-i.done:
			return i.exited()
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if answered, healthy, _ := i.checkHealth(c); answered && (!ok || healthy) {
			return nil
		}
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-i.done:
		case <-ctx.Done():
		case <-time.After(healthPoll):
		}
	}
}

// checkHealth asks /health once: answered says it answered at all, healthy that it said 200 "ok",
// why what it said (or the error).
func (i *engineInstance) checkHealth(c *http.Client) (answered, healthy bool, why string) {
	resp, err := c.Get(i.url + "/health")
	if err != nil {
		return false, false, err.Error()
	}
	var h api.Health
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h)
	resp.Body.Close()
	return true, resp.StatusCode == http.StatusOK && h.Status == "ok", fmt.Sprintf("%d %q", resp.StatusCode, h.Status)
}

// postTurns calls the engine's turn endpoint with its key.
func (i *engineInstance) postTurns(c *http.Client, req EngineTurnRequest) (*EngineTurnResponse, error) {
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, i.url+"/v1/turns", bytes.NewReader(b))
	hr.Header.Set("X-Engine-Key", i.key)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.Unmarshal(body, &eb)
		status := http.StatusBadGateway
		if resp.StatusCode == http.StatusServiceUnavailable {
			status = http.StatusServiceUnavailable
		}
		code := eb.Error.Code
		if code == "" {
			code = api.CodeEngineUnavailable
		}
		return nil, newErr(status, code, fmt.Sprintf("user %s's engine (%s, %s) answered %d: %s", i.user, i.version, i.desc, resp.StatusCode, eb.Error.Message))
	}
	var out EngineTurnResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("unreadable turn response: %w", err)
	}
	return &out, nil
}

// instanceTurns serves test traffic on inst (nil: none runs) and records the engine's real
// results for metrics.
func (s *Server) instanceTurns(e *engineState, inst *engineInstance, c *http.Client, req api.TurnsRequest) (api.TurnsResult, *apiError) {
	if inst == nil {
		s.mu.Lock()
		ae := s.engineUnavailable503(e)
		s.mu.Unlock()
		return api.TurnsResult{}, ae
	}
	resp, err := inst.postTurns(c, EngineTurnRequest{Count: req.Count, Content: req.Content})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return api.TurnsResult{}, ae
		}
		return api.TurnsResult{}, newErr(http.StatusBadGateway, api.CodeEngineUnavailable, fmt.Sprintf("user %s's engine (%s) did not answer: %v", e.UserID, inst.desc, err))
	}
	s.mu.Lock()
	now := time.Now()
	e.BrainWrites = resp.BrainWrites
	e.writes = append(e.writes, writeEvent{at: now, count: resp.Written})
	for _, t := range resp.Results {
		e.results = append(e.results, turnResult{at: now, latency: t.LatencyMS, errKind: t.Error, input: t.InputTokens, cacheHit: t.CacheHitTokens})
	}
	if len(e.writes) > 1024 {
		e.writes = e.writes[len(e.writes)-1024:]
	}
	if len(e.results) > 4096 {
		e.results = e.results[len(e.results)-4096:]
	}
	err = s.reg.putEngines(e.Engine)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("registry write failed", "user_id", e.UserID, "error", err)
	}
	return api.TurnsResult{Written: resp.Written, BrainWrites: resp.BrainWrites, Turns: resp.Turns}, nil
}

// migrationWatch is what followMigration watches besides the brain.
type migrationWatch struct {
	inst     *engineInstance
	deadline time.Time
	// kill kills the instance (SIGKILL, docker kill) and waits until it is gone.
	kill func()
	// faultKill kills it once the migration is under way (the process_kill fault).
	faultKill bool
	// discard, when set, disposes of the failed instance (a container is removed) before the
	// operation is failed, so the next operation finds nothing of it.
	discard func()
}

func (w migrationWatch) dispose() {
	if w.discard != nil {
		w.discard()
	}
}

// exitCoder is an instance's exit error that carries the Engine's own error code.
type exitCoder interface{ apiCode(def string) string }

// followMigration follows the migration the instance runs at start-up in the brain's own schema
// record until it reaches toSchema clean. Otherwise it fails op with the engine failed and
// returns false: the instance was killed (the process_kill fault), exited, or missed the
// deadline (then it is killed). It returns false without touching op when the control plane
// closes.
func (s *Server) followMigration(op *operation, path api.UpgradePath, w migrationWatch) bool {
	brain := s.BrainPath(op.UserID)
	restore := ""
	if op.SnapshotID != "" {
		restore = " (" + op.SnapshotID + ")"
	}
	for {
		schema, dirty, _ := brainSchema(brain)
		if w.faultKill && dirty {
			w.kill()
			schema, dirty, _ = brainSchema(brain)
			w.dispose()
			s.failOp(op, api.StepMigrate, api.CodeMigrationFailed, fmt.Sprintf("fault process_kill: engine %s (%s) was killed with SIGKILL while its migration to schema %d ran; the migration's transaction never committed and the brain is marked dirty at schema %d (dirty=%v); restore the snapshot taken before the upgrade%s", w.inst.desc, path.To, path.ToSchema, schema, dirty, restore), true)
			return false
		}
		if schema == path.ToSchema && !dirty {
			return true
		}
		select {
		case <-w.inst.done:
			err := w.inst.exited()
			code := api.CodeMigrationFailed
			if ec, ok := err.(exitCoder); ok {
				code = ec.apiCode(code)
			}
			schema, dirty, _ = brainSchema(brain)
			w.dispose()
			s.failOp(op, api.StepMigrate, code, fmt.Sprintf("%v; the brain is at schema %d (dirty=%v); restore the snapshot taken before the upgrade%s", err, schema, dirty, restore), true)
			return false
		case <-s.ctx.Done():
			return false
		case <-time.After(healthPoll):
		}
		if time.Now().After(w.deadline) {
			w.kill()
			w.dispose()
			s.failOp(op, api.StepMigrate, api.CodeMigrationFailed, fmt.Sprintf("%s did not finish migrating user %s's brain to schema %d by the deadline (the brain is at schema %d, dirty=%v); %s was killed; restore the snapshot taken before the upgrade%s", path.To, op.UserID, path.ToSchema, schema, dirty, w.inst.desc, restore), true)
			return false
		}
	}
}

// realWait is a requested timeout as a runtime of real programs (process, docker) applies it:
// scaled like every nominal duration, but never below what a real program needs (floor),
// unless the request itself is shorter.
func (s *Server) realWait(d time.Duration, floor time.Duration) time.Duration {
	return max(s.scaled(d), min(floor, d))
}
