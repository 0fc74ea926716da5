package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestParse_FlagsEnvAndErrors(t *testing.T) {
	env := map[string]string{
		"ENGINE_CONTROLPLANE_API_KEY":       "from-env",
		"ENGINE_CONTROLPLANE_SEED_ENGINES":  "4",
		"ENGINE_CONTROLPLANE_TIME_SCALE":    "0.5",
		"ENGINE_CONTROLPLANE_ENABLE_FAULTS": "true",
	}
	getenv := func(k string) string { return env[k] }
	c, err := parse([]string{"--seed-engines", "7"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.apiKey != "from-env" || c.seedEngines != 7 || c.timeScale != 0.5 || !c.enableFaults || c.listen != "127.0.0.1:8470" {
		t.Fatalf("config = %+v", c)
	}
	if _, err := parse(nil, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "--api-key") || !strings.Contains(err.Error(), "ENGINE_CONTROLPLANE_API_KEY") {
		t.Fatalf("missing key: %v", err)
	}
	env["ENGINE_CONTROLPLANE_SEED_ENGINES"] = "many"
	if _, err := parse(nil, getenv, io.Discard); err == nil || !strings.Contains(err.Error(), "ENGINE_CONTROLPLANE_SEED_ENGINES") {
		t.Fatalf("bad env value: %v", err)
	}
	delete(env, "ENGINE_CONTROLPLANE_SEED_ENGINES")
	for _, args := range [][]string{{"--time-scale", "0"}, {"--tls-cert", "x"}, {"extra"}, {"--seed-engines", "-1"}} {
		if _, err := parse(args, getenv, io.Discard); err == nil {
			t.Fatalf("%v should be refused", args)
		}
	}
}

// TestBinary_EndToEnd builds the binary, starts it on a free port, talks to it and stops it
// with SIGTERM.
func TestBinary_EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "engine-controlplane")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the build must not need cgo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	// Without a key it refuses to start, saying how to give one.
	out, err := exec.Command(bin).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--api-key") {
		t.Fatalf("no key: %v %s", err, out)
	}

	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--seed-engines", "3", "--time-scale", "0.001", "--seed-brain-rows", "5")
	cmd.Env = append(os.Environ(), "ENGINE_CONTROLPLANE_API_KEY=k")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("no ready line; stderr: %s", stderr.String())
	}
	m := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:(\d+))$`).FindStringSubmatch(line)
	if m == nil || m[2] == "0" {
		t.Fatalf("ready line = %q", line)
	}
	base := m[1]

	get := func(path, key string) (int, []byte) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if key != "" {
			req.Header.Set(api.KeyHeader, key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if code, _ := get("/health", ""); code != 200 {
		t.Fatalf("/health = %d", code)
	}
	if code, _ := get("/v1/engines", ""); code != 401 {
		t.Fatalf("no key = %d", code)
	}
	code, body := get("/v1/engines", "k")
	var l api.EngineList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("engines: %v: %s", err, body)
	}
	if code != 200 || len(l.Engines) != 3 || l.Engines[0].EngineVersion != "2.3.0" || !strings.HasPrefix(l.Engines[0].URL, base+"/engines/") {
		t.Fatalf("engines = %d %s", code, body)
	}
	// A long-poll in flight must not hold the stop up.
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/operations/op-x?wait=60s&revision=1", nil)
		req.Header.Set(api.KeyHeader, "k")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stop took %s", time.Since(start))
	}
	dm := regexp.MustCompile(`data_dir=(\S+)`).FindStringSubmatch(stderr.String())
	if dm == nil {
		t.Fatalf("no data dir logged: %s", stderr.String())
	}
	if _, err := os.Stat(dm[1]); !os.IsNotExist(err) {
		t.Fatalf("temporary data dir %s not removed: %v", dm[1], err)
	}
}

// TestParse_APIKeyFileAndCommandLineWarning: the key can come from a file (trimmed), the
// environment or --api-key; only --api-key on the command line warns, because ps shows it.
func TestParse_APIKeyFileAndCommandLineWarning(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin-key")
	if err := os.WriteFile(keyFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		key     string
		warns   bool
		wantErr string
	}{
		{"file flag", []string{"--api-key-file", keyFile}, nil, "from-file", false, ""},
		{"file env", nil, map[string]string{"ENGINE_CONTROLPLANE_API_KEY_FILE": keyFile}, "from-file", false, ""},
		{"key env", nil, map[string]string{"ENGINE_CONTROLPLANE_API_KEY": "from-env"}, "from-env", false, ""},
		{"key flag", []string{"--api-key", "typed"}, nil, "typed", true, ""},
		{"both", []string{"--api-key", "typed", "--api-key-file", keyFile}, nil, "", false, "keep one"},
		{"missing file", []string{"--api-key-file", filepath.Join(dir, "nope")}, nil, "", false, "--api-key-file"},
		{"empty file", []string{"--api-key-file", empty}, nil, "", false, "is empty"},
		{"none", nil, nil, "", false, "--api-key-file FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			var stderr strings.Builder
			c, err := parse(tc.args, getenv, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.apiKey != tc.key {
				t.Fatalf("key %q, err %v; want %q", c.apiKey, err, tc.key)
			}
			warned := strings.Contains(stderr.String(), "warning: --api-key puts the admin key in the process list")
			if warned != tc.warns {
				t.Fatalf("warned = %v, want %v: %q", warned, tc.warns, stderr.String())
			}
			if warned && (strings.Contains(stderr.String(), "typed") || !strings.Contains(stderr.String(), "--api-key-file")) {
				t.Fatalf("the warning must name the alternative and not the key: %q", stderr.String())
			}
		})
	}
}
