// Package standinbuild builds the stand-in Engine binary once per test binary, for the tests
// that run the control plane's process runtime. Building takes seconds; every test after the
// first reuses the binary, and Cleanup (called from TestMain) removes it.
package standinbuild

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

const pkg = "github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin"

var (
	once sync.Once
	dir  string
	bin  string
	err  error
)

// Binary returns the path of a freshly built stand-in, building it on the first call.
func Binary() (string, error) {
	once.Do(func() {
		if dir, err = os.MkdirTemp("", "engine-standin-build-"); err != nil {
			return
		}
		bin = filepath.Join(dir, "engine-standin")
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("go build %s: %w\n%s", pkg, e, out)
		}
	})
	return bin, err
}

// Command is the process runtime's command template running the built stand-in.
func Command() (string, error) {
	b, err := Binary()
	if err != nil {
		return "", err
	}
	return b + " --version {version}", nil
}

// Cleanup removes the built binary, if any.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// EnginePIDs lists the live processes (zombies excluded) whose SQLITE_DB_PATH lies under dir: the
// engine processes of a control plane whose data lives there, whoever their parent is now. It
// reads /proc, so it finds nothing outside Linux; the tests that use it are Linux-only.
func EnginePIDs(dir string) []int {
	var out []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	want := []byte("SQLITE_DB_PATH=" + filepath.Clean(dir) + "/")
	for _, f := range envs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, want) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
			out = append(out, pid)
		}
	}
	return out
}
