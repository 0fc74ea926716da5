package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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
	user, version string
	pid, port     int
	key, url      string
	done          chan struct{} // closed once the process has exited and been reaped
	exit          string        // "exit status 4", "signal: killed"; set before done closes
	stopping      atomic.Bool   // an exit we asked for is not a crash
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

func (r *procRuntime) allocPort() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	free := func(p int) bool {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	if r.portMin == 0 {
		// Below the kernel's ephemeral range no test server or plugin listener is ever handed
		// the port between our check and the engine's bind (one that answers /health "ok"
		// would pass for the engine); a random start keeps parallel control planes apart.
		if lo, hi, ok := nonEphemeralPorts(); ok {
			n := hi - lo
			start := lo + int(time.Now().UnixNano()%int64(n))
			for i := 0; i < n; i++ {
				p := lo + (start-lo+i)%n
				if !r.ports[p] && free(p) {
					r.ports[p] = true
					return p, nil
				}
			}
		}
		for i := 0; i < 20; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			addr, _ := ln.Addr().(*net.TCPAddr)
			ln.Close()
			if p := addr.Port; !r.ports[p] {
				r.ports[p] = true
				return p, nil
			}
		}
		return 0, errors.New("the kernel kept handing out ports already given to engines")
	}
	n := r.portMax - r.portMin + 1
	for i := 0; i < n; i++ {
		p := r.portMin + (r.next-r.portMin+i)%n
		if r.ports[p] || !free(p) {
			continue
		}
		r.ports[p] = true
		r.next = p + 1
		return p, nil
	}
	return 0, fmt.Errorf("PORT_EXHAUSTION: every port in %d-%d is taken; widen the range (--port-min/--port-max)", r.portMin, r.portMax)
}

// nonEphemeralPorts is a range of loopback ports the kernel never hands out for port 0: from
// 10000 up to the start of /proc/sys/net/ipv4/ip_local_port_range. ok is false where that
// range cannot be read or leaves too little room.
func nonEphemeralPorts() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, 0, false
	}
	min, err := strconv.Atoi(f[0])
	if err != nil || min < 11000 {
		return 0, 0, false
	}
	return 10000, min, true
}

// childEnv is the part of the control plane's environment an engine process inherits: an
// allow-list of what any program needs to run (PATH, HOME, locale, time zone, temporary
// directory, CA certificates). Everything else stays behind, above all the control plane's own
// settings and admin key (ENGINE_CONTROLPLANE_*), which any program run as an engine could
// otherwise read. The control plane adds what the engine needs itself (brain, port, key hash,
// version); an engine needing more gets it from a wrapper script given as --engine-command.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if inheritedEnv[k] || strings.HasPrefix(k, "LC_") {
			out = append(out, kv)
		}
	}
	return out
}

// inheritedEnv names the variables childEnv passes on.
var inheritedEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "TMPDIR": true, "TZ": true,
	"LANG": true, "LANGUAGE": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
	"GOCOVERDIR": true, // coverage of a stand-in built with -cover
}

// spawn starts version's process on user's brain. It does not wait for anything.
func (r *procRuntime) spawn(user, version string, extraEnv []string) (*engineProc, error) {
	argv := r.command(version)
	port, err := r.allocPort()
	if err != nil {
		return nil, err
	}
	release := func() {
		r.mu.Lock()
		delete(r.ports, port)
		r.mu.Unlock()
	}
	key := randomHex(24)
	sum := sha256.Sum256([]byte(key))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(childEnv(),
		"SQLITE_DB_PATH="+r.s.BrainPath(user), "PORT="+strconv.Itoa(port), "ENGINE_KEY_HASH="+hex.EncodeToString(sum[:]),
		"ENGINE_VERSION="+version, "ENGINE_STANDIN_CATALOG="+r.catalogFile,
		"ENGINE_STANDIN_TIME_SCALE="+strconv.FormatFloat(r.s.opts.TimeScale, 'g', -1, 64))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.SysProcAttr = engineSysProcAttr()
	logf, err := os.OpenFile(filepath.Join(r.logDir, user+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		release()
		return nil, err
	}
	tail := &logTail{w: logf}
	cmd.Stdout, cmd.Stderr = tail, tail
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		logf.Close()
		release()
		return nil, fmt.Errorf("start %q for user %s: %w", strings.Join(argv, " "), user, err)
	}
	p := &engineProc{user: user, version: version, pid: cmd.Process.Pid, port: port, key: key,
		url: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{}), tail: tail}
	p.watched.Store(true)
	runFile := filepath.Join(r.runDir, user+".pid")
	_ = os.WriteFile(runFile, []byte(strconv.Itoa(p.pid)), 0o600)
	r.mu.Lock()
	r.procs[user] = p
	r.mu.Unlock()
	r.s.log.Info("engine process started", "user_id", user, "version", version, "pid", p.pid, "port", port)
	go func() {
		err := cmd.Wait()
		p.exit = "exit status 0"
		if err != nil {
			p.exit = err.Error()
		}
		logf.Close()
		// Forgotten before done closes: whoever waits on done and then looks the engine's
		// process up must not find this dead one.
		r.mu.Lock()
		if p.current = r.procs[user] == p; p.current {
			delete(r.procs, user)
			os.Remove(runFile)
		}
		delete(r.ports, port)
		r.mu.Unlock()
		close(p.done)
		if !p.stopping.Load() && !p.watched.Load() {
			r.s.engineExited(p)
		}
	}()
	return p, nil
}

// healthy hands p over to crash detection once its starter has seen it healthy; an exit that
// slipped in meanwhile is reported at once.
func (r *procRuntime) healthy(p *engineProc) {
	p.watched.Store(false)
	select {
	case <-p.done:
		if !p.stopping.Load() {
			r.s.engineExited(p)
		}
		return
	default:
	}
	go r.probe(p)
}

// probe keeps asking a healthy engine's /health until it exits or is stopped. Answers refresh
// last_health_at; probeFailures failures in a row fail the engine and kill the hung process, as
// an orchestrator's health loop would.
func (r *procRuntime) probe(p *engineProc) {
	c := &http.Client{Timeout: probeTimeout}
	failures := 0
	for {
		select {
		case <-p.done:
			return
		case <-r.s.ctx.Done():
			return
		case <-time.After(probeInterval):
		}
		if p.stopping.Load() {
			return
		}
		ok := false
		var why string
		if resp, err := c.Get(p.url + "/health"); err != nil {
			why = err.Error()
		} else {
			var h api.Health
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK && h.Status == "ok"
			why = fmt.Sprintf("%d %q", resp.StatusCode, h.Status)
		}
		if ok {
			failures = 0
			r.s.mu.Lock()
			if e := r.s.engines[p.user]; e != nil && e.Status == api.StatusRunning && r.get(p.user) == p {
				now := time.Now().UTC()
				e.LastHealthAt = &now
			}
			r.s.mu.Unlock()
			continue
		}
		if failures++; failures < probeFailures || p.stopping.Load() {
			continue
		}
		r.s.mu.Lock()
		e := r.s.engines[p.user]
		hung := e != nil && e.Status == api.StatusRunning && r.get(p.user) == p && !p.stopping.Load()
		if hung {
			p.stopping.Store(true) // reported here, not again as a crash
			if err := r.s.engineLostLocked(e, api.CodeHealthCheckFailed, fmt.Sprintf("user %s's engine process (pid %d, version %s) stopped answering /health (%d probes in a row failed, last: %s); it was killed and the engine is failed: restore a snapshot to bring it back",
				p.user, p.pid, p.version, failures, why)); err != nil {
				r.s.log.Error("registry write failed", "user_id", p.user, "error", err)
			}
		}
		r.s.mu.Unlock()
		if hung {
			r.s.log.Error("engine process hung; killed", "user_id", p.user, "pid", p.pid)
			r.kill(p)
		}
		return
	}
}

// kill SIGKILLs p's process group and waits for it to be reaped.
func (r *procRuntime) kill(p *engineProc) {
	p.stopping.Store(true)
	_ = killGroup(p.pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits grace for the process to exit, then SIGKILLs it. killed says
// whether the grace ran out.
func (r *procRuntime) stop(p *engineProc, grace time.Duration) (took time.Duration, killed bool) {
	// An operation's stop gives up when the control plane closes: closeAll then drains the
	// engine itself.
	return r.terminate(p, grace, r.s.ctx.Done())
}

// terminate sends SIGTERM, waits up to grace (or until abort closes) for the process to exit,
// then SIGKILLs it.
func (r *procRuntime) terminate(p *engineProc, grace time.Duration, abort <-chan struct{}) (took time.Duration, killed bool) {
	p.stopping.Store(true)
	start := time.Now()
	_ = killGroup(p.pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return time.Since(start), false
	case <-t.C:
	case <-abort:
	}
	r.kill(p)
	return time.Since(start), true
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

// processExit describes why a process ended, with the code and message of its last error log
// line when it wrote one.
type processExit struct {
	p    *engineProc
	code string // the engine's error code (MIGRATION_REQUIRED, ...) or ""
	msg  string
}

func (e *processExit) Error() string {
	s := fmt.Sprintf("engine process %d (%s) exited: %s", e.p.pid, e.p.version, e.p.exit)
	if e.msg != "" {
		s += "; its last error: " + e.msg
	}
	return s
}

func exitOf(p *engineProc) *processExit {
	code, msg := p.tail.lastError()
	return &processExit{p: p, code: code, msg: msg}
}

// apiCode maps an engine's exit to the operation's error code.
func (e *processExit) apiCode(def string) string {
	switch e.code {
	case api.CodeMigrationRequired, api.CodeMigrationFailed:
		return e.code
	}
	return def
}

// waitHealth polls /health until it answers (ok=false) or answers 200 "ok" (ok=true), the
// process exits (*processExit), the deadline passes or the server closes.
func (r *procRuntime) waitHealth(p *engineProc, deadline time.Time, ok bool) error {
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return exitOf(p)
		case <-r.s.ctx.Done():
			return r.s.ctx.Err()
		default:
		}
		if resp, err := c.Get(p.url + "/health"); err == nil {
			var h api.Health
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h)
			resp.Body.Close()
			if !ok || (resp.StatusCode == http.StatusOK && h.Status == "ok") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-p.done:
		case <-r.s.ctx.Done():
		case <-time.After(healthPoll):
		}
	}
}

// processWait is a requested timeout as the process runtime applies it: scaled like every
// nominal duration, but never below what a real process needs (floor), unless the request itself
// is shorter.
func (r *procRuntime) processWait(d time.Duration, floor time.Duration) time.Duration {
	return max(r.s.scaled(d), min(floor, d))
}

// faultEnv fires the faults that shape a process at start and returns its environment knobs.
// killMidMigration says the control plane must kill it once its migration is under way.
func (r *procRuntime) faultEnv(user, version string, migrating bool) (env []string, killMidMigration bool) {
	s := r.s
	if !s.opts.EnableFaults {
		return nil, false
	}
	if s.faults.fire([]string{api.FaultIgnoreSIGTERM}, user, version, "", "") != nil {
		env = append(env, "ENGINE_STANDIN_IGNORE_SIGTERM=1")
	}
	if s.faults.fire([]string{api.FaultHealthNeverOK}, user, version, "", "") != nil {
		env = append(env, "ENGINE_STANDIN_NEVER_HEALTHY=1")
	}
	if migrating {
		if s.faults.fire([]string{api.FaultMigrationFail}, user, version, "", "") != nil {
			env = append(env, "ENGINE_STANDIN_FAIL_MIGRATION=1")
		}
		if s.faults.fire([]string{api.FaultProcessKill}, user, version, "", "") != nil {
			env = append(env, "ENGINE_STANDIN_MIGRATE_DELAY_MS="+strconv.FormatInt(processKillDelay.Milliseconds(), 10))
			killMidMigration = true
		}
	}
	return env, killMidMigration
}

// boot starts version for user outside any operation (control plane start, CreateEngine) and
// waits until it is healthy. On failure the engine is left failed with the reason.
func (r *procRuntime) boot(user, version string) error {
	env, _ := r.faultEnv(user, version, false)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var p *engineProc
		if p, err = r.spawn(user, version, env); err != nil {
			break
		}
		if err = r.waitHealth(p, time.Now().Add(r.processWait(time.Duration(defaultHealthTimeout)*time.Second, minProcessWait)), true); err == nil {
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
	code := api.CodeHealthCheckFailed
	var pe *processExit
	if errors.As(err, &pe) {
		code = pe.apiCode(code)
	}
	msg := fmt.Sprintf("version %s did not start on user %s's brain: %v", version, user, err)
	r.s.mu.Lock()
	if e := r.s.engines[user]; e != nil {
		_ = r.s.engineLostLocked(e, code, msg)
	}
	r.s.mu.Unlock()
	return errors.New(msg)
}

// resume boots the process of every running engine, a few at a time (the ones a previous control
// plane left running were killed by reapOrphans, before the registry was read).
func (r *procRuntime) resume() {
	r.s.mu.Lock()
	type job struct{ user, version string }
	var jobs []job
	for _, id := range r.s.userIDs {
		if e := r.s.engines[id]; e.Status == api.StatusRunning {
			jobs = append(jobs, job{id, e.EngineVersion})
		}
	}
	r.s.mu.Unlock()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.boot(j.user, j.version); err != nil {
				r.s.log.Error("engine did not start", "user_id", j.user, "error", err)
			}
		}()
	}
	wg.Wait()
}

// engineExited is called when an engine process that had been seen healthy ends without being
// asked to (a starting process's exit is reported by its starter): the engine is failed, even
// mid-operation, so a crash is never hidden.
func (s *Server) engineExited(p *engineProc) {
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

// drainAndStop is the process runtime's drain: SIGTERM (the engine refuses new turns and
// finishes the ones in flight), the grace (drain_timeout), then SIGKILL. An engine that ignores
// SIGTERM is killed and the stop step says so.
func (r *procRuntime) drainAndStop(op *operation, timeout time.Duration) bool {
	s := r.s
	s.beginDrain(op)
	p := r.get(op.UserID)
	if p == nil {
		s.finishStep(op, api.StepDrain, "no engine process is running; nothing to drain")
		s.begin(op, api.StepStop, "")
		s.finishStep(op, api.StepStop, "no engine process to stop")
		return true
	}
	grace := r.processWait(timeout, minProcessGrace)
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
	env, killMid := r.faultEnv(op.UserID, path.To, true)
	p, err := r.spawn(op.UserID, path.To, env)
	if err != nil {
		s.failOp(op, api.StepMigrate, api.CodeInternal, fmt.Sprintf("could not start %s to migrate user %s's brain: %v; nothing was migrated", path.To, op.UserID, err), false)
		return false
	}
	restore := ""
	if op.SnapshotID != "" {
		restore = " (" + op.SnapshotID + ")"
	}
	deadline := time.Now().Add(r.processWait(healthTimeout, minProcessWait))
	brain := s.BrainPath(op.UserID)
	for {
		schema, dirty, _ := brainSchema(brain)
		if killMid && dirty {
			r.kill(p)
			schema, dirty, _ = brainSchema(brain)
			r.failWith(op, nil, api.StepMigrate, api.CodeMigrationFailed, fmt.Sprintf("fault process_kill: engine process %d (%s) was killed with SIGKILL while its migration to schema %d ran; the migration's transaction never committed and the brain is marked dirty at schema %d (dirty=%v); restore the snapshot taken before the upgrade%s", p.pid, path.To, schema, schema, dirty, restore))
			return false
		}
		if schema == path.ToSchema && !dirty {
			break
		}
		select {
		case <-p.done:
			pe := exitOf(p)
			schema, dirty, _ = brainSchema(brain)
			r.failWith(op, nil, api.StepMigrate, pe.apiCode(api.CodeMigrationFailed), fmt.Sprintf("%v; the brain is at schema %d (dirty=%v); restore the snapshot taken before the upgrade%s", pe, schema, dirty, restore))
			return false
		case <-s.ctx.Done():
			return false
		case <-time.After(healthPoll):
		}
		if time.Now().After(deadline) {
			r.failWith(op, p, api.StepMigrate, api.CodeMigrationFailed, fmt.Sprintf("%s did not finish migrating user %s's brain to schema %d by the deadline (the brain is at schema %d, dirty=%v); the process was killed; restore the snapshot taken before the upgrade%s", path.To, op.UserID, path.ToSchema, schema, dirty, restore))
			return false
		}
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
		env, _ := r.faultEnv(op.UserID, v.Version, false)
		var err error
		if p, err = r.spawn(op.UserID, v.Version, env); err != nil {
			s.failOp(op, api.StepBoot, api.CodeInternal, fmt.Sprintf("could not start %s for user %s: %v", v.Version, op.UserID, err), true)
			return
		}
	}
	wait := r.processWait(healthTimeout, minProcessWait)
	deadline := time.Now().Add(wait)
	if err := r.waitHealth(p, deadline, false); err != nil {
		r.failBoot(op, p, api.StepBoot, v, err, wait)
		return
	}
	s.finishStep(op, api.StepBoot, fmt.Sprintf("%s running as process %d on 127.0.0.1:%d", v.Version, p.pid, p.port))
	s.begin(op, api.StepHealth, "")
	if err := r.waitHealth(p, deadline, true); err != nil {
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

// turnResult is one turn an engine process served, kept for metrics.
type turnResult struct {
	at       time.Time
	latency  float64
	errKind  string
	input    int
	cacheHit int
}

// turns sends test traffic to the engine process and records its real results.
func (r *procRuntime) turns(e *engineState, req api.TurnsRequest) (api.TurnsResult, *apiError) {
	s := r.s
	p := r.get(e.UserID)
	if p == nil {
		s.mu.Lock()
		ae := s.engineUnavailable503(e)
		s.mu.Unlock()
		return api.TurnsResult{}, ae
	}
	resp, err := p.postTurns(r.http, EngineTurnRequest{Count: req.Count, Content: req.Content})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return api.TurnsResult{}, ae
		}
		return api.TurnsResult{}, newErr(http.StatusBadGateway, api.CodeEngineUnavailable, fmt.Sprintf("user %s's engine process did not answer: %v", e.UserID, err))
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

// postTurns calls the engine's turn endpoint with its key.
func (p *engineProc) postTurns(c *http.Client, req EngineTurnRequest) (*EngineTurnResponse, error) {
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, p.url+"/v1/turns", bytes.NewReader(b))
	hr.Header.Set("X-Engine-Key", p.key)
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
		return nil, newErr(status, code, fmt.Sprintf("user %s's engine (%s, process %d) answered %d: %s", p.user, p.version, p.pid, resp.StatusCode, eb.Error.Message))
	}
	var out EngineTurnResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("unreadable turn response: %w", err)
	}
	return &out, nil
}

// metricsLocked are the engine's real turn results in the window (processMetrics).
func (r *procRuntime) metricsLocked(e *engineState, m *api.Metrics) {
	processMetrics(m, e.results, m.From)
}

// processMetrics are the engine's real turn results in the window: requests, errors, p99
// latency and cache-hit ratio as the engine reported them. No traffic reads as no traffic (zero
// requests, warning "no_traffic"), never as a healthy profile.
func processMetrics(m *api.Metrics, rs []turnResult, from time.Time) {
	var lat []float64
	var input, cache int
	kinds := map[string]bool{}
	for _, t := range rs {
		if !t.at.After(from) {
			continue
		}
		m.Requests++
		lat = append(lat, t.latency)
		input += t.input
		cache += t.cacheHit
		if t.errKind != "" {
			m.Errors++
			kinds[t.errKind] = true
		}
	}
	if m.Requests == 0 {
		m.WarningKinds = append(m.WarningKinds, "no_traffic")
		return
	}
	m.ErrorRate = float64(m.Errors) / float64(m.Requests)
	m.P99LatencyMS = percentile(lat, 0.99)
	if input > 0 {
		m.CacheHitRatio = float64(cache) / float64(input)
	}
	for k := range kinds {
		m.WarningKinds = append(m.WarningKinds, k)
	}
}

func percentile(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// logTail passes an engine's output to its log file and remembers the last error line, whose
// code and message explain an exit.
type logTail struct {
	w io.Writer

	mu      sync.Mutex
	partial []byte
	errLine []byte
}

func (t *logTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := t.partial[:i]
		if bytes.Contains(line, []byte(`"level":"error"`)) || bytes.Contains(line, []byte(`"level":"ERROR"`)) {
			t.errLine = append([]byte(nil), line...)
		}
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 1<<16 {
		t.partial = nil
	}
	t.mu.Unlock()
	return t.w.Write(b)
}

func (t *logTail) lastError() (code, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.errLine == nil {
		return "", ""
	}
	var l struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(t.errLine, &l) != nil {
		return "", string(t.errLine)
	}
	if l.Code != "" {
		return l.Code, l.Code + ": " + l.Message
	}
	return "", l.Message
}

func (r *procRuntime) name() string        { return RuntimeProcess }
func (r *procRuntime) realProcesses() bool { return true }

// removeLocked kills the engine's process, if it runs: its exit is asked for, so it is not
// reported as a crash.
func (r *procRuntime) removeLocked(e *engineState) {
	if p := r.get(e.UserID); p != nil {
		r.kill(p)
	}
}

func (r *procRuntime) process(user string) (pid int, url, key string, ok bool) {
	p := r.get(user)
	if p == nil {
		return 0, "", "", false
	}
	return p.pid, p.url, p.key, true
}
