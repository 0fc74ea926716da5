// Command engine-bench runs the benchmark suite of internal/bench (`make bench`) and prints the
// directory holding report.md and figures.json.
//
//	go run ./internal/cmd/engine-bench [-quick] [-out DIR] [-only plan,lag,canary,snapshot,controlplane]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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
	f, err := bench.Run(ctx, bench.Config{RepoRoot: root, OutDir: dir, Quick: *quick, Profile: *profile, Only: sel, Log: os.Stderr})
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
