package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccDemo runs `make demo`'s walk-through twice in a row, as a user on a fresh clone would,
// with a short time scale: each run must check its own outcome (2.3.1 again with exactly the
// pre-upgrade turns), print the plan's planned_upgrade and warnings, and leave nothing behind —
// no directory under its temp base and no process running from it.
func TestAccDemo(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: the demo runs terraform (make testacc sets it)")
	}
	base := t.TempDir()
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := runDemo(ctx, options{
			Example: "examples/quickstart", Engines: 3, Version: "2.3.1", User: "user-0002",
			TimeScale: 0.005, NoColor: true, TempBase: base, Repo: repoRoot(t),
		}, &out, &out)
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		for _, want := range []string{
			"planned_upgrade", `requires_snapshot   = true`, "Warning: Forward-Only Brain Migration",
			"Creation complete", "user-0002's engine: version 2.4.0, brain schema 5",
			"Warning: Destroy Restores A Snapshot And Loses Data", "3 brain writes made since then will be lost",
			"Done: user-0002's engine runs 2.3.1 again with its 5 pre-upgrade turns", "Stopped the control plane", "Removed ",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d: the demo's output lacks %q:\n%s", run, want, out.String())
			}
		}
		// Four terraform commands, each warning about dev_overrides: the demo shows it once.
		if n := strings.Count(out.String(), devOverridesWarning); n != 1 {
			t.Errorf("run %d: the dev_overrides warning appears %d times, want once:\n%s", run, n, out.String())
		}
		if strings.Contains(out.String(), "\x1b[") {
			t.Errorf("run %d: ANSI colour codes in the output of a -no-color run:\n%s", run, out.String())
		}
		left, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("run %d left %v in its temp base %s", run, left, base)
		}
		if procs := processesUnder(t, base); len(procs) != 0 {
			t.Errorf("run %d left processes running from %s: %v", run, base, procs)
		}
	}
}

// The fleet canary's default rolls out the bad 2.4.1: its intended outcome is the abort, with the
// whole fleet back on 2.3.1, and the demo exits 0 (it exited 1 on exactly that outcome before).
func TestAccDemo_fleetCanary(t *testing.T) {
	out := runScenario(t, options{Example: "examples/fleet-canary", Engines: 20, Version: "2.3.1", User: "user-0001"})
	for _, want := range []string{"Canary Aborted", "The fleet now: 20 on 2.3.1", "Done: the intended abort"} {
		if !strings.Contains(out, want) {
			t.Errorf("the fleet-canary demo's output lacks %q:\n%s", want, out)
		}
	}
}

// The major upgrade is refused until the guide is acknowledged, then applied with it, then
// rolled back; the demo exits 0 when all three happened (it exited 1 at the refusal before).
func TestAccDemo_majorUpgrade(t *testing.T) {
	out := runScenario(t, options{Example: "examples/major-upgrade", Engines: 2, Version: "2.3.1", User: "user-0002"})
	for _, want := range []string{
		"set acknowledged_migration_guide", "user-0002's engine: version 3.0.0", "Destruction complete",
		"Done: the refusal, then user-0002 on 3.0.0 once the guide was acknowledged, then back on 2.3.1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the major-upgrade demo's output lacks %q:\n%s", want, out)
		}
	}
}

// runScenario runs the demo on one example, as `go run ./internal/cmd/engine-demo -example …`
// does, and fails the test unless it ends without error.
func runScenario(t *testing.T, o options) string {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: the demo runs terraform (make testacc sets it)")
	}
	// NoColor is left unset: output that goes to no terminal must have no colour codes anyway.
	o.TimeScale, o.TempBase, o.Repo = 0.005, t.TempDir(), repoRoot(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := runDemo(ctx, o, &out, &out); err != nil {
		t.Fatalf("%s: the demo failed: %v\n%s", o.Example, err, out.String())
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("%s: ANSI colour codes in output that goes to no terminal:\n%s", o.Example, out.String())
	}
	return out.String()
}

// runDemo is run; a seam so the test reads as the user's command.
var runDemo = run

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// processesUnder lists the command lines (from /proc) that mention dir: the provider plugin runs
// from the demo's temp dir, so a leaked one shows up here.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Logf("no /proc to look for leftover processes (%v): only the temp dir was checked", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, dir) {
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}
