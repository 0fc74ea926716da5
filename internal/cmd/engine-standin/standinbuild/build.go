// Package standinbuild builds the stand-in Engine binary once per test binary, for the tests
// that run the control plane's process runtime. Building takes seconds; every test after the
// first reuses the binary, and Cleanup (called from TestMain) removes it.
package standinbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
