// Command engine-demo is `make demo`: the README's first command. It builds the provider, starts
// the local control plane on loopback over a temporary data dir with a seeded fleet on 2.3.1 and
// a time scale that makes each step of an operation take tens of milliseconds, points Terraform at the fresh provider
// build through a throw-away CLI configuration (dev_overrides, so no registry and no init), and
// walks examples/quickstart through its life: write turns into a brain, plan (the warnings and
// planned_upgrade), apply (snapshot, upgrade 2.3.1 → 2.4.0, gates), show the engine and its data,
// write more turns, then destroy (whose plan states the rollback and the data it loses). It checks
// the outcome itself — the engine runs 2.3.1 again with exactly its pre-upgrade turns — and fails
// loudly otherwise. examples/fleet-canary and examples/major-upgrade have scenarios of their own
// (scenarios.go) whose intended outcome is an abort or a refusal; the demo exits 0 when that
// outcome happened. Everything it started or created is stopped and removed on success, failure
// or Ctrl-C alike; with DEMO_KEEP=1 it leaves the control plane up until interrupted and prints
// its endpoint and key for exploring.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/localrun"
)

func main() {
	var o options
	flag.StringVar(&o.Example, "example", "examples/quickstart", "the Terraform configuration: quickstart, fleet-canary and major-upgrade have walk-throughs that check their intended outcome, any other is applied once")
	flag.IntVar(&o.Engines, "engines", 5, "engines to seed (user-0001, ...)")
	flag.StringVar(&o.Version, "version", "2.3.1", "version the seeded fleet runs")
	flag.StringVar(&o.User, "user", "user-0001", "the engine the quick start upgrades")
	flag.Float64Var(&o.TimeScale, "time-scale", 0.03, "multiplies every nominal duration (the control plane's steps take 1-3 s nominally: 0.03 makes each take tens of milliseconds)")
	flag.StringVar(&o.Runtime, "runtime", "sim", "where the engines run: sim (in the control plane, nothing to install) or docker (one container per engine from the stand-in images, built first; needs a Docker daemon)")
	flag.BoolVar(&o.NoColor, "no-color", false, "pass -no-color to terraform (always done when stdout is not a terminal)")
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
	Runtime   string
	// TempBase is where the demo makes its one temporary directory (tests pass their own to
	// check it is gone afterwards).
	TempBase string
	// Repo is the checkout to build the provider from; "" finds it with `go env GOMOD`.
	Repo string
}

// demo is one run: the environment and the example's working directory.
type demo struct {
	o      options
	out    *lineFilter
	errs   *recorder
	env    *localrun.Env
	work   string
	client *client.Client
}

func run(ctx context.Context, o options, out, errw io.Writer) error {
	// Colour codes are for a terminal, not for a log or a pipe.
	if f, ok := out.(*os.File); !ok || !isTerminal(f) {
		o.NoColor = true
	}
	// Every terraform command repeats the dev_overrides warning; the filters show it once, and the
	// recorder keeps what terraform wrote to stderr, where a scenario finds its intended error.
	once := &shownOnce{}
	stdout, stderr := once.filter(out), once.filter(errw)
	defer stdout.flush()
	defer stderr.flush()
	d := &demo{o: o, out: stdout, errs: &recorder{w: stderr}}
	env, err := localrun.Start(ctx, localrun.Options{
		Engines: o.Engines, Version: o.Version, TimeScale: o.TimeScale, TempBase: o.TempBase, Repo: o.Repo,
		NoColor: o.NoColor, Out: d.out, Err: d.errs, Log: d.step, Runtime: o.Runtime,
	})
	if err != nil {
		return err
	}
	// Everything the demo started is stopped and its directory removed on every way out.
	defer env.Close()
	d.env, d.client = env, env.Client
	if d.work, err = env.Workspace("work", o.Example); err != nil {
		return err
	}

	// The examples with a scenario of their own check its intended outcome, which for some is a
	// refusal or an abort; any other example is applied once.
	if sc, ok := scenarios[filepath.Base(filepath.Clean(o.Example))]; ok {
		err = sc(d, ctx)
	} else {
		d.step("terraform apply %s", o.Example)
		err = d.tf(ctx, "apply", "-input=false", "-auto-approve")
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w (everything the demo started is being stopped)", err)
	}
	if err != nil {
		return err
	}

	if o.Keep {
		d.step("DEMO_KEEP=1: the control plane stays up until Ctrl-C. To explore:\n"+
			"    export ENGINE_ENDPOINT=%s ENGINE_API_KEY=%s\n    curl -H '%s: %s' %s/v1/engines\n"+
			"    (the configuration and its state are in %s; the provider build in %s)",
			env.Endpoint, env.Key, api.KeyHeader, env.Key, env.Endpoint, d.work, env.PluginDir)
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
	stopTraffic := d.userTraffic(ctx, user, "2.4.0")
	err = d.tf(ctx, "apply", "-input=false", "upgrade.tfplan")
	stopTraffic()
	if err != nil {
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

// userTraffic stands in for the users of a real Engine, on real containers only (-runtime
// docker): their metrics are the turns they served, and the release's analysis judges the bake
// on them, so once user's engine runs version turns are sent to it until stop is called. They
// are written after the pre-upgrade snapshot, so the rollback drops them like the demo's own
// post-upgrade turns. The simulated runtime's engines report their version's profile instead.
func (d *demo) userTraffic(ctx context.Context, user, version string) (stop func()) {
	if d.o.Runtime != "docker" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		announced := false
		for ctx.Err() == nil {
			if e, err := d.client.GetEngine(ctx, user); err == nil && e.EngineVersion == version && e.Status == api.StatusRunning {
				if !announced {
					d.step("%s runs %s: sending it user traffic during the bake, which the analysis judges", user, version)
					announced = true
				}
				_, _ = d.client.WriteTurns(ctx, user, api.TurnsRequest{Count: 2, Content: "user traffic on " + version})
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
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
	return d.tfEnv(ctx, nil, args...)
}

// tfEnv runs terraform with extra TF_VAR_ settings; what it writes to stderr is kept in d.errs
// until the next command.
func (d *demo) tfEnv(ctx context.Context, vars []string, args ...string) error {
	d.errs.reset()
	return d.env.Terraform(ctx, d.work, append([]string{"TF_VAR_user_id=" + d.o.User}, vars...), args...)
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

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}
