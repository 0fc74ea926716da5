// Command demo is `make demo`: it builds the provider, starts the local control plane on loopback
// over a temporary data dir with a seeded fleet, points Terraform at the fresh provider build
// through a throw-away CLI configuration (dev_overrides, so no registry is needed), applies
// examples/quickstart and prints the result, then stops everything and removes what it created,
// on success, failure or Ctrl-C alike. With DEMO_KEEP=1 it leaves the control plane up until
// interrupted and prints its endpoint and key for exploring.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	example := flag.String("example", "examples/quickstart", "the Terraform configuration to apply")
	engines := flag.Int("engines", 5, "engines to seed (user-0001, ...)")
	version := flag.String("version", "2.3.1", "version the seeded fleet runs")
	timeScale := flag.Float64("time-scale", 0.03, "multiplies every nominal duration (0.03 makes a 30 s drain take about a second)")
	flag.Parse()

	terraform, err := findTerraform()
	if err != nil {
		return err
	}
	exampleDir, err := filepath.Abs(*example)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Everything the demo creates lives under tmp, removed on every way out.
	tmp, err := os.MkdirTemp("", "engine-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintf(os.Stderr, "demo: could not remove %s: %v\n", tmp, err)
			return
		}
		step("Removed %s", tmp)
	}()

	pluginDir := filepath.Join(tmp, "plugins")
	step("Building the provider into %s", pluginDir)
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(pluginDir, "terraform-provider-engine"), ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the provider: %w", err)
	}

	key := randomKey()
	cp, err := controlplane.New(controlplane.Options{
		DataDir: filepath.Join(tmp, "data"), APIKey: key,
		SeedEngines: *engines, SeedVersion: *version, TimeScale: *timeScale,
	})
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	defer func() {
		if err := cp.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: close the control plane: %v\n", err)
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
		step("Stopped the control plane")
	}()
	endpoint := "http://" + ln.Addr().String()
	step("Control plane on %s: %d engines on %s, time scale %g", endpoint, *engines, *version, *timeScale)

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
	work := filepath.Join(tmp, "work")
	if err := copyConfig(exampleDir, work); err != nil {
		return err
	}
	env := append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"ENGINE_ENDPOINT="+endpoint, "ENGINE_API_KEY="+key,
	)
	tf := func(args ...string) error {
		cmd := exec.CommandContext(ctx, terraform, args...)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = work, env, os.Stdout, os.Stderr
		// Ctrl-C reaches terraform as an interrupt, so it stops cleanly before we tear down.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 30 * time.Second
		step("terraform %s", strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("terraform %s: %w", args[0], err)
		}
		return nil
	}
	if err := tf("apply", "-auto-approve", "-input=false"); err != nil {
		return err
	}
	step("Done: the quick start read the seeded fleet through the provider")

	if os.Getenv("DEMO_KEEP") == "1" {
		step("DEMO_KEEP=1: the control plane stays up until Ctrl-C. To explore:\n"+
			"    export ENGINE_ENDPOINT=%s ENGINE_API_KEY=%s\n    curl -H 'X-Engine-Admin-Key: %s' %s/v1/engines\n"+
			"    (the configuration and state are in %s)", endpoint, key, key, endpoint, work)
		<-ctx.Done()
	}
	if errors.Is(ctx.Err(), context.Canceled) && os.Getenv("DEMO_KEEP") != "1" {
		return errors.New("interrupted")
	}
	return nil
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

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}
