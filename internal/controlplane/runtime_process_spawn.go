package controlplane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

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
	low, err := strconv.Atoi(f[0])
	if err != nil || low < 11000 {
		return 0, 0, false
	}
	return 10000, low, true
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
	p := &engineProc{pid: cmd.Process.Pid, port: port, tail: tail}
	p.engineInstance = engineInstance{user: user, version: version, key: key, url: "http://127.0.0.1:" + strconv.Itoa(port),
		desc: "process " + strconv.Itoa(p.pid), done: make(chan struct{}), exited: func() error { return exitOf(p) }}
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
			r.engineExited(p)
		}
	}()
	return p, nil
}

// faultEnv fires the faults that shape an engine program (a process or a container) at start
// and returns the stand-in's environment knobs.
// killMidMigration says the control plane must kill it once its migration is under way.
func (s *Server) faultEnv(user, version string, migrating bool) (env []string, killMidMigration bool) {
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
