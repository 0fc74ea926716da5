package upgrade

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// AnalysisConfig is the analysis an engine_canary runs after each step's bake, and an
// engine_release after its upgrade's bake.
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

// Metric is one row of the analysis table: a figure every engine reports over a window, judged
// against an absolute threshold (when set) and against the baseline (always). A new gate metric
// is one row here, its field in api.Metrics (the control plane's metrics source), Figures and
// AnalysisConfig, and the schema attribute the provider builds from the row.
type Metric struct {
	// Name is the figure as findings and figures name it, e.g. "error_rate".
	Name string
	// Limit is the threshold's attribute, e.g. "max_error_rate".
	Limit string
	// Unit follows a figure in sentences, e.g. " ms".
	Unit string
	// HigherIsBetter makes the threshold a minimum and the baseline bound a floor (cache-hit
	// ratio); otherwise both are ceilings (error rate, latency).
	HigherIsBetter bool
	// Floor is slack the baseline comparison always allows on top of the baseline (below it for
	// HigherIsBetter), so a near-zero baseline does not fail a group over noise.
	Floor float64
	// Min and Max bound the threshold's value; the schema validates them.
	Min, Max float64
	// Describe says what the threshold checks, for the schema; %s is who is judged.
	Describe string
	// DescribeMean says what the group's figure is, for the schema (last_analysis).
	DescribeMean string

	value     func(api.Metrics) float64
	mean      func(*Figures) *float64
	threshold func(*AnalysisConfig) **float64
}

// Value is the row's figure in one engine's metrics.
func (m Metric) Value(x api.Metrics) float64 { return m.value(x) }

// SetThreshold sets the row's threshold in cfg (nil: not checked).
func (m Metric) SetThreshold(cfg *AnalysisConfig, v *float64) { *m.threshold(cfg) = v }

// Mean is the row's figure in a group's aggregated figures.
func (m Metric) Mean(f Figures) float64 { return *m.mean(&f) }

// Threshold is the row's threshold in cfg, nil when not checked.
func (m Metric) Threshold(cfg AnalysisConfig) *float64 { return *m.threshold(&cfg) }

// breaches reports whether x is on the wrong side of limit.
func (m Metric) breaches(x, limit float64) bool {
	if m.HigherIsBetter {
		return x < limit
	}
	return x > limit
}

// baselineLimit is the worst value the baseline comparison allows.
func (m Metric) baselineLimit(base, tolerance float64) float64 {
	tol := 1 + tolerance
	if m.HigherIsBetter {
		return math.Min(base/tol, base-m.Floor)
	}
	return math.Max(base*tol, base+m.Floor)
}

// errorRateFloor keeps a near-zero baseline error rate from failing a cohort over noise: the
// baseline comparison allows at least this much absolute error rate on top of the baseline.
const errorRateFloor = 0.002

// Metrics is the analysis table: the figures every analysis compares, in the order findings are
// reported.
var Metrics = []Metric{
	{
		Name: "error_rate", Limit: "max_error_rate", Floor: errorRateFloor, Min: 0, Max: 1,
		Describe: "Highest error rate (0–1) %s may show.", DescribeMean: "Mean error rate.",
		value:     func(m api.Metrics) float64 { return m.ErrorRate },
		mean:      func(f *Figures) *float64 { return &f.ErrorRate },
		threshold: func(c *AnalysisConfig) **float64 { return &c.MaxErrorRate },
	},
	{
		Name: "p99_latency_ms", Limit: "max_p99_latency_ms", Unit: " ms", Min: 1, Max: 3600000,
		Describe: "Highest P99 latency (ms, > 0) %s may show.", DescribeMean: "Mean P99 latency in ms.",
		value:     func(m api.Metrics) float64 { return m.P99LatencyMS },
		mean:      func(f *Figures) *float64 { return &f.P99LatencyMS },
		threshold: func(c *AnalysisConfig) **float64 { return &c.MaxP99LatencyMS },
	},
	{
		Name: "cache_hit_ratio", Limit: "min_cache_hit_ratio", HigherIsBetter: true, Min: 0, Max: 1,
		Describe: "Lowest cache-hit ratio (0–1) %s may show.", DescribeMean: "Mean cache-hit ratio.",
		value:     func(m api.Metrics) float64 { return m.CacheHitRatio },
		mean:      func(f *Figures) *float64 { return &f.CacheHitRatio },
		threshold: func(c *AnalysisConfig) **float64 { return &c.MinCacheHitRatio },
	},
}

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
		for _, row := range Metrics {
			*row.mean(&f) += row.value(m)
		}
		for _, k := range m.WarningKinds {
			kinds[k] = true
		}
	}
	if n := float64(len(ms)); n > 0 {
		for _, row := range Metrics {
			*row.mean(&f) /= n
		}
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
// broke, and a sentence saying so. For a release, the cohort is the engine after the upgrade and
// the baseline the same engine before it.
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

// voice words the findings for one caller: a canary's cohort against the engines not moved, or
// one engine after its upgrade against itself before.
type voice struct {
	// absolute: breached lists "user value" for each engine over the threshold.
	absolute func(m Metric, limit float64, breached []string, engines int, c, b Figures, failureLimit int) string
	baseline func(m Metric, cv, bv, tolerance, limit float64) string
	fresh    func(kinds []string, limit int) string
}

var canaryVoice = voice{
	absolute: func(m Metric, limit float64, breached []string, engines int, c, b Figures, failureLimit int) string {
		return fmt.Sprintf("%s: %d of %d canary engines breach %s %s (cohort mean %s, baseline %s; failure_limit %d): %s",
			m.Name, len(breached), engines, m.Limit, num(limit), num(*m.mean(&c)), num(*m.mean(&b)), failureLimit, strings.Join(firstN(breached, 5), ", "))
	},
	baseline: func(m Metric, cv, bv, tolerance, limit float64) string {
		return fmt.Sprintf("%s: cohort mean %s%s is %s the baseline's %s%s by more than baseline_tolerance %s allows (limit %s%s)",
			m.Name, num(cv), m.Unit, aboveBelow(m), num(bv), m.Unit, num(tolerance), num(limit), m.Unit)
	},
	fresh: func(kinds []string, limit int) string {
		return fmt.Sprintf("new_warning_kinds: the cohort shows %d warning kinds the baseline does not (%s), above max_new_warning_kinds %d",
			len(kinds), strings.Join(kinds, ", "), limit)
	},
}

var releaseVoice = voice{
	absolute: func(m Metric, limit float64, _ []string, _ int, c, b Figures, _ int) string {
		before := fmt.Sprintf("%s%s before", num(*m.mean(&b)), m.Unit)
		if b.Engines == 0 {
			before = "no figures from before"
		}
		return fmt.Sprintf("%s: %s%s after the upgrade (%s) breaches %s %s",
			m.Name, num(*m.mean(&c)), m.Unit, before, m.Limit, num(limit))
	},
	baseline: func(m Metric, cv, bv, tolerance, limit float64) string {
		return fmt.Sprintf("%s: %s%s after the upgrade against %s%s before, %s the limit of %s%s that baseline_tolerance %s allows",
			m.Name, num(cv), m.Unit, num(bv), m.Unit, aboveBelow(m), num(limit), m.Unit, num(tolerance))
	},
	fresh: func(kinds []string, limit int) string {
		return fmt.Sprintf("new_warning_kinds: after the upgrade the engine logs %d warning kinds it did not log before (%s), above max_new_warning_kinds %d",
			len(kinds), strings.Join(kinds, ", "), limit)
	},
}

func aboveBelow(m Metric) string {
	if m.HigherIsBetter {
		return "below"
	}
	return "above"
}

// Analyze judges a cohort's per-engine metrics against the thresholds and against the baseline
// group's (the engines not moved, over the same window). Eval scores are optional (nil: none ran).
func Analyze(cfg AnalysisConfig, canary, baseline []api.Metrics, canaryEval, baselineEval *float64) Verdict {
	v := analyze(cfg, canary, baseline, canaryVoice)
	v.Canary.EvalScore, v.Baseline.EvalScore = canaryEval, baselineEval
	v.Findings = evalFinding(v.Findings, cfg, canaryEval, baselineEval, "the cohort scores %s against a baseline of %s")
	return v
}

// evalFinding adds the eval_score finding when the score (canary) regressed from the baseline's
// by more than max_eval_regression; scores says "%s (score) against %s (baseline)".
func evalFinding(fs []Finding, cfg AnalysisConfig, canary, baseline *float64, scores string) []Finding {
	if canary == nil || baseline == nil {
		return fs
	}
	reg := *baseline - *canary
	if reg <= cfg.MaxEvalRegression {
		return fs
	}
	return append(fs, Finding{Metric: "eval_score", Canary: *canary, Baseline: *baseline, Threshold: cfg.MaxEvalRegression,
		Detail: fmt.Sprintf("eval_score: "+scores+", a regression of %s above max_eval_regression %s",
			num(*canary), num(*baseline), num(reg), num(cfg.MaxEvalRegression))})
}

// AnalyzeRelease judges one engine after its upgrade against the thresholds and against its own
// figures over the same window before the upgrade (failure_limit does not apply to one engine).
func AnalyzeRelease(cfg AnalysisConfig, before, after api.Metrics) Verdict {
	cfg.FailureLimit = 0
	return analyze(cfg, []api.Metrics{after}, []api.Metrics{before}, releaseVoice)
}

// AnalyzeReleaseThresholds judges one engine after its upgrade by the absolute thresholds alone,
// when its figures from before the upgrade are gone (the apply that read them was killed):
// baseline_tolerance and max_new_warning_kinds need them and are not checked.
func AnalyzeReleaseThresholds(cfg AnalysisConfig, after api.Metrics) Verdict {
	cfg.FailureLimit = 0
	return analyze(cfg, []api.Metrics{after}, nil, releaseVoice)
}

// analyze runs the table: each row's absolute threshold engine by engine (failure_limit breaches
// tolerated) and its baseline comparison, then the warning kinds the baseline never showed.
func analyze(cfg AnalysisConfig, canary, baseline []api.Metrics, say voice) Verdict {
	v := Verdict{Canary: Aggregate(canary), Baseline: Aggregate(baseline)}
	c, b := v.Canary, v.Baseline
	add := func(metric string, cv, bv, th float64, detail string) {
		v.Findings = append(v.Findings, Finding{Metric: metric, Canary: cv, Baseline: bv, Threshold: th, Detail: detail})
	}
	for _, row := range Metrics {
		limit := row.Threshold(cfg)
		if limit == nil {
			continue
		}
		var breached []string
		for _, m := range canary {
			if x := row.value(m); row.breaches(x, *limit) {
				breached = append(breached, fmt.Sprintf("%s %s", m.UserID, num(x)))
			}
		}
		if len(breached) > cfg.FailureLimit {
			add(row.Name, *row.mean(&c), *row.mean(&b), *limit, say.absolute(row, *limit, breached, len(canary), c, b, cfg.FailureLimit))
		}
	}
	if b.Engines == 0 || c.Engines == 0 {
		return v
	}
	for _, row := range Metrics {
		cv, bv := *row.mean(&c), *row.mean(&b)
		if lim := row.baselineLimit(bv, cfg.BaselineTolerance); row.breaches(cv, lim) {
			add(row.Name, cv, bv, lim, say.baseline(row, cv, bv, cfg.BaselineTolerance, lim))
		}
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
		add("new_warning_kinds", float64(len(fresh)), 0, float64(cfg.MaxNewWarningKinds), say.fresh(fresh, cfg.MaxNewWarningKinds))
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
