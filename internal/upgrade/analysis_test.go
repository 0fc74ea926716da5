package upgrade

import (
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// One engine against itself before its upgrade: every row of the table reports with the figures
// before and after, failure_limit does not excuse the single engine, and a good patch passes.
func TestAnalyzeRelease(t *testing.T) {
	before := metric("u", 0.0104, 788.5, 0.66)
	bad := metric("u", 0.0742, 2447, 0.55, "retrieval_timeout")
	maxErr, maxP99, minCache := 0.05, 1500.0, 0.6
	cfg := AnalysisConfig{MaxErrorRate: &maxErr, MaxP99LatencyMS: &maxP99, MinCacheHitRatio: &minCache, BaselineTolerance: 0.5, FailureLimit: 3}
	v := AnalyzeRelease(cfg, before, bad)
	got := map[string]int{}
	for _, f := range v.Findings {
		got[f.Metric]++
	}
	// Absolute and baseline findings for error rate and P99; the cache-hit ratio breaches its
	// minimum but stays within the tolerance (0.66 / 1.5 = 0.44); one new warning kind.
	want := map[string]int{"error_rate": 2, "p99_latency_ms": 2, "cache_hit_ratio": 1, "new_warning_kinds": 1}
	for m, n := range want {
		if got[m] != n {
			t.Errorf("%d findings for %s, want %d:\n%s", got[m], m, n, v.Summary())
		}
	}
	for _, s := range []string{
		"error_rate: 0.0742 after the upgrade (0.0104 before) breaches max_error_rate 0.05",
		"p99_latency_ms: 2447 ms after the upgrade against 788.5 ms before, above the limit of 1182.75 ms that baseline_tolerance 0.5 allows",
		"cache_hit_ratio: 0.55 after the upgrade (0.66 before) breaches min_cache_hit_ratio 0.6",
		"new_warning_kinds: after the upgrade the engine logs 1 warning kinds it did not log before (retrieval_timeout), above max_new_warning_kinds 0",
	} {
		if !strings.Contains(v.Summary(), s) {
			t.Errorf("summary lacks %q:\n%s", s, v.Summary())
		}
	}
	if v := AnalyzeRelease(cfg, before, metric("u", 0.011, 780, 0.67)); !v.Pass() {
		t.Errorf("a good patch failed:\n%s", v.Summary())
	}
	if v := AnalyzeRelease(AnalysisConfig{BaselineTolerance: 0.5, MaxNewWarningKinds: 1}, before, metric("u", 0.0104, 788.5, 0.66, "retrieval_timeout")); !v.Pass() {
		t.Errorf("one new warning kind within max_new_warning_kinds 1 failed:\n%s", v.Summary())
	}
}

// Every row of the table is complete: the accessors work and the threshold round-trips.
func TestMetricTable(t *testing.T) {
	m := api.Metrics{ErrorRate: 0.1, P99LatencyMS: 200, CacheHitRatio: 0.3}
	seen := map[string]bool{}
	for _, row := range Metrics {
		if row.Name == "" || row.Limit == "" || row.Describe == "" || !strings.Contains(row.Describe, "%s") || row.DescribeMean == "" || row.Min >= row.Max {
			t.Errorf("row %+v is incomplete", row.Name)
		}
		if seen[row.Limit] {
			t.Errorf("two rows share %s", row.Limit)
		}
		seen[row.Limit] = true
		if row.Value(m) == 0 {
			t.Errorf("%s reads nothing from the metrics", row.Name)
		}
		var cfg AnalysisConfig
		x := 0.5
		row.SetThreshold(&cfg, &x)
		if got := row.Threshold(cfg); got == nil || *got != x {
			t.Errorf("%s: the threshold does not round-trip", row.Limit)
		}
		f := Aggregate([]api.Metrics{m, m})
		if *row.mean(&f) != row.Value(m) {
			t.Errorf("%s: the mean of two equal engines is %v, want %v", row.Name, *row.mean(&f), row.Value(m))
		}
	}
}
