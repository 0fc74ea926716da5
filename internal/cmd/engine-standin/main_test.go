package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func TestMain(m *testing.M) {
	code := m.Run()
	standinBuildCleanup()
	os.Exit(code)
}

var standinBuildCleanup = standinbuild.Cleanup

// standin is one stand-in process under test.
type standin struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	key  string
	out  *syncBuffer
	done chan struct{}
	code int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr, _ := ln.Addr().(*net.TCPAddr)
	return addr.Port
}

// brainAt makes a brain at schema (clean) in a temp dir.
func brainAt(t *testing.T, schema int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "brain.sqlite")
	if err := controlplane.MigrateBrain(p, controlplane.DefaultCatalog(), schema, controlplane.MigrateHooks{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, version, brain string, env ...string) *standin {
	t.Helper()
	bin, err := standinbuild.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &standin{t: t, key: "standin-test-key", out: &syncBuffer{}, done: make(chan struct{})}
	port := freePort(t)
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.cmd = exec.Command(bin, "--version", version)
	s.cmd.Env = append([]string{"SQLITE_DB_PATH=" + brain, fmt.Sprintf("PORT=%d", port), "ENGINE_API_KEY=" + s.key, "ENGINE_STANDIN_TIME_SCALE=0.001"}, env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.code = ee.ExitCode()
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill() // usually exited already
		<-s.done
	})
	return s
}

// exited waits for the process to end and returns its exit code.
func (s *standin) exited() int {
	s.t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(20 * time.Second):
		s.t.Fatalf("stand-in still running; output:\n%s", s.out.String())
		return -1
	}
}

func (s *standin) waitHealthy() map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("stand-in exited (%d) before turning healthy:\n%s", s.code, s.out.String())
		default:
		}
		if res, err := http.Get(s.url + "/health"); err == nil {
			var h map[string]any
			derr := json.NewDecoder(res.Body).Decode(&h)
			res.Body.Close()
			if derr != nil {
				s.t.Fatalf("/health body: %v", derr)
			}
			if res.StatusCode == 200 && h["status"] == "ok" {
				return h
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("stand-in never turned healthy:\n%s", s.out.String())
	return nil
}

func (s *standin) turn(req TurnRequest, key string) (int, TurnResponse, api.ErrorBody) {
	s.t.Helper()
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest("POST", s.url+"/v1/turns", bytes.NewReader(b))
	if key != "" {
		hr.Header.Set("X-Engine-Key", key)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		s.t.Fatalf("turn: %v", err)
	}
	defer res.Body.Close()
	var ok TurnResponse
	var bad api.ErrorBody
	into := any(&bad)
	if res.StatusCode == 200 {
		into = &ok
	}
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		s.t.Fatalf("turn response %d: %v", res.StatusCode, err)
	}
	return res.StatusCode, ok, bad
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logLines decodes every stdout line as JSON, failing on any line that is not.
func (s *standin) logLines() []map[string]any {
	s.t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.out.String()))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			s.t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		for _, k := range []string{"timestamp", "level", "message"} {
			if _, ok := l[k]; !ok {
				s.t.Fatalf("log line lacks %q: %q", k, sc.Text())
			}
		}
		out = append(out, l)
	}
	return out
}

func TestStandin_healthKeyTurnsAndDrain(t *testing.T) {
	brain := brainAt(t, 4)
	s := start(t, "2.3.1", brain)
	h := s.waitHealthy()
	if _, ok := h["uptime_seconds"].(float64); !ok {
		t.Fatalf("health has no uptime_seconds: %v", h)
	}
	if sub, _ := h["subsystems"].(map[string]any); sub["brain"] != "ok" {
		t.Fatalf("health subsystems: %v", h)
	}

	if code, _, bad := s.turn(TurnRequest{Count: 1}, ""); code != 401 || bad.Error.Code != api.CodeInvalidKey {
		t.Fatalf("turn without key: %d %+v, want 401 INVALID_KEY", code, bad)
	}
	if code, _, bad := s.turn(TurnRequest{Count: 1}, "wrong"); code != 401 || bad.Error.Code != api.CodeInvalidKey {
		t.Fatalf("turn with wrong key: %d %+v, want 401 INVALID_KEY", code, bad)
	}
	code, tr, _ := s.turn(TurnRequest{Count: 3, Content: "hello"}, s.key)
	if code != 200 || tr.Written != 3 || tr.BrainWrites != 3 || len(tr.Results) != 3 {
		t.Fatalf("turns: %d %+v", code, tr)
	}
	for _, r := range tr.Results {
		if r.InputTokens <= 0 || r.OutputTokens <= 0 || r.CacheHitTokens <= 0 || r.CacheHitTokens > r.InputTokens || r.LatencyMS <= 0 || r.LatencyMS > 790 {
			t.Fatalf("turn usage out of the 2.3.1 profile: %+v", r)
		}
	}

	// A turn in flight when SIGTERM arrives completes; one sent during the drain gets 503.
	inflight := make(chan int, 1)
	go func() {
		c, _, _ := s.turn(TurnRequest{Count: 1, Content: "in flight", DelayMS: 3000}, s.key)
		inflight <- c
	}()
	waitFor(t, "the in-flight turn to be admitted", func() bool { return strings.Contains(s.out.String(), `"delay_ms":3000`) })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drain to start", func() bool { return strings.Contains(s.out.String(), `"message":"draining on terminated"`) })
	if code, _, bad := s.turn(TurnRequest{Count: 1, Content: "too late"}, s.key); code != 503 || bad.Error.Code != api.CodeEngineUnavailable {
		t.Fatalf("turn during drain: %d %+v, want 503", code, bad)
	}
	if res, err := http.Get(s.url + "/health"); err != nil || res.StatusCode != 503 {
		t.Fatalf("health during drain: %v %v, want 503", res, err)
	}
	if c := <-inflight; c != 200 {
		t.Fatalf("in-flight turn got %d, want 200", c)
	}
	if code := s.exited(); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d, want 0\n%s", code, s.out.String())
	}
	db, _ := controlplane.OpenBrain(brain)
	defer db.Close()
	var n int
	var writes int
	if err := db.QueryRow(`SELECT count(*) FROM conversations WHERE content IN ('hello', 'in flight', 'too late')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT value FROM brain_meta WHERE key = 'brain_writes'`).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	if n != 4 || writes != 4 {
		t.Fatalf("brain holds %d of the turns and counter %d, want 4 and 4 (3 + the in-flight one, not the refused one)", n, writes)
	}
	lines := s.logLines()
	if last := lines[len(lines)-1]; last["message"] != "stopped" || last["level"] != "info" {
		t.Fatalf("last log line: %v", last)
	}
}

func TestStandin_migratesItsSchemaAtStart(t *testing.T) {
	brain := brainAt(t, 4)
	s := start(t, "2.4.0", brain)
	s.waitHealthy()
	schema, dirty, err := controlplane.BrainSchema(brain)
	if err != nil || schema != 5 || dirty {
		t.Fatalf("brain after 2.4.0 started: schema %d dirty %v err %v, want 5 clean", schema, dirty, err)
	}
}

func TestStandin_refusesNewerSchema(t *testing.T) {
	brain := brainAt(t, 5)
	s := start(t, "2.3.1", brain)
	if code := s.exited(); code != exitMigrationRequired {
		t.Fatalf("exit %d, want %d\n%s", code, exitMigrationRequired, s.out.String())
	}
	found := false
	for _, l := range s.logLines() {
		if l["level"] == "error" && l["code"] == "MIGRATION_REQUIRED" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no MIGRATION_REQUIRED error logged:\n%s", s.out.String())
	}
	if schema, dirty, _ := controlplane.BrainSchema(brain); schema != 5 || dirty {
		t.Fatalf("refused brain changed: schema %d dirty %v", schema, dirty)
	}
}

func TestStandin_refusesDirtyBrain(t *testing.T) {
	brain := brainAt(t, 4)
	if err := controlplane.MigrateBrain(brain, controlplane.DefaultCatalog(), 5, controlplane.MigrateHooks{FailFirst: true}); err == nil {
		t.Fatal("the failing migration succeeded")
	}
	s := start(t, "2.4.0", brain)
	if code := s.exited(); code != exitMigrationFailed {
		t.Fatalf("exit %d, want %d\n%s", code, exitMigrationFailed, s.out.String())
	}
	if !strings.Contains(s.out.String(), `"code":"MIGRATION_FAILED"`) {
		t.Fatalf("no MIGRATION_FAILED logged:\n%s", s.out.String())
	}
}

func TestStandin_badConfigurationExits2(t *testing.T) {
	for name, c := range map[string]struct {
		version string
		env     []string
	}{
		"two keys":    {"2.3.1", []string{"ENGINE_KEY_HASH=" + strings.Repeat("ab", 32)}},
		"bad hash":    {"2.3.1", []string{"ENGINE_API_KEY=", "ENGINE_KEY_HASH=xyz"}},
		"bad version": {"9.9.9", nil},
		"bad port":    {"2.3.1", []string{"PORT=http"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := start(t, c.version, brainAt(t, 4), c.env...)
			if code := s.exited(); code != exitConfig {
				t.Fatalf("exit %d, want %d\n%s", code, exitConfig, s.out.String())
			}
			if !strings.Contains(s.out.String(), `"code":"INVALID_CONFIG"`) {
				t.Fatalf("no INVALID_CONFIG logged:\n%s", s.out.String())
			}
		})
	}
}
