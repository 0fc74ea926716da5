package upgrade

import (
	"fmt"
	"strings"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

var rehearsalVoice = voice{
	absolute: func(m Metric, limit float64, _ []string, _ int, c, b Figures, _ int) string {
		prod := fmt.Sprintf("production %s%s", num(*m.mean(&b)), m.Unit)
		if b.Engines == 0 {
			prod = "production sent no traffic in the window"
		}
		return fmt.Sprintf("%s: staging %s%s (%s) breaches %s %s", m.Name, num(*m.mean(&c)), m.Unit, prod, m.Limit, num(limit))
	},
	baseline: func(m Metric, cv, bv, tolerance, limit float64) string {
		return fmt.Sprintf("%s: staging %s%s against production %s%s, %s the limit of %s%s that baseline_tolerance %s allows",
			m.Name, num(cv), m.Unit, num(bv), m.Unit, aboveBelow(m), num(limit), m.Unit, num(tolerance))
	},
	fresh: func(kinds []string, limit int) string {
		return fmt.Sprintf("new_warning_kinds: staging logs %d warning kinds production does not (%s), above max_new_warning_kinds %d",
			len(kinds), strings.Join(kinds, ", "), limit)
	},
}

// AnalyzeRehearsal judges a rehearsal's staging engine against the thresholds and against the
// source engine over the same window. A source that served no requests in the window has no
// baseline (production is nil): only the absolute thresholds and the eval are checked.
func AnalyzeRehearsal(cfg AnalysisConfig, staging api.Metrics, production *api.Metrics, stagingEval, productionEval *float64) Verdict {
	cfg.FailureLimit = 0
	var base []api.Metrics
	if production != nil {
		base = []api.Metrics{*production}
	}
	v := analyze(cfg, []api.Metrics{staging}, base, rehearsalVoice)
	v.Canary.EvalScore, v.Baseline.EvalScore = stagingEval, productionEval
	v.Findings = evalFinding(v.Findings, cfg, stagingEval, productionEval, "staging scores %s against production's %s")
	return v
}
