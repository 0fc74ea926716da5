package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// DefaultEngineCommand is the process runtime's command template when none is given: the
// stand-in Engine (go build ./internal/cmd/engine-standin) found on PATH. {version} is replaced
// by the version to run.
const DefaultEngineCommand = "engine-standin --version {version}"

// Real processes need real time: nominal waits scaled down for tests would give a process no
// chance to start or to drain, so the process runtime never waits less than these, or than the
// requested timeout itself when that is shorter (a caller asking for 1 s gets 1 s).
const (
	minProcessWait  = 10 * time.Second // boot deadline and health timeout
	minProcessGrace = time.Second      // SIGTERM grace before SIGKILL
	closeGrace      = 2 * time.Second  // SIGTERM grace of every engine when the control plane stops
	// processKillDelay holds a migration open (after its dirty flag is set) while the
	// process_kill fault is in force; the kill lands as soon as the dirty flag is seen, so the
	// delay only bounds how long a missed kill would take to show.
	processKillDelay = 10 * time.Second
	healthPoll       = 10 * time.Millisecond
	// A healthy engine is probed every probeInterval; probeFailures failed probes in a row
	// (no answer within probeTimeout, or not "ok") mean it hangs: it is failed and killed.
	probeInterval = 500 * time.Millisecond
	probeTimeout  = time.Second
	probeFailures = 3
)

// procRuntime runs engines as child processes: one per running engine, each in its own process
// group (so a stand-in's own children die with it) with a parent-death signal (so nothing
// outlives a control plane that is killed outright), on a loopback port from a range.
//
// Its files: runtime_process.go (configuration, start-up, close), runtime_process_spawn.go
// (starting, signalling and reaping one process), runtime_process_steps.go (an operation's
// steps), runtime_process_watch.go (crash and hang detection), runtime_process_traffic.go
// (turns and metrics), and what differs by OS in runtime_process_{unix,linux,other}.go.
type procRuntime struct {
	s *Server
	hostBrain
	def         []string
	per         map[string][]string
	portMin     int
	portMax     int
	catalogFile string
	logDir      string
	runDir      string
	http        *http.Client

	mu    sync.Mutex
	procs map[string]*engineProc // by user id
	ports map[int]bool
	next  int
}

// engineProc is one engine process.
type engineProc struct {
	engineInstance // done closes once the process has exited and been reaped
	pid, port      int
	exit           string // "exit status 4", "signal: killed"; set before done closes
	// watched is true from spawn until whoever started the process (a boot, an upgrade, a
	// restore) has seen it healthy: until then that caller reports an exit, with its own
	// context, and a crash report would only race it.
	watched atomic.Bool
	// current is set at exit when the process was still the engine's process then.
	current bool
	tail    *logTail
}

var _ engineRuntime = (*procRuntime)(nil)

func newProcRuntime(s *Server) (*procRuntime, error) {
	o := s.opts
	r := &procRuntime{s: s, hostBrain: hostBrain{path: s.BrainPath}, per: map[string][]string{}, portMin: o.PortMin, portMax: o.PortMax,
		procs: map[string]*engineProc{}, ports: map[int]bool{},
		logDir: filepath.Join(o.DataDir, "logs"), runDir: filepath.Join(o.DataDir, "run"),
		http: &http.Client{Timeout: 2 * time.Minute}}
	if err := processRuntimeSupported(); err != nil {
		return nil, err
	}
	tmpl := o.EngineCommand
	if tmpl == "" {
		tmpl = DefaultEngineCommand
	}
	var err error
	if r.def, err = parseCommand("EngineCommand", tmpl); err != nil {
		return nil, err
	}
	for v, c := range o.EngineCommands {
		if _, ok := s.cat.Get(v); !ok {
			return nil, fmt.Errorf("EngineCommands names version %q, which is not in the catalog (known: %v)", v, s.cat.Names())
		}
		if r.per[v], err = parseCommand("EngineCommands["+v+"]", c); err != nil {
			return nil, err
		}
	}
	switch {
	case r.portMin == 0 && r.portMax == 0:
		// Ask the kernel for free ports: what parallel tests need.
	case r.portMin < 1 || r.portMax > 65535 || r.portMin > r.portMax:
		return nil, fmt.Errorf("port range %d-%d is not a range of ports (for example 9001-9999)", r.portMin, r.portMax)
	}
	r.next = r.portMin
	for _, d := range []string{r.logDir, r.runDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// The engines read the same catalog the control plane plans with.
	b, _ := json.MarshalIndent(api.VersionList{Versions: o.Catalog}, "", "  ")
	r.catalogFile = filepath.Join(o.DataDir, "catalog.json")
	if err := os.WriteFile(r.catalogFile, b, 0o600); err != nil {
		return nil, err
	}
	r.reapOrphans()
	return r, nil
}

// parseCommand splits a command template into words and checks that its program exists.
func parseCommand(field, tmpl string) ([]string, error) {
	words := strings.Fields(tmpl)
	if len(words) == 0 {
		return nil, fmt.Errorf("%s is empty: give the command that starts an engine, for example %q", field, DefaultEngineCommand)
	}
	if _, err := exec.LookPath(words[0]); err != nil {
		return nil, fmt.Errorf("%s %q: program %q not found (%w); build the stand-in with `go build -o DIR/engine-standin ./internal/cmd/engine-standin` and put DIR on PATH, or pass the full path", field, tmpl, words[0], err)
	}
	return words, nil
}

func (r *procRuntime) command(version string) []string {
	words := r.def
	if w, ok := r.per[version]; ok {
		words = w
	}
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ReplaceAll(w, "{version}", version)
	}
	return out
}

func (r *procRuntime) get(user string) *engineProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[user]
}

func (r *procRuntime) name() string        { return RuntimeProcess }
func (r *procRuntime) realProcesses() bool { return true }

func (r *procRuntime) process(user string) (pid int, url, key string, ok bool) {
	p := r.get(user)
	if p == nil {
		return 0, "", "", false
	}
	return p.pid, p.url, p.key, true
}

// resume boots the process of every running engine, a few at a time (the ones a previous control
// plane left running were killed by reapOrphans, before the registry was read).
func (r *procRuntime) resume() {
	r.s.eachRunningEngine(func(user, version string) {
		if err := r.boot(user, version); err != nil {
			r.s.log.Error("engine did not start", "user_id", user, "error", err)
		}
	})
}

// boot starts version for user outside any operation (control plane start, CreateEngine) and
// waits until it is healthy. On failure the engine is left failed with the reason.
func (r *procRuntime) boot(user, version string) error {
	env, _ := r.s.faultEnv(user, version, false)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var p *engineProc
		if p, err = r.spawn(user, version, env); err != nil {
			break
		}
		if err = p.waitHealth(r.s.ctx, time.Now().Add(r.s.realWait(time.Duration(defaultHealthTimeout)*time.Second, minProcessWait)), true); err == nil {
			r.healthy(p)
			return nil
		}
		var pe *processExit
		if errors.As(err, &pe) && pe.code == "PORT_UNAVAILABLE" {
			continue // another program took the port between our check and the engine's bind
		}
		r.kill(p)
		break
	}
	return r.s.bootFailed(user, version, "", err)
}

// close stops every engine process: SIGTERM, the grace of closeGrace to finish the turns in
// flight (the control plane's context is already cancelled, so it must not cut that short),
// then SIGKILL. Nothing survives it.
func (r *procRuntime) close() {
	r.mu.Lock()
	ps := make([]*engineProc, 0, len(r.procs))
	for _, p := range r.procs {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.terminate(p, closeGrace, nil)
		}()
	}
	wg.Wait()
}

// removeLocked kills the engine's process, if it runs: its exit is asked for, so it is not
// reported as a crash.
func (r *procRuntime) removeLocked(e *engineState) {
	if p := r.get(e.UserID); p != nil {
		r.kill(p)
	}
}

// reapOrphans kills engine processes a previous control plane over this data dir left behind
// (it was killed before its parent-death signal could act, or ran on another thread that
// exited). A pid is only killed when its environment names one of this data dir's brains, so a
// recycled pid is never touched.
func (r *procRuntime) reapOrphans() {
	files, _ := filepath.Glob(filepath.Join(r.runDir, "*.pid"))
	for _, f := range files {
		user := strings.TrimSuffix(filepath.Base(f), ".pid")
		b, _ := os.ReadFile(f)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 1 {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if bytes.Contains(env, []byte("SQLITE_DB_PATH="+r.s.BrainPath(user)+"\x00")) {
				r.s.log.Warn("killing an engine process left by a previous control plane", "user_id", user, "pid", pid)
				_ = killGroup(pid, syscall.SIGKILL)
				for i := 0; i < 200 && processAlive(pid); i++ {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		os.Remove(f)
	}
}
