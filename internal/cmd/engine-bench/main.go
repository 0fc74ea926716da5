// Command engine-bench runs the benchmark suite of internal/bench (`make bench`) and prints the
// directory holding report.md and figures.json.
//
//	go run ./internal/cmd/engine-bench [-quick] [-out DIR] [-only plan,lag,canary,snapshot,controlplane,fleet]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/bench"
)

func main() {
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") != "", "a ~2-minute smaller run (N=100 only, fewer repeats); also set by BENCH_QUICK=1")
	out := flag.String("out", "", "output directory (default bench-results/<UTC timestamp>)")
	only := flag.String("only", "", "comma-separated measurements to run: "+strings.Join(bench.Measurements, ", ")+" (default all)")
	profile := flag.Bool("profile", false, "build the provider with a CPU profiler (profiles land in OUT/profiles; figures carry its cost)")
	render := flag.String("render", "", "rewrite DIR/report.md from DIR/figures.json without measuring")
	planN := flag.String("plan-n", "", "comma-separated resource counts for the plan measurement, ascending (default 100,500,1000; quick 100)")
	runs := flag.Int("runs", 0, "plan runs per N (default 5; quick 3)")
	repo := flag.String("repo", ".", "the checkout whose provider is built and measured")
	flag.Parse()

	if *render != "" {
		f, err := bench.Render(*render)
		if err != nil {
			fmt.Fprintln(os.Stderr, "engine-bench:", err)
			os.Exit(1)
		}
		fmt.Println(f.Markdown())
		return
	}
	sel := map[string]bool{}
	for _, m := range strings.Split(*only, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		known := false
		for _, k := range bench.Measurements {
			known = known || k == m
		}
		if !known {
			fmt.Fprintf(os.Stderr, "engine-bench: unknown measurement %q in -only; choose from %s\n", m, strings.Join(bench.Measurements, ", "))
			os.Exit(2)
		}
		sel[m] = true
	}
	var ns []int
	for _, v := range strings.Split(*planN, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 9999 || (len(ns) > 0 && n <= ns[len(ns)-1]) {
			fmt.Fprintf(os.Stderr, "engine-bench: -plan-n %q: want ascending counts from 1 to 9999 (the control plane seeds user-0001 … user-9999)\n", *planN)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	root, err := filepath.Abs(*repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine-bench:", err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Join(root, "main.go")); err != nil {
		fmt.Fprintf(os.Stderr, "engine-bench: %s holds no main.go: run from the repository root or pass -repo\n", root)
		os.Exit(2)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(root, "bench-results", time.Now().UTC().Format("20060102T150405Z"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := bench.Run(ctx, bench.Config{RepoRoot: root, OutDir: dir, Quick: *quick, Profile: *profile, Only: sel, PlanNs: ns, Runs: *runs, Log: os.Stderr})
	if f != nil {
		fmt.Println(f.Markdown())
	}
	fmt.Printf("report: %s\n", filepath.Join(dir, "report.md"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine-bench:", err)
		os.Exit(1)
	}
	if f != nil && len(f.Errors) > 0 {
		os.Exit(1)
	}
}
