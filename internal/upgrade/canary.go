package upgrade

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Canary phases, as engine_canary records them.
const (
	PhaseProgressing = "progressing"
	PhaseHolding     = "holding"
	PhasePromoted    = "promoted"
	PhaseAborted     = "aborted"
)

// CanaryPhases lists every phase.
var CanaryPhases = []string{PhaseProgressing, PhaseHolding, PhasePromoted, PhaseAborted}

// Canary modes.
const (
	ModeAuto     = "auto"
	ModeStepwise = "stepwise"
)

// CanaryModes lists every mode.
var CanaryModes = []string{ModeStepwise, ModeAuto}

// CurrentPercent is the highest step whose cohort is fully moved, given how many of the n users
// in scope run the canary version; 0 when not even the first step is. It depends only on counts
// because Cohort always keeps every moved user: a step of p% is complete once CohortSize(p, n)
// users have moved.
func CurrentPercent(steps []int64, n, moved int) int64 {
	var cur int64
	for _, s := range steps {
		if CohortSize(s, n) <= moved && n > 0 {
			cur = s
		}
	}
	return cur
}

// Stop is where the rollout ends for now: hold_at when set, else the last step.
func Stop(steps []int64, holdAt int64) int64 {
	if holdAt > 0 {
		return holdAt
	}
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1]
}

// Remaining lists the steps after current up to the stop (hold_at or the last step), in order.
// An empty result means there is nothing left to do.
func Remaining(steps []int64, holdAt, current int64) []int64 {
	stop := Stop(steps, holdAt)
	var out []int64
	for _, s := range steps {
		if s > current && s <= stop {
			out = append(out, s)
		}
	}
	return out
}

// Targets is what one apply walks: every remaining step in auto mode, at most one in stepwise.
func Targets(mode string, steps []int64, holdAt, current int64) []int64 {
	rest := Remaining(steps, holdAt, current)
	if mode == ModeStepwise && len(rest) > 1 {
		return rest[:1]
	}
	return rest
}

// PhaseAt is the phase of a rollout standing at current: promoted at the last step, holding at
// hold_at, progressing otherwise.
func PhaseAt(steps []int64, holdAt, current int64) string {
	switch {
	case len(steps) > 0 && current >= steps[len(steps)-1]:
		return PhasePromoted
	case holdAt > 0 && current >= holdAt:
		return PhaseHolding
	}
	return PhaseProgressing
}

// ValidateHoldAt checks that hold_at (0 = unset) is one of the steps and not the last one, which
// would be "promoted" anyway and make the hold meaningless.
func ValidateHoldAt(steps []int64, holdAt int64) error {
	if holdAt == 0 {
		return nil
	}
	for i, s := range steps {
		if s == holdAt {
			if i == len(steps)-1 {
				return fmt.Errorf("hold_at %d is the last step: the rollout is promoted there anyway. Hold at an earlier step (%s) or remove hold_at", holdAt, joinSteps(steps[:i]))
			}
			return nil
		}
	}
	return fmt.Errorf("hold_at %d is not one of the steps (%s): set it to one of them, or remove it", holdAt, joinSteps(steps))
}

func joinSteps(steps []int64) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%d", s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// StepMove is one step of a rollout: the percentage it reaches and the users it moves.
type StepMove struct {
	Percent int64
	// Cohort is every user the step covers (already moved ones included), in rank order.
	Cohort []string
	// Movers are the users the step moves, in rank order.
	Movers []string
}

// PlanSteps computes the moves of the given target percentages, in order, starting from moved.
func PlanSteps(seed string, users []string, targets []int64, moved []string) []StepMove {
	cur := append([]string(nil), moved...)
	out := make([]StepMove, 0, len(targets))
	for _, p := range targets {
		c := Cohort(seed, users, p, cur)
		in := make(map[string]bool, len(cur))
		for _, u := range cur {
			in[u] = true
		}
		var movers []string
		for _, u := range c {
			if !in[u] {
				movers = append(movers, u)
			}
		}
		out = append(out, StepMove{Percent: p, Cohort: c, Movers: movers})
		cur = c
	}
	return out
}

// Batches is how many rounds of at most parallel engines it takes to move n engines.
func Batches(n, parallel int) int {
	if n <= 0 {
		return 0
	}
	if parallel < 1 {
		parallel = 1
	}
	return (n + parallel - 1) / parallel
}

// NominalEngineTime is the planning estimate of one engine's move (snapshot, drain, stop,
// migrate, boot, health) used for the plan's expected duration. Real engines vary; the estimate
// only informs reviewers and is never a hard limit.
const NominalEngineTime = 15 * time.Second

// Schedule estimates a walk through moves: the certain part (bake time, which the provider waits
// out in full after every step) and the expected total with NominalEngineTime per batch.
func Schedule(moves []StepMove, parallel int, bake time.Duration) (certain, expected time.Duration) {
	for _, m := range moves {
		certain += bake
		expected += bake + time.Duration(Batches(len(m.Movers), parallel))*NominalEngineTime
	}
	return certain, expected
}

// AnalysisConfig is the analysis an engine_canary runs after each step's bake.
type AnalysisConfig struct {
	// Absolute thresholds; nil = not checked.
	MaxErrorRate     *float64
	MaxP99LatencyMS  *float64
	MinCacheHitRatio *float64
	// MaxNewWarningKinds is how many warning kinds the cohort may show that the baseline does not.
	MaxNewWarningKinds int
	// BaselineTolerance bounds the cohort against the baseline: its error rate and P99 may be at
	// most (1 + tolerance) times the baseline's, its cache-hit ratio at least baseline / (1 +
	// tolerance).
	BaselineTolerance float64
	// FailureLimit is how many single engines may breach an absolute threshold before the step
	// fails (Argo's failureLimit, counted over engines instead of measurements).
	FailureLimit int
	// MaxEvalRegression is the largest allowed drop of the eval score (with an eval suite).
	MaxEvalRegression float64
}

// errorRateFloor keeps a near-zero baseline error rate from failing a cohort over noise: the
// baseline comparison allows at least this much absolute error rate on top of the baseline.
const errorRateFloor = 0.002

// Figures are a group's aggregated metrics: means over its engines, and the union of warning kinds.
type Figures struct {
	Engines       int
	ErrorRate     float64
	P99LatencyMS  float64
	CacheHitRatio float64
	WarningKinds  []string
	// EvalScore is the mean eval score, nil when no eval ran.
	EvalScore *float64
}

// Aggregate averages per-engine metrics into Figures.
func Aggregate(ms []api.Metrics) Figures {
	f := Figures{Engines: len(ms)}
	kinds := map[string]bool{}
	for _, m := range ms {
		f.ErrorRate += m.ErrorRate
		f.P99LatencyMS += m.P99LatencyMS
		f.CacheHitRatio += m.CacheHitRatio
		for _, k := range m.WarningKinds {
			kinds[k] = true
		}
	}
	if n := float64(len(ms)); n > 0 {
		f.ErrorRate /= n
		f.P99LatencyMS /= n
		f.CacheHitRatio /= n
	}
	for k := range kinds {
		f.WarningKinds = append(f.WarningKinds, k)
	}
	sort.Strings(f.WarningKinds)
	return f
}

// MeanScore averages eval scores; nil for none.
func MeanScore(scores []float64) *float64 {
	if len(scores) == 0 {
		return nil
	}
	var s float64
	for _, x := range scores {
		s += x
	}
	s /= float64(len(scores))
	return &s
}

// Finding is one failed check: the metric, the cohort's and the baseline's values, the limit it
// broke, and a sentence saying so.
type Finding struct {
	Metric    string
	Canary    float64
	Baseline  float64
	Threshold float64
	Detail    string
}

// Verdict is the outcome of one analysis.
type Verdict struct {
	Canary   Figures
	Baseline Figures
	Findings []Finding
}

// Pass reports whether no check failed.
func (v Verdict) Pass() bool { return len(v.Findings) == 0 }

// Summary is one line per finding, for diagnostics.
func (v Verdict) Summary() string {
	lines := make([]string, len(v.Findings))
	for i, f := range v.Findings {
		lines[i] = "- " + f.Detail
	}
	return strings.Join(lines, "\n")
}

// Analyze judges a cohort's per-engine metrics against the thresholds and against the baseline
// group's (the engines not moved, over the same window). Eval scores are optional (nil: none ran).
func Analyze(cfg AnalysisConfig, canary, baseline []api.Metrics, canaryEval, baselineEval *float64) Verdict {
	v := Verdict{Canary: Aggregate(canary), Baseline: Aggregate(baseline)}
	v.Canary.EvalScore, v.Baseline.EvalScore = canaryEval, baselineEval
	c, b := v.Canary, v.Baseline
	add := func(metric string, cv, bv, th float64, format string, args ...any) {
		v.Findings = append(v.Findings, Finding{Metric: metric, Canary: cv, Baseline: bv, Threshold: th, Detail: fmt.Sprintf(format, args...)})
	}

	// Absolute thresholds, engine by engine, with failure_limit breaches tolerated.
	type check struct {
		metric string
		limit  *float64
		value  func(api.Metrics) float64
		bad    func(x, limit float64) bool
		agg    float64
		base   float64
		word   string
	}
	checks := []check{
		{"error_rate", cfg.MaxErrorRate, func(m api.Metrics) float64 { return m.ErrorRate }, func(x, l float64) bool { return x > l }, c.ErrorRate, b.ErrorRate, "max_error_rate"},
		{"p99_latency_ms", cfg.MaxP99LatencyMS, func(m api.Metrics) float64 { return m.P99LatencyMS }, func(x, l float64) bool { return x > l }, c.P99LatencyMS, b.P99LatencyMS, "max_p99_latency_ms"},
		{"cache_hit_ratio", cfg.MinCacheHitRatio, func(m api.Metrics) float64 { return m.CacheHitRatio }, func(x, l float64) bool { return x < l }, c.CacheHitRatio, b.CacheHitRatio, "min_cache_hit_ratio"},
	}
	for _, ch := range checks {
		if ch.limit == nil {
			continue
		}
		var breached []string
		for _, m := range canary {
			if ch.bad(ch.value(m), *ch.limit) {
				breached = append(breached, fmt.Sprintf("%s %s", m.UserID, num(ch.value(m))))
			}
		}
		if len(breached) > cfg.FailureLimit {
			add(ch.metric, ch.agg, ch.base, *ch.limit,
				"%s: %d of %d canary engines breach %s %s (cohort mean %s, baseline %s; failure_limit %d): %s",
				ch.metric, len(breached), len(canary), ch.word, num(*ch.limit), num(ch.agg), num(ch.base), cfg.FailureLimit, strings.Join(firstN(breached, 5), ", "))
		}
	}

	// The cohort against the baseline.
	if b.Engines > 0 && c.Engines > 0 {
		tol := 1 + cfg.BaselineTolerance
		if lim := math.Max(b.ErrorRate*tol, b.ErrorRate+errorRateFloor); c.ErrorRate > lim {
			add("error_rate", c.ErrorRate, b.ErrorRate, lim, "error_rate: cohort mean %s is above the baseline's %s by more than baseline_tolerance %s allows (limit %s)",
				num(c.ErrorRate), num(b.ErrorRate), num(cfg.BaselineTolerance), num(lim))
		}
		if lim := b.P99LatencyMS * tol; c.P99LatencyMS > lim {
			add("p99_latency_ms", c.P99LatencyMS, b.P99LatencyMS, lim, "p99_latency_ms: cohort mean %s ms is above the baseline's %s ms by more than baseline_tolerance %s allows (limit %s ms)",
				num(c.P99LatencyMS), num(b.P99LatencyMS), num(cfg.BaselineTolerance), num(lim))
		}
		if lim := b.CacheHitRatio / tol; c.CacheHitRatio < lim {
			add("cache_hit_ratio", c.CacheHitRatio, b.CacheHitRatio, lim, "cache_hit_ratio: cohort mean %s is below the baseline's %s by more than baseline_tolerance %s allows (limit %s)",
				num(c.CacheHitRatio), num(b.CacheHitRatio), num(cfg.BaselineTolerance), num(lim))
		}
		known := map[string]bool{}
		for _, k := range b.WarningKinds {
			known[k] = true
		}
		var fresh []string
		for _, k := range c.WarningKinds {
			if !known[k] {
				fresh = append(fresh, k)
			}
		}
		if len(fresh) > cfg.MaxNewWarningKinds {
			add("new_warning_kinds", float64(len(fresh)), 0, float64(cfg.MaxNewWarningKinds), "new_warning_kinds: the cohort shows %d warning kinds the baseline does not (%s), above max_new_warning_kinds %d",
				len(fresh), strings.Join(fresh, ", "), cfg.MaxNewWarningKinds)
		}
	}
	if canaryEval != nil && baselineEval != nil {
		if reg := *baselineEval - *canaryEval; reg > cfg.MaxEvalRegression {
			add("eval_score", *canaryEval, *baselineEval, cfg.MaxEvalRegression, "eval_score: the cohort scores %s against a baseline of %s, a regression of %s above max_eval_regression %s",
				num(*canaryEval), num(*baselineEval), num(reg), num(cfg.MaxEvalRegression))
		}
	}
	return v
}

func num(f float64) string {
	s := fmt.Sprintf("%.4f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-" {
		return "0"
	}
	return s
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
}

// Sample picks at most max users spread evenly over a rank-ordered list, so analysis of a large
// cohort costs a bounded number of requests while still covering early and late movers.
func Sample(users []string, max int) []string {
	if max <= 0 || len(users) <= max {
		return users
	}
	out := make([]string, 0, max)
	for i := 0; i < max; i++ {
		out = append(out, users[i*len(users)/max])
	}
	return out
}

// DescribeStep renders a step for humans: "move 4 users to 25%: user-0003, user-0007, …;
// snapshot first for 4", or "" for nothing.
func DescribeStep(m StepMove, snapshots int, maxNames int) string {
	if len(m.Movers) == 0 {
		return fmt.Sprintf("reach %d%% (no engine to move)", m.Percent)
	}
	noun := "users"
	if len(m.Movers) == 1 {
		noun = "user"
	}
	s := fmt.Sprintf("move %d %s to %d%%: %s", len(m.Movers), noun, m.Percent, strings.Join(firstN(m.Movers, maxNames), ", "))
	if snapshots > 0 {
		s += fmt.Sprintf("; snapshot first for %d", snapshots)
	}
	return s
}
