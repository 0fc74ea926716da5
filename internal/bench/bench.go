// Package bench measures the provider and the local control plane against the quality bars of
// DESIGN.md §5: plan cost at fleet scale against Terraform's built-in terraform_data, the lag
// between an operation's end and the apply noticing it, a 1,000-engine canary against the ideal
// schedule, an online brain snapshot under write load against a plain file copy, and the control
// plane's own seeding, long-poll and read figures.
//
// It drives the real terraform binary against a provider built from this checkout and an
// in-process control plane served over loopback TCP, so the figures are what a user would see.
// Nothing here runs in `make test`: `make bench` (internal/cmd/engine-bench) runs it.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Config selects what a run measures and where it writes.
type Config struct {
	RepoRoot string // the checkout holding main.go (the provider is built from it)
	OutDir   string // report.md and figures.json land here
	Quick    bool   // BENCH_QUICK: N=100 only, fewer repeats, a smaller brain
	// Profile runs terraform against a provider build that writes CPU profiles into
	// OutDir/profiles (figures from such a run carry the profiler's cost).
	Profile bool
	Only    map[string]bool
	PlanNs  []int // overrides the plan measurement's resource counts (engine-bench -plan-n)
	Runs    int   // overrides the plan measurement's repeats when > 0 (engine-bench -runs)
	Log     io.Writer
}

func (c Config) want(name string) bool { return len(c.Only) == 0 || c.Only[name] }

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
}

// Measurement names, usable with Config.Only (engine-bench -only plan,lag).
const (
	MPlan     = "plan"
	MLag      = "lag"
	MCanary   = "canary"
	MSnapshot = "snapshot"
	MControl  = "controlplane"
	MFleet    = "fleet"
)

// Measurements lists every measurement in run order.
var Measurements = []string{MPlan, MLag, MCanary, MSnapshot, MControl, MDockerCanary, MDockerSnapshot, MFleet}

// Run performs the selected measurements and writes report.md and figures.json to cfg.OutDir.
// A measurement that fails is recorded as failed in the report and the run continues: a broken
// canary must not hide the plan figures.
func Run(ctx context.Context, cfg Config) (*Figures, error) {
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	f := &Figures{Quick: cfg.Quick, Started: time.Now().UTC(), Machine: machine(ctx, cfg.RepoRoot)}
	work, err := os.MkdirTemp("", "engine-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	var tf *terraform
	needTF := cfg.want(MPlan) || cfg.want(MLag) || cfg.want(MCanary) || cfg.want(MDockerCanary) || cfg.want(MFleet)
	if needTF {
		cfg.logf("building the provider from %s", cfg.RepoRoot)
		profile := ""
		if cfg.Profile {
			if err := os.MkdirAll(filepath.Join(cfg.OutDir, "profiles"), 0o755); err != nil {
				return nil, err
			}
			profile = filepath.Join(cfg.OutDir, "profiles", "provider-cpu")
		}
		if tf, err = newTerraform(ctx, cfg.RepoRoot, filepath.Join(work, "tf"), profile); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{MPlan, func() error { var err error; f.Plan, err = runPlan(ctx, cfg, tf, work); return err }},
		{MLag, func() error { var err error; f.Lag, err = runLag(ctx, cfg, tf, work); return err }},
		{MCanary, func() error { var err error; f.Canary, err = runCanary(ctx, cfg, tf, work); return err }},
		{MSnapshot, func() error { var err error; f.Snapshot, err = runSnapshot(ctx, cfg, work); return err }},
		{MControl, func() error { var err error; f.ControlPlane, err = runControlPlane(ctx, cfg, work); return err }},
		{MDockerCanary, func() error { var err error; f.DockerCanary, err = runDockerCanary(ctx, cfg, tf, work); return err }},
		{MDockerSnapshot, func() error { var err error; f.DockerSnapshot, err = runDockerSnapshot(ctx, cfg, work); return err }},
		{MFleet, func() error { var err error; f.Fleet, err = runFleet(ctx, cfg, tf, work); return err }},
	}
	for _, s := range steps {
		if !cfg.want(s.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		cfg.logf("== %s", s.name)
		start := time.Now()
		if err := s.run(); err != nil {
			cfg.logf("%s FAILED: %v", s.name, err)
			f.Errors = append(f.Errors, fmt.Sprintf("%s: %v", s.name, err))
		} else {
			cfg.logf("%s done in %s", s.name, time.Since(start).Round(time.Second))
		}
	}
	f.Finished = time.Now().UTC()
	if err := f.write(cfg.OutDir); err != nil {
		return f, err
	}
	return f, ctx.Err()
}

// Machine is where a run happened: figures from different machines are not comparable.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	MemoryMB  int64  `json:"memory_mb"`
	Go        string `json:"go"`
	Terraform string `json:"terraform"`
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
}

func machine(ctx context.Context, repo string) Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryMB = procKB(string(b), "MemTotal:") / 1024
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := command(ctx, repo, []string{"TF_CLI_CONFIG_FILE=" + os.DevNull, "CHECKPOINT_DISABLE=1"}, "terraform", "version"); err == nil {
		m.Terraform = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	if out, err := command(ctx, repo, nil, "git", "rev-parse", "--short=12", "HEAD"); err == nil {
		m.Commit = strings.TrimSpace(out)
	}
	if out, err := command(ctx, repo, nil, "git", "status", "--porcelain", "--untracked-files=no"); err == nil {
		m.Dirty = strings.TrimSpace(out) != ""
	}
	return m
}
