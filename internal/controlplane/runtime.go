package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Runtime names (Options.Runtime, --runtime).
const (
	// RuntimeSim runs engines as state machines inside the control plane (the default).
	RuntimeSim = "sim"
	// RuntimeProcess runs every engine as a child process started from its version's command.
	RuntimeProcess = "process"
	// RuntimeDocker runs every engine as a Docker container from its version's image.
	RuntimeDocker = "docker"
)

// engineRuntime is where engines run: the one seam between the control plane (registry,
// operations, API) and the engines themselves. Each runtime lives in files of its own: sim
// (runtime_sim.go: state machines in this process), process (runtime_process*.go: one child
// process per engine) and docker (runtime_docker*.go: one container per engine, through the
// Docker Engine API). Nothing outside them asks which runtime is in use.
//
// The control plane owns every engine's record (engineState, under Server.mu) and its brain, a
// SQLite file under the data dir (Server.BrainPath) that provisioning creates and that outlives
// any engine. A runtime gives an engine that file, starts, drains and stops it, and reports what
// it saw. The docker runtime keeps each brain in a directory of its own, bind-mounted at /data,
// and says where (brainLocator).
//
// The operation methods (drainAndStop, migrate, bootAndCheck) run inside an operation's
// goroutine and own its steps: each begins its steps (Server.begin) and finishes them
// (Server.finishStep); on failure it ends the operation itself (Server.failOp) and reports false.
// They give up without touching the operation once the control plane closes (s.ctx is done):
// the next start reports the operation interrupted.
type engineRuntime interface {
	// name is the runtime's Options.Runtime name.
	name() string
	// realProcesses says engines are real programs (processes, containers) that the
	// process_kill and ignore_sigterm faults can act on.
	realProcesses() bool

	// resume brings up, once the control plane has loaded its registry, every engine the
	// registry records as running, on what its brain holds. A runtime whose engines can outlive
	// a control plane that was killed adopts the ones still running (containers found by
	// label) and starts the rest; process has killed such leftovers when it was built
	// (reapOrphans, before the registry was read) and starts every one.
	// One that cannot come up is failed with the reason (Server.engineLostLocked), never shown
	// as running. It returns when every engine is up or failed.
	resume()
	// close stops every engine when the control plane closes (its context is already
	// cancelled and every operation has returned): an engine process gets a short grace for
	// its in-flight turns, then is killed; nothing the runtime started survives it, and no
	// brain stays open.
	close()

	// boot starts a freshly provisioned engine at version outside any operation
	// (Server.CreateEngine) and waits until it is healthy; on failure the engine is failed with
	// the reason and so is the error.
	boot(user, version string) error
	// removeLocked stops e's engine for good, under Server.mu, before its record and brain are
	// deleted (Server.DeleteEngine): its exit is asked for, so it is not reported as a crash.
	removeLocked(e *engineState)

	// drainAndStop runs the steps drain (in-flight turns finish, new ones get 503, within
	// timeout) and stop (the engine no longer runs and its brain is closed), leaving the
	// engine stopped (a failed engine stays failed: it has nothing to drain).
	drainAndStop(op *operation, timeout time.Duration) bool
	// migrate runs the step migrate of an upgrade whose path migrates the brain (the engine is
	// stopped): the brain reaches path.ToSchema clean, or the operation fails with the engine
	// failed (MIGRATION_FAILED; the brain stays dirty until a restore). A runtime whose engines
	// migrate their brain at start-up, as the real Engine does, starts path.To and follows the
	// migration in the brain's schema record within healthTimeout, and may leave that engine
	// running for bootAndCheck to adopt.
	migrate(op *operation, path api.UpgradePath, healthTimeout time.Duration) bool
	// bootAndCheck runs the steps boot and health: version starts on the brain and reports
	// healthy within healthTimeout, the engine is running again and the operation succeeds
	// (Server.bootSucceeded). A version that cannot read the brain's schema refuses to boot
	// (MIGRATION_REQUIRED), as the real Engine does, and the engine is failed. From here on
	// the runtime watches the engine: an exit nobody asked for, or an engine that stops
	// answering its health checks, fails it (Server.engineLostLocked) even mid-operation.
	bootAndCheck(op *operation, version string, healthTimeout time.Duration)

	// snapshotBrain copies user's live brain as of one commit into the new file tmp while the
	// engine keeps taking turns (the operation then verifies and seals it).
	snapshotBrain(ctx context.Context, user, tmp string) (snapshotCopy, error)
	// restoreBrain replaces user's brain, whose engine is stopped, by the snapshot file.
	restoreBrain(user, snapshot string) error

	// turns serves test traffic on a running engine (counted in flight by the caller, which
	// is what a drain waits for): count turns written into the brain, its write counter and
	// the engine's recent writes (and results) updated for metrics.
	turns(e *engineState, req api.TurnsRequest) (api.TurnsResult, *apiError)
	// metricsLocked fills m (user, version and window set; WarningKinds empty) with the
	// engine's signals in the window from m.From, under Server.mu.
	metricsLocked(e *engineState, m *api.Metrics)

	// process reports user's running engine process: its pid, its URL and the key it accepts
	// in X-Engine-Key. ok is false when none runs or engines are not processes.
	process(user string) (pid int, url, key string, ok bool)
}

// newRuntime builds the runtime opts.Runtime names; checkRuntimeOptions has vetted the name.
func newRuntime(s *Server) (engineRuntime, error) {
	switch s.opts.Runtime {
	case RuntimeProcess:
		return newProcRuntime(s)
	case RuntimeDocker:
		return newDockerRuntime(s)
	}
	return newSimRuntime(s), nil
}

// brainLocator is a runtime that keeps brains elsewhere than <data-dir>/brains/<user>.sqlite
// (Server.BrainPath asks it) and may run engines on brains it did not create.
type brainLocator interface {
	brainPath(user string) string
	// ownsBrain says the control plane created user's brain and may delete it.
	ownsBrain(user string) bool
	// removedBrain is told that user's brain file was deleted (Server.DeleteEngine).
	removedBrain(user string)
}

// checkRuntimeOptions settles opts.Runtime ("" is sim) and refuses options of another runtime.
func checkRuntimeOptions(opts *Options) error {
	process := opts.EngineCommand != "" || len(opts.EngineCommands) > 0
	docker := !opts.Docker.empty()
	switch opts.Runtime {
	case "", RuntimeSim:
		opts.Runtime = RuntimeSim
		if process || docker || opts.PortMin != 0 || opts.PortMax != 0 {
			return errors.New("controlplane: EngineCommand, EngineCommands, the port range and the Docker options apply to the process or docker runtime only; set Runtime to \"process\" or \"docker\"")
		}
	case RuntimeProcess:
		if docker {
			return errors.New("controlplane: the Docker options (image, network, brain root, env passthrough, adopt labels) apply to the docker runtime only; set Runtime to \"docker\"")
		}
	case RuntimeDocker:
		if process {
			return errors.New("controlplane: EngineCommand and EngineCommands apply to the process runtime only; the docker runtime runs images (Docker.Image, Docker.Images)")
		}
		return opts.Docker.check()
	default:
		return fmt.Errorf("controlplane: runtime %q is not one of %q (engines in this process, the default), %q (one child process per engine) or %q (one Docker container per engine)", opts.Runtime, RuntimeSim, RuntimeProcess, RuntimeDocker)
	}
	return nil
}

// hostBrain is the brain half of a runtime whose engines use their brain where the control plane
// keeps it, on this host (Server.BrainPath): a snapshot copies the live file (copyBrain), a
// restore replaces the stopped one (swapBrain). A container runtime bind-mounting the file
// shares it too.
type hostBrain struct {
	path func(user string) string
}

func (h hostBrain) snapshotBrain(ctx context.Context, user, tmp string) (snapshotCopy, error) {
	return copyBrain(ctx, h.path(user), tmp)
}

func (h hostBrain) restoreBrain(user, snapshot string) error {
	return swapBrain(snapshot, h.path(user))
}

// imageChecker is a runtime that runs versions from images: a version whose image is missing is
// refused before an operation stops anything (IMAGE_NOT_FOUND).
type imageChecker interface {
	checkImage(version string) *apiError
}

// checkImage refuses version when the runtime cannot run it (checked before an upgrade or a
// restore starts); nil under runtimes without images.
func (s *Server) checkImage(version string) *apiError {
	if ic, ok := s.rt.(imageChecker); ok {
		return ic.checkImage(version)
	}
	return nil
}

// What runtimes share: the steps' bookkeeping on the engine's record.

// beginDrain begins the step drain; a failed engine, with nothing to drain, stays failed.
func (s *Server) beginDrain(op *operation) (e *engineState, wasFailed bool) {
	s.mu.Lock()
	wasFailed = s.engines[op.UserID].Status == api.StatusFailed
	s.mu.Unlock()
	return s.begin(op, api.StepDrain, map[bool]string{true: "", false: api.StatusDraining}[wasFailed]), wasFailed
}

// beginBoot begins the step boot of version, which the engine's record names from now on (what
// last booted is what a restart after an interruption trusts).
func (s *Server) beginBoot(op *operation, version string) (*engineState, api.Version) {
	v, _ := s.cat.Get(version)
	e := s.begin(op, api.StepBoot, api.StatusUpgrading)
	s.mu.Lock()
	e.EngineVersion = v.Version
	s.mu.Unlock()
	return e, v
}

// migrated records that e's brain reached schema during op.
func (s *Server) migrated(op *operation, e *engineState, schema int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	e.SchemaVersion, e.LastMigrationAt = schema, &now
	s.changedLocked(op, e)
}

// bootSucceeded ends the step health and the operation once version runs healthy on schema.
func (s *Server) bootSucceeded(op *operation, version string, schema int) {
	s.finishStep(op, api.StepHealth, "health ok")
	s.succeedOp(op, api.OperationResult{EngineVersion: version, SchemaVersion: schema, SnapshotID: op.SnapshotID})
}

// engineLostLocked fails an engine its runtime lost outside an operation's steps (it did not
// start, exited unasked or stopped answering), under s.mu: recorded at once, with the reason,
// so a crash is never hidden.
func (s *Server) engineLostLocked(e *engineState, code, msg string) error {
	e.fail(code, msg)
	e.Generation++
	return s.reg.putEngines(e.Engine)
}

// bootFailed fails user's engine because version did not come up on its brain (where names
// the runtime's engine, as "" or " in a container"): the Engine's own code when its exit error
// carries one, else HEALTH_CHECK_FAILED. It returns the reason as an error.
func (s *Server) bootFailed(user, version, where string, err error) error {
	code := api.CodeHealthCheckFailed
	var ec exitCoder
	if errors.As(err, &ec) {
		code = ec.apiCode(code)
	}
	msg := fmt.Sprintf("version %s did not start on user %s's brain%s: %v", version, user, where, err)
	s.mu.Lock()
	if e := s.engines[user]; e != nil {
		_ = s.engineLostLocked(e, code, msg)
	}
	s.mu.Unlock()
	return errors.New(msg)
}

// EngineProcess reports user's engine process under the process runtime (under docker: the
// container's main process, as the host sees it): its pid, its URL and the key it accepts in
// X-Engine-Key. ok is false when none runs (or under sim).
func (s *Server) EngineProcess(user string) (pid int, url, key string, ok bool) {
	return s.rt.process(user)
}

// Runtime is the runtime engines run in: RuntimeSim, RuntimeProcess or RuntimeDocker.
func (s *Server) Runtime() string { return s.rt.name() }

// eachRunningEngine runs up for every engine the registry records as running, four at a time,
// and returns when all have returned: how a runtime brings its engines up at start.
func (s *Server) eachRunningEngine(up func(user, version string)) {
	s.mu.Lock()
	type job struct{ user, version string }
	var jobs []job
	for _, id := range s.userIDs {
		if e := s.engines[id]; e.Status == api.StatusRunning {
			jobs = append(jobs, job{id, e.EngineVersion})
		}
	}
	s.mu.Unlock()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			up(j.user, j.version)
		}()
	}
	wg.Wait()
}

// nothingToDrain ends the steps drain and stop of an engine that has nothing running (what is
// the engine's program: "engine process", "engine container").
func (s *Server) nothingToDrain(op *operation, what string) {
	s.finishStep(op, api.StepDrain, "no "+what+" is running; nothing to drain")
	s.begin(op, api.StepStop, "")
	s.finishStep(op, api.StepStop, "no "+what+" to stop")
}
