// Command engine-demo is `make demo`: the README's first command. It builds the provider, starts
// the local control plane on loopback over a temporary data dir with a seeded fleet on 2.3.1 and
// a time scale that makes each step take about a second, points Terraform at the fresh provider
// build through a throw-away CLI configuration (dev_overrides, so no registry and no init), and
// walks examples/quickstart through its life: write turns into a brain, plan (the warnings and
// planned_upgrade), apply (snapshot, upgrade 2.3.1 → 2.4.0, gates), show the engine and its data,
// write more turns, then destroy (whose plan states the rollback and the data it loses). It checks
// the outcome itself — the engine runs 2.3.1 again with exactly its pre-upgrade turns — and fails
// loudly otherwise. Everything it started or created is stopped and removed on success, failure
// or Ctrl-C alike; with DEMO_KEEP=1 it leaves the control plane up until interrupted and prints
// its endpoint and key for exploring.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func main() {
	var o options
	flag.StringVar(&o.Example, "example", "examples/quickstart", "the Terraform configuration: examples/quickstart gets the guided walk-through, any other is applied once")
	flag.IntVar(&o.Engines, "engines", 5, "engines to seed (user-0001, ...)")
	flag.StringVar(&o.Version, "version", "2.3.1", "version the seeded fleet runs")
	flag.StringVar(&o.User, "user", "user-0001", "the engine the quick start upgrades")
	flag.Float64Var(&o.TimeScale, "time-scale", 0.03, "multiplies every nominal duration (0.03 makes a 30 s drain take about a second)")
	flag.BoolVar(&o.NoColor, "no-color", false, "pass -no-color to terraform")
	flag.Parse()
	o.Keep = os.Getenv("DEMO_KEEP") == "1"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED: %v\n", err)
		os.Exit(1)
	}
}

// options are the demo's knobs; the zero TempBase means the system's temp dir.
type options struct {
	Example   string
	Engines   int
	Version   string
	User      string
	TimeScale float64
	NoColor   bool
	Keep      bool
	// TempBase is where the demo makes its one temporary directory (tests pass their own to
	// check it is gone afterwards).
	TempBase string
	// Repo is the module root to build the provider from; "" finds it with `go env GOMOD`.
	Repo string
}

// demo is one run's state: what it started, so every way out can stop it.
type demo struct {
	o         options
	out, errw io.Writer
	terraform string
	work      string
	env       []string
	client    *client.Client
}

func run(ctx context.Context, o options, out, errw io.Writer) (err error) {
	d := &demo{o: o, out: out, errw: errw}
	if d.terraform, err = findTerraform(); err != nil {
		return err
	}
	repo := o.Repo
	if repo == "" {
		if repo, err = moduleRoot(ctx); err != nil {
			return err
		}
	}
	exampleDir := o.Example
	if !filepath.IsAbs(exampleDir) {
		exampleDir = filepath.Join(repo, exampleDir)
	}

	// Everything the demo creates lives under tmp, removed on every way out.
	tmp, err := os.MkdirTemp(o.TempBase, "engine-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			fmt.Fprintf(errw, "demo: could not remove %s: %v\n", tmp, rmErr)
			return
		}
		d.step("Removed %s", tmp)
	}()

	pluginDir := filepath.Join(tmp, "plugins")
	d.step("Building the provider into %s", pluginDir)
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(pluginDir, "terraform-provider-engine"), ".")
	build.Dir, build.Stdout, build.Stderr = repo, out, errw
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the provider: %w", err)
	}

	key := randomKey()
	cp, err := controlplane.New(controlplane.Options{
		DataDir: filepath.Join(tmp, "data"), APIKey: key,
		SeedEngines: o.Engines, SeedVersion: o.Version, TimeScale: o.TimeScale,
	})
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	defer func() {
		if cerr := cp.Close(); cerr != nil {
			fmt.Fprintf(errw, "demo: close the control plane: %v\n", cerr)
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: cp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
		d.step("Stopped the control plane")
	}()
	endpoint := "http://" + ln.Addr().String()
	d.step("Control plane on %s: %d engines on %s, time scale %g", endpoint, o.Engines, o.Version, o.TimeScale)
	d.client, err = client.New(client.Config{Endpoint: endpoint, APIKey: key, RequestTimeout: 10 * time.Second, MaxRetries: 2, UserAgent: "engine-demo"})
	if err != nil {
		return err
	}
	defer d.client.Close()

	cliConfig := filepath.Join(tmp, "terraformrc")
	if err := os.WriteFile(cliConfig, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides {
    "septemberai/engine" = %q
  }
  direct {}
}
`, pluginDir)), 0o600); err != nil {
		return err
	}
	d.work = filepath.Join(tmp, "work")
	if err := copyConfig(exampleDir, d.work); err != nil {
		return err
	}
	d.env = append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"ENGINE_ENDPOINT="+endpoint, "ENGINE_API_KEY="+key, "TF_VAR_user_id="+o.User,
	)

	// The quick start gets the guided walk-through; any other example is applied once (e.g. the
	// fleet canary, whose apply fails by design when the analysis catches 2.4.1).
	if filepath.Base(exampleDir) == "quickstart" {
		err = d.walkThrough(ctx)
	} else {
		d.step("terraform apply %s", o.Example)
		err = d.tf(ctx, "apply", "-input=false", "-auto-approve")
	}
	if err != nil {
		return err
	}

	if o.Keep {
		d.step("DEMO_KEEP=1: the control plane stays up until Ctrl-C. To explore:\n"+
			"    export ENGINE_ENDPOINT=%s ENGINE_API_KEY=%s\n    curl -H '%s: %s' %s/v1/engines\n"+
			"    (the configuration is in %s; the provider build in %s)", endpoint, key, api.KeyHeader, key, endpoint, d.work, pluginDir)
		<-ctx.Done()
		return nil
	}
	return ctx.Err()
}

// walkThrough is the quick start's life cycle, checked at the end.
func (d *demo) walkThrough(ctx context.Context) error {
	user := d.o.User
	before, err := d.client.WriteTurns(ctx, user, api.TurnsRequest{Count: 5, Content: "before the upgrade"})
	if err != nil {
		return fmt.Errorf("write turns into %s's brain: %w", user, err)
	}
	d.step("Wrote %d turns into %s's brain (%d brain writes so far)", before.Written, user, before.BrainWrites)
	preTurns, err := d.client.Turns(ctx, user)
	if err != nil {
		return err
	}

	d.step("terraform plan: read the warnings and planned_upgrade before anything runs")
	if err := d.tf(ctx, "plan", "-input=false", "-out=upgrade.tfplan"); err != nil {
		return err
	}
	d.step("terraform apply: snapshot the brain, drain, upgrade %s → 2.4.0, health and eval gates", d.o.Version)
	if err := d.tf(ctx, "apply", "-input=false", "upgrade.tfplan"); err != nil {
		return err
	}
	if err := d.showEngine(ctx, user); err != nil {
		return err
	}

	after, err := d.client.WriteTurns(ctx, user, api.TurnsRequest{Count: 3, Content: "after the upgrade"})
	if err != nil {
		return fmt.Errorf("write turns into %s's brain: %w", user, err)
	}
	d.step("Wrote %d more turns on 2.4.0: destroying the release restores the pre-upgrade snapshot, so they will be lost", after.Written)

	d.step("terraform plan -destroy: the plan states the rollback and how many brain writes it loses")
	if err := d.tf(ctx, "plan", "-destroy", "-input=false", "-out=destroy.tfplan"); err != nil {
		return err
	}
	d.step("terraform apply destroy.tfplan: roll the engine back to %s", d.o.Version)
	if err := d.tf(ctx, "apply", "-input=false", "destroy.tfplan"); err != nil {
		return err
	}
	if err := d.showEngine(ctx, user); err != nil {
		return err
	}

	// The demo's promise, checked rather than claimed.
	e, err := d.client.GetEngine(ctx, user)
	if err != nil {
		return err
	}
	if e.EngineVersion != d.o.Version || e.Status != api.StatusRunning {
		return fmt.Errorf("after destroy %s's engine runs %s (%s), want %s running", user, e.EngineVersion, e.Status, d.o.Version)
	}
	turns, err := d.client.Turns(ctx, user)
	if err != nil {
		return err
	}
	if !sameTurns(turns, preTurns) {
		return fmt.Errorf("after destroy %s's brain holds %d turns, want exactly the %d written before the upgrade", user, len(turns), len(preTurns))
	}
	d.step("Done: %s's engine runs %s again with its %d pre-upgrade turns; the %d written on 2.4.0 went with the rollback, as the plan said",
		user, e.EngineVersion, len(preTurns), after.Written)
	return nil
}

// showEngine prints what the control plane says about the engine and its brain.
func (d *demo) showEngine(ctx context.Context, user string) error {
	e, err := d.client.GetEngine(ctx, user)
	if err != nil {
		return err
	}
	turns, err := d.client.Turns(ctx, user)
	if err != nil {
		return err
	}
	d.step("%s's engine: version %s, brain schema %d, %s, %d brain writes, %d turns stored",
		user, e.EngineVersion, e.SchemaVersion, e.Status, e.BrainWrites, len(turns))
	for _, t := range turns {
		fmt.Fprintf(d.out, "    turn %d: %s\n", t.ID, t.Content)
	}
	return nil
}

func (d *demo) tf(ctx context.Context, args ...string) error {
	if d.o.NoColor {
		args = append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, d.terraform, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = d.work, d.env, d.out, d.errw
	// Ctrl-C reaches terraform as an interrupt, so it stops cleanly before we tear down; the
	// WaitDelay bounds how long a terraform that ignores it can hold the demo up.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	fmt.Fprintf(d.out, "$ terraform %s\n", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("terraform %s: %w", args[0], err)
	}
	return nil
}

func sameTurns(a, b []api.Turn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Content != b[i].Content {
			return false
		}
	}
	return true
}

func findTerraform() (string, error) {
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		return "", errors.New("no terraform binary on PATH: install Terraform >= 1.11 (or OpenTofu, and set TF_ACC_TERRAFORM_PATH to it)")
	}
	return p, nil
}

// moduleRoot is the directory of the provider's go.mod, so the demo works from any directory
// inside the checkout.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the demo from inside the terraform-provider-engine checkout (no go.mod found)")
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

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}
