//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
)

func TestParse_ProcessRuntimeFlags(t *testing.T) {
	env := map[string]string{
		"ENGINE_CONTROLPLANE_API_KEY":            "k",
		"ENGINE_CONTROLPLANE_RUNTIME":            "process",
		"ENGINE_CONTROLPLANE_ENGINE_COMMAND_FOR": "2.4.0=/opt/e240 --v {version}; 3.0.0=/opt/e300",
	}
	getenv := func(k string) string { return env[k] }
	c, err := parse([]string{"--port-min", "9100", "--port-max", "9110", "--engine-command-for", "2.3.1=/opt/e231"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := versionCommands{"2.4.0": "/opt/e240 --v {version}", "3.0.0": "/opt/e300", "2.3.1": "/opt/e231"}
	if c.runtime != "process" || c.portMin != 9100 || c.portMax != 9110 || fmt.Sprint(c.engineCommandFor) != fmt.Sprint(want) {
		t.Fatalf("config = %+v", c)
	}
	delete(env, "ENGINE_CONTROLPLANE_ENGINE_COMMAND_FOR")
	for _, args := range [][]string{
		{"--runtime", "podman"},
		{"--runtime", "sim", "--engine-command", "x"},
		{"--runtime", "docker", "--engine-command", "x"},
		{"--image", "engine:{version}"},
		{"--adopt-label", "com.docker.compose.service=engine"},
		{"--engine-command-for", "2.4.0"},
		{"--port-min", "9100", "--port-max", "9000"},
		{"--port-max", "70000"},
	} {
		if _, err := parse(args, getenv, io.Discard); err == nil {
			t.Fatalf("%v should be refused", args)
		}
	}
}

// enginePIDs lists the live engine processes of the control plane over dataDir.
func enginePIDs(dataDir string) []int { return standinbuild.EnginePIDs(dataDir) }

func freePortRange(t *testing.T, n int) (int, int) {
	t.Helper()
	for base := 20000 + os.Getpid()%20000; base < 60000; base += n {
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	t.Fatal("no free port range")
	return 0, 0
}

// TestBinary_ProcessRuntime runs the binary with --runtime process: engines are stand-in
// processes on ports from the range; SIGTERM stops them all; and a control plane killed outright
// takes its engines with it.
func TestBinary_ProcessRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	standin, err := standinbuild.Binary()
	if err != nil {
		t.Fatal(err)
	}
	defer standinbuild.Cleanup()
	bin := filepath.Join(t.TempDir(), "engine-controlplane")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	lo, hi := freePortRange(t, 4)

	start := func(dataDir string, command ...string) (*exec.Cmd, string) {
		args := []string{"--listen", "127.0.0.1:0", "--seed-engines", "2", "--seed-version", "2.3.1", "--time-scale", "0.001",
			"--seed-brain-rows", "3", "--data-dir", dataDir, "--runtime", "process", "--port-min", strconv.Itoa(lo), "--port-max", strconv.Itoa(hi)}
		cmd := exec.Command(bin, append(args, command...)...)
		cmd.Env = append(os.Environ(), "ENGINE_CONTROLPLANE_API_KEY=k")
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		lines := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		select {
		case line := <-lines:
			m := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("ready line %q", line)
			}
			return cmd, m[1]
		case <-time.After(60 * time.Second):
			t.Fatalf("no ready line; stderr: %s", stderr.String())
		}
		return nil, ""
	}
	call := func(base, method, path string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set(api.KeyHeader, "k")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}

	dataDir := t.TempDir()
	cmd, base := start(dataDir, "--engine-command", standin+" --version {version}")
	pids := enginePIDs(dataDir)
	if len(pids) != 2 {
		t.Fatalf("engine processes: %v, want 2", pids)
	}
	for _, pid := range pids {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if bytes.Contains(env, []byte("ENGINE_CONTROLPLANE_API_KEY=")) {
			t.Fatalf("engine %d inherited the control plane's admin key", pid)
		}
		m := regexp.MustCompile(`PORT=(\d+)\x00`).FindSubmatch(env)
		if m == nil {
			t.Fatalf("engine %d has no PORT", pid)
		}
		if p, _ := strconv.Atoi(string(m[1])); p < lo || p > hi {
			t.Fatalf("engine %d listens on %d, outside %d-%d", pid, p, lo, hi)
		}
	}
	if code, body := call(base, "POST", "/v1/engines/user-0002/turns", api.TurnsRequest{Count: 2, Content: "x"}); code != 200 || !strings.Contains(string(body), `"brain_writes":2`) {
		t.Fatalf("turns: %d %s", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if left := enginePIDs(dataDir); len(left) != 0 {
		t.Fatalf("engines outlived a stopped control plane: %v", left)
	}

	// Without --engine-command the stand-in installed next to the binary runs the engines.
	// Killed outright, the control plane cannot stop them: the parent-death signal does.
	b, err := os.ReadFile(standin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(bin), "engine-standin"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, base = start(dataDir)
	if code, body := call(base, "GET", "/v1/engines/user-0002/turns", nil); code != 200 || strings.Count(string(body), `"content":"x"`) != 2 {
		t.Fatalf("turns after restart: %d %s", code, body)
	}
	pids = enginePIDs(dataDir)
	if len(pids) != 2 {
		t.Fatalf("engine processes after restart: %v", pids)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0])); exe != filepath.Join(filepath.Dir(bin), "engine-standin") {
		t.Fatalf("engine runs %q, want the stand-in next to the binary", exe)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed", as asked
	deadline := time.Now().Add(5 * time.Second)
	for len(enginePIDs(dataDir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("engines outlived a killed control plane: %v", enginePIDs(dataDir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
