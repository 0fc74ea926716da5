package upgrade

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestCurrentPercentAndTargets(t *testing.T) {
	steps := []int64{10, 50, 100}
	for _, c := range []struct {
		n, moved int
		want     int64
	}{{10, 0, 0}, {10, 1, 10}, {10, 4, 10}, {10, 5, 50}, {10, 9, 50}, {10, 10, 100}, {20, 5, 10}, {0, 0, 0}} {
		if got := CurrentPercent(steps, c.n, c.moved); got != c.want {
			t.Errorf("CurrentPercent(%v, n=%d, moved=%d) = %d, want %d", steps, c.n, c.moved, got, c.want)
		}
	}
	for _, c := range []struct {
		mode    string
		hold    int64
		current int64
		want    []int64
	}{
		{ModeAuto, 0, 0, []int64{10, 50, 100}},
		{ModeStepwise, 0, 0, []int64{10}},
		{ModeStepwise, 0, 10, []int64{50}},
		{ModeAuto, 50, 0, []int64{10, 50}},
		{ModeAuto, 50, 50, nil},
		{ModeStepwise, 0, 100, nil},
	} {
		if got := Targets(c.mode, steps, c.hold, c.current); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Targets(%s, hold %d, at %d) = %v, want %v", c.mode, c.hold, c.current, got, c.want)
		}
	}
	if p := PhaseAt(steps, 50, 50); p != PhaseHolding {
		t.Errorf("phase at the hold = %s", p)
	}
	if p := PhaseAt(steps, 0, 100); p != PhasePromoted {
		t.Errorf("phase at the last step = %s", p)
	}
	if p := PhaseAt(steps, 50, 10); p != PhaseProgressing {
		t.Errorf("phase before the hold = %s", p)
	}
}

func TestValidateHoldAt(t *testing.T) {
	steps := []int64{10, 50, 100}
	if err := ValidateHoldAt(steps, 50); err != nil {
		t.Fatal(err)
	}
	if err := ValidateHoldAt(steps, 0); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int64{30, 100, -1} {
		err := ValidateHoldAt(steps, bad)
		if err == nil || !strings.Contains(err.Error(), "hold_at") {
			t.Errorf("hold_at %d: %v", bad, err)
		}
	}
}

// Property: walking a schedule step by step moves exactly the cohort of each step, each step's
// movers are new users only, and the result equals a single auto walk; adding users between
// steps never drops a moved one.
func TestPlanStepsProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.Intn(200)
		us := users(n)
		seed := fmt.Sprintf("s%d", rng.Int())
		steps := DefaultSteps
		auto := PlanSteps(seed, us, steps, nil)
		var moved []string
		for i, p := range steps {
			one := PlanSteps(seed, us, []int64{p}, moved)[0]
			if !reflect.DeepEqual(one.Cohort, auto[i].Cohort) {
				t.Fatalf("trial %d: stepwise cohort at %d%% differs from the auto walk", trial, p)
			}
			seen := map[string]bool{}
			for _, u := range moved {
				seen[u] = true
			}
			for _, u := range one.Movers {
				if seen[u] {
					t.Fatalf("trial %d: %s moved twice", trial, u)
				}
			}
			if len(moved)+len(one.Movers) != len(one.Cohort) {
				t.Fatalf("trial %d: %d moved + %d movers != cohort %d", trial, len(moved), len(one.Movers), len(one.Cohort))
			}
			moved = one.Cohort
			if CurrentPercent(steps, n, len(moved)) < p {
				t.Fatalf("trial %d: after step %d%% current is %d", trial, p, CurrentPercent(steps, n, len(moved)))
			}
		}
		// Grow the fleet: every moved user is still in the next cohort.
		grown := users(n + 1 + rng.Intn(50))
		next := PlanSteps(seed, grown, []int64{50}, auto[1].Cohort)[0]
		in := map[string]bool{}
		for _, u := range next.Cohort {
			in[u] = true
		}
		for _, u := range auto[1].Cohort {
			if !in[u] {
				t.Fatalf("trial %d: adding users dropped %s", trial, u)
			}
		}
	}
}

func TestSchedule(t *testing.T) {
	moves := PlanSteps("x", users(1000), []int64{5, 25, 100}, nil)
	certain, expected := Schedule(moves, 50, time.Minute)
	if certain != 3*time.Minute {
		t.Errorf("certain = %s", certain)
	}
	// 50 + 200 + 750 movers at 50 at once: 1 + 4 + 15 batches.
	if want := 3*time.Minute + 20*NominalEngineTime; expected != want {
		t.Errorf("expected = %s, want %s", expected, want)
	}
	if Batches(0, 5) != 0 || Batches(5, 0) != 5 || Batches(51, 50) != 2 {
		t.Error("Batches")
	}
}

func metric(user string, errRate, p99, cache float64, kinds ...string) api.Metrics {
	return api.Metrics{UserID: user, ErrorRate: errRate, P99LatencyMS: p99, CacheHitRatio: cache, WarningKinds: kinds}
}

func TestAnalyzeBadReleaseFailsOnThresholdsAndBaseline(t *testing.T) {
	base := []api.Metrics{metric("b1", 0.010, 790, 0.66), metric("b2", 0.011, 800, 0.65)}
	bad := []api.Metrics{metric("c1", 0.080, 2400, 0.55, "retrieval_timeout")}
	maxErr := 0.05
	v := Analyze(AnalysisConfig{MaxErrorRate: &maxErr, BaselineTolerance: 0.5}, bad, base, nil, nil)
	if v.Pass() {
		t.Fatal("a cohort at 8% errors passed")
	}
	metrics := map[string]bool{}
	for _, f := range v.Findings {
		metrics[f.Metric] = true
	}
	for _, m := range []string{"error_rate", "p99_latency_ms", "new_warning_kinds"} {
		if !metrics[m] {
			t.Errorf("no finding for %s: %s", m, v.Summary())
		}
	}
	if !strings.Contains(v.Summary(), "max_error_rate 0.05") || !strings.Contains(v.Summary(), "c1 0.08") {
		t.Errorf("summary does not name the threshold and the engine: %s", v.Summary())
	}
}

func TestAnalyzeGoodReleasePassesAndFailureLimit(t *testing.T) {
	base := []api.Metrics{metric("b1", 0.010, 790, 0.66)}
	good := []api.Metrics{metric("c1", 0.011, 780, 0.70), metric("c2", 0.009, 770, 0.71)}
	if v := Analyze(AnalysisConfig{BaselineTolerance: 0.5}, good, base, nil, nil); !v.Pass() {
		t.Fatalf("a good cohort failed: %s", v.Summary())
	}
	maxErr := 0.0105
	if v := Analyze(AnalysisConfig{MaxErrorRate: &maxErr, BaselineTolerance: 0.5, FailureLimit: 1}, good, base, nil, nil); !v.Pass() {
		t.Fatalf("one breach within failure_limit 1 failed: %s", v.Summary())
	}
	if v := Analyze(AnalysisConfig{MaxErrorRate: &maxErr, BaselineTolerance: 0.5}, good, base, nil, nil); v.Pass() {
		t.Fatal("one breach with failure_limit 0 passed")
	}
	// Eval regression.
	b, c := 0.90, 0.71
	v := Analyze(AnalysisConfig{BaselineTolerance: 0.5, MaxEvalRegression: 0.05}, good, base, &c, &b)
	if v.Pass() || v.Findings[0].Metric != "eval_score" {
		t.Fatalf("an eval drop of 0.19 passed: %+v", v.Findings)
	}
	// A near-zero baseline does not fail a cohort over noise.
	if v := Analyze(AnalysisConfig{BaselineTolerance: 0.5}, []api.Metrics{metric("c", 0.001, 100, 0.5)}, []api.Metrics{metric("b", 0, 100, 0.5)}, nil, nil); !v.Pass() {
		t.Fatalf("0.1%% errors against a zero baseline failed: %s", v.Summary())
	}
}

func TestSampleAndDescribe(t *testing.T) {
	us := users(1000)
	s := Sample(us, 100)
	if len(s) != 100 || s[0] != us[0] || s[99] != us[990] {
		t.Fatalf("sample: %d, %s..%s", len(s), s[0], s[len(s)-1])
	}
	if got := Sample(us[:3], 100); len(got) != 3 {
		t.Fatal("small lists are kept whole")
	}
	d := DescribeStep(StepMove{Percent: 25, Movers: []string{"a", "b"}}, 2, 10)
	if d != "move 2 users to 25%: a, b; snapshot first for 2" {
		t.Fatalf("describe: %q", d)
	}
}
