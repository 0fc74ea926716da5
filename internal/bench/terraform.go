package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// providerComm is the provider process's name as /proc/<pid>/comm shows it (15 bytes at most).
const providerComm = "terraform-provi"

// terraform runs the terraform binary against a provider built from the checkout through a
// dev_overrides CLI config, so no registry and no `terraform init` are involved. The same config
// serves floorprovider as septemberai/benchfloor.
type terraform struct {
	cliConfig string
	profile   string // BENCH_CPUPROFILE for the profiling build, "" for the real one
	// schemaFloor is terraform with septemberai/engine served by schemafloor instead: the
	// provider's schemas with resource methods that do nothing.
	schemaFloor *terraform
}

// newTerraform builds the provider, floorprovider and schemafloor under dir. With profile set it
// builds profprovider instead of the provider (the same provider, writing a CPU profile per
// process to profile.<pid>).
func newTerraform(ctx context.Context, repo, dir, profile string) (*terraform, error) {
	pkg := "."
	if profile != "" {
		pkg = "./internal/bench/profprovider"
	}
	bin, floorBin := filepath.Join(dir, "bin"), filepath.Join(dir, "schemafloor")
	builds := []struct{ dir, name, pkg string }{
		{bin, "terraform-provider-engine", pkg},
		{bin, "terraform-provider-benchfloor", "./internal/bench/floorprovider"},
		{floorBin, "terraform-provider-engine", "./internal/bench/schemafloor"},
	}
	for _, b := range builds {
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			return nil, err
		}
		if out, err := command(ctx, repo, nil, "go", "build", "-o", filepath.Join(b.dir, b.name), b.pkg); err != nil {
			return nil, fmt.Errorf("go build of %s failed: %w\n%s", b.pkg, err, out)
		}
	}
	cfg, floorCfg := filepath.Join(dir, "terraform.rc"), filepath.Join(dir, "schemafloor.rc")
	if err := writeCLIConfig(cfg, map[string]string{"septemberai/engine": bin, "septemberai/benchfloor": bin}); err != nil {
		return nil, err
	}
	if err := writeCLIConfig(floorCfg, map[string]string{"septemberai/engine": floorBin}); err != nil {
		return nil, err
	}
	return &terraform{cliConfig: cfg, profile: profile, schemaFloor: &terraform{cliConfig: floorCfg}}, nil
}

// writeCLIConfig writes a CLI config whose dev_overrides map each provider source to a directory.
func writeCLIConfig(path string, overrides map[string]string) error {
	var b strings.Builder
	b.WriteString("provider_installation {\n  dev_overrides {\n")
	for src, dir := range overrides {
		fmt.Fprintf(&b, "    \"registry.terraform.io/%s\" = %q\n", src, dir)
	}
	b.WriteString("  }\n  direct {}\n}\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// tfRun is one terraform invocation's cost.
type tfRun struct {
	Wall       time.Duration
	ProviderKB int64 // the provider process's peak RSS (VmHWM), 0 when none was seen
	// TerraformKB is terraform's own peak RSS (VmHWM, the provider not included).
	TerraformKB int64
	// CPU time: terraform with its children (from wait4), and the provider alone (its last
	// /proc sample, so up to 10 ms of its very end may be missing).
	TotalCPU    time.Duration
	ProviderCPU time.Duration
	Output      string
}

// run executes `terraform args...` in dir with the control plane's endpoint and key in the
// environment, sampling the provider child's peak RSS while it lives.
func (t *terraform) run(ctx context.Context, dir string, env []string, args ...string) (tfRun, error) {
	cmd := exec.CommandContext(ctx, "terraform", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+t.cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	cmd.Env = append(cmd.Env, env...)
	if t.profile != "" {
		cmd.Env = append(cmd.Env, "BENCH_CPUPROFILE="+t.profile)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return tfRun{}, err
	}
	var peak, tfPeak int64
	var pcpu time.Duration
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		peak, tfPeak, pcpu = sampleProvider(cmd.Process.Pid, done)
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	close(done)
	wg.Wait()
	r := tfRun{Wall: wall, ProviderKB: peak, TerraformKB: tfPeak, ProviderCPU: pcpu, Output: out.String()}
	if ps := cmd.ProcessState; ps != nil {
		r.TotalCPU = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return r, fmt.Errorf("terraform %s in %s: %w\n%s", strings.Join(args, " "), dir, err, tail(r.Output, 4000))
	}
	return r, nil
}

// sampleProvider polls the provider children of pid every 10 ms and returns the highest VmHWM
// seen, pid's own (terraform's) VmHWM and the provider's CPU time at the last sample. VmHWM is the kernel's own high-water
// mark, so a peak between samples is not missed as long as one sample lands while the process
// lives (terraform keeps it for the whole plan).
func sampleProvider(pid int, done <-chan struct{}) (peakKB, tfKB int64, cpu time.Duration) {
	cpus := map[int]time.Duration{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			tfKB = max(tfKB, procKB(string(b), "VmHWM:"))
		}
		for _, child := range children(pid) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			if strings.TrimSpace(string(comm)) != providerComm {
				continue
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", child)); err == nil {
				peakKB = max(peakKB, procKB(string(b), "VmHWM:"))
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil {
				if c, ok := statCPU(string(b)); ok {
					cpus[child] = c
				}
			}
		}
		select {
		case <-done:
			for _, c := range cpus {
				cpu += c
			}
			return peakKB, tfKB, cpu
		case <-tick.C:
		}
	}
}

// statCPU reads utime+stime from a /proc/<pid>/stat line. The command name (field 2) may hold
// spaces, so fields are counted after its closing parenthesis. Clock ticks are 100 Hz on Linux.
func statCPU(stat string) (time.Duration, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * 10 * time.Millisecond, true
}

// children lists the direct children of pid from /proc/<pid>/task/*/children.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// procKB reads a "Key:   123 kB" line of a /proc status-like file.
func procKB(text, key string) int64 {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func command(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// writeConfig writes main.tf into a fresh directory and returns it.
func writeConfig(dir, hcl string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(hcl), 0o644)
}

const requiredProviders = `terraform {
  required_providers {
    engine = { source = "septemberai/engine" }
  }
}
`
