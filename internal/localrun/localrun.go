// Package localrun runs real Terraform against the provider built from this checkout and a local
// control plane, the way a user would after `make demo`: the provider binary is built into a
// temporary directory, a throw-away CLI configuration points Terraform at it with dev_overrides
// (no registry, no init), and the control plane serves on loopback over a temporary data dir. The
// demo (internal/cmd/engine-demo) and the policy tests (internal/policy), which need the plan JSON
// real Terraform writes, share it so there is one way of doing this.
package localrun

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// Options shape one environment. Zero values: 5 engines on 2.3.1, time scale 0.03, the system
// temp dir, the checkout found with `go env GOMOD`, output discarded.
type Options struct {
	Engines   int
	Version   string
	TimeScale float64
	TempBase  string
	Repo      string
	NoColor   bool      // pass -no-color to every terraform command
	Out, Err  io.Writer // where terraform and the build write
	// Log, when set, receives one line per step ("Building the provider into ...").
	Log func(format string, args ...any)
	// Runtime is where the engines run: "" or "sim" (the default, nothing to install), or
	// "docker": a container per engine from the stand-in images (built first, as `make images`
	// does), under names and a network of this run's own, all removed on Close.
	Runtime string
}

// Env is a running environment. Close stops everything it started and removes its directory.
type Env struct {
	Dir       string // the one temporary directory holding everything below
	PluginDir string
	Endpoint  string
	Key       string
	Client    *client.Client // the control plane's admin client, for side-channel writes and checks

	o         Options
	terraform string
	env       []string
	closers   []func() // run in reverse order by Close
}

// Start builds the provider, starts the control plane and writes the CLI configuration. On error
// everything already started is stopped again.
func Start(ctx context.Context, o Options) (e *Env, err error) {
	if o.Engines == 0 {
		o.Engines = 5
	}
	if o.Version == "" {
		o.Version = "2.3.1"
	}
	if o.TimeScale == 0 {
		o.TimeScale = 0.03
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Err == nil {
		o.Err = io.Discard
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	e = &Env{o: o}
	if e.terraform, err = FindTerraform(); err != nil {
		return nil, err
	}
	if o.Repo == "" {
		if o.Repo, err = ModuleRoot(ctx); err != nil {
			return nil, err
		}
		e.o.Repo = o.Repo
	}
	defer func() {
		if err != nil {
			e.Close()
			e = nil
		}
	}()

	if e.Dir, err = os.MkdirTemp(o.TempBase, "engine-demo-"); err != nil {
		return nil, err
	}
	dir := e.Dir
	e.closers = append(e.closers, func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(o.Err, "could not remove %s: %v\n", dir, err)
			return
		}
		o.Log("Removed %s", dir)
	})

	e.PluginDir = filepath.Join(e.Dir, "plugins")
	o.Log("Building the provider into %s", e.PluginDir)
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(e.PluginDir, "terraform-provider-engine"), ".")
	build.Dir, build.Stdout, build.Stderr = o.Repo, o.Out, o.Err
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build the provider: %w", err)
	}

	e.Key = randomKey()
	cpOpts := controlplane.Options{
		DataDir: filepath.Join(e.Dir, "data"), APIKey: e.Key,
		SeedEngines: o.Engines, SeedVersion: o.Version, TimeScale: o.TimeScale,
	}
	if err := dockerRuntime(e.o, e.Key, &cpOpts); err != nil {
		return nil, err
	}
	cp, err := controlplane.New(cpOpts)
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	e.closers = append(e.closers, func() {
		if err := cp.Close(); err != nil {
			fmt.Fprintf(o.Err, "close the control plane: %v\n", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: cp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	e.closers = append(e.closers, func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
		o.Log("Stopped the control plane")
	})
	e.Endpoint = "http://" + ln.Addr().String()
	where := ""
	if cpOpts.Runtime == controlplane.RuntimeDocker {
		where = fmt.Sprintf(" (containers %suser-…, network %s)", cpOpts.Docker.NamePrefix, cpOpts.Docker.Network)
	}
	o.Log("Control plane on %s: %d engines on %s%s, time scale %g", e.Endpoint, o.Engines, o.Version, where, o.TimeScale)
	if e.Client, err = client.New(client.Config{Endpoint: e.Endpoint, APIKey: e.Key, RequestTimeout: 10 * time.Second, MaxRetries: 2, UserAgent: "engine-localrun"}); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Client.Close)

	cliConfig := filepath.Join(e.Dir, "terraformrc")
	if err := os.WriteFile(cliConfig, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides {
    "septemberai/engine" = %q
  }
  direct {}
}
`, e.PluginDir)), 0o600); err != nil {
		return nil, err
	}
	e.env = append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"ENGINE_ENDPOINT="+e.Endpoint, "ENGINE_API_KEY="+e.Key,
	)
	return e, nil
}

// Close stops the control plane and removes the directory; safe to call more than once.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// Workspace copies an example's .tf files (relative to the checkout, or absolute) into a fresh
// working directory named name, and returns it.
func (e *Env) Workspace(name, example string) (string, error) {
	if !filepath.IsAbs(example) {
		example = filepath.Join(e.o.Repo, example)
	}
	work := filepath.Join(e.Dir, name)
	return work, copyConfig(example, work)
}

// Terraform runs terraform in dir with the environment's CLI configuration and credentials plus
// extraEnv ("TF_VAR_x=y"), writing its output to Options.Out and Err.
func (e *Env) Terraform(ctx context.Context, dir string, extraEnv []string, args ...string) error {
	return e.terraformTo(ctx, dir, extraEnv, e.o.Out, e.o.Err, args...)
}

// TerraformOutput is Terraform but returns what terraform wrote to stdout (e.g. show -json).
func (e *Env) TerraformOutput(ctx context.Context, dir string, extraEnv []string, args ...string) ([]byte, error) {
	var b strings.Builder
	err := e.terraformTo(ctx, dir, extraEnv, &b, e.o.Err, args...)
	return []byte(b.String()), err
}

// TerraformCombined is Terraform but returns what terraform wrote to stdout and stderr, in
// order, instead of writing it to Options.Out and Err: the output of this one command, also while
// another runs.
func (e *Env) TerraformCombined(ctx context.Context, dir string, extraEnv []string, args ...string) ([]byte, error) {
	var b bytes.Buffer
	err := e.terraformTo(ctx, dir, extraEnv, &b, &b, args...)
	return b.Bytes(), err
}

func (e *Env) terraformTo(ctx context.Context, dir string, extraEnv []string, stdout, stderr io.Writer, args ...string) error {
	if e.o.NoColor && len(args) > 0 && args[0] != "show" {
		args = append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, e.terraform, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, append(append([]string{}, e.env...), extraEnv...), stdout, stderr
	// Ctrl-C reaches terraform as an interrupt, so it stops cleanly before the environment is torn
	// down; WaitDelay bounds how long a terraform that ignores it can hold things up.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if stdout == e.o.Out {
		fmt.Fprintf(e.o.Out, "$ terraform %s\n", strings.Join(args, " "))
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("terraform %s: %w", args[0], err)
	}
	return nil
}

// FindTerraform is TF_ACC_TERRAFORM_PATH, else terraform on PATH.
func FindTerraform() (string, error) {
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		return "", errors.New("no terraform binary on PATH: install Terraform >= 1.11 (or OpenTofu, and set TF_ACC_TERRAFORM_PATH to it)")
	}
	return p, nil
}

// ModuleRoot is the directory of the provider's go.mod, so callers work from any directory inside
// the checkout.
func ModuleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this from inside the terraform-provider-engine checkout (no go.mod found)")
	}
	return filepath.Dir(gomod), nil
}

// copyConfig copies the example's .tf files (not any .terraform or state a user left there).
func copyConfig(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(from, "*.tf"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no .tf files in %s", from)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func randomKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "demo-" + hex.EncodeToString(b)
}

// dockerRuntime puts the control plane on the docker runtime when o asks for it: the stand-in
// image of every catalog version built first, containers named demo-<tag>-user-0001 on a network
// of their own, removed when the control plane closes.
func dockerRuntime(o Options, key string, cp *controlplane.Options) error {
	switch o.Runtime {
	case "", controlplane.RuntimeSim:
		return nil
	case controlplane.RuntimeDocker:
	default:
		return fmt.Errorf("runtime %q: use %q (the default) or %q", o.Runtime, controlplane.RuntimeSim, controlplane.RuntimeDocker)
	}
	var vs []string
	for _, v := range controlplane.DefaultCatalog() {
		vs = append(vs, v.Version)
	}
	o.Log("Building the stand-in Engine images (%s) with the local Docker daemon", standinbuild.ImageTemplate)
	if err := standinbuild.BuildImages(o.Repo, standinbuild.ImageTemplate, vs, func(string) {}); err != nil {
		return fmt.Errorf("build the engine images (is a Docker daemon running?): %w", err)
	}
	tag := key[:8]
	cp.Runtime = controlplane.RuntimeDocker
	cp.Docker = controlplane.DockerOptions{NamePrefix: "demo-" + tag + "-", Network: "engine_demo_" + tag, RemoveOnClose: true}
	return nil
}
