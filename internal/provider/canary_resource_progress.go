package provider

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// This file turns a canary's walk into what its computed attributes and diagnostics say:
// progress and phase, next_step, and the record and words of an abort.

// fillProgress writes the walk's progress into m: moved users, the percentage reached, the phase, the
// maps, the last analysis and what the next apply would do.
func fillProgress(m *canaryModel, run *rollout.Canary, cfg canaryConfig, engines map[string]api.Engine, aborted bool) {
	moved := run.MovedList()
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(moved))
	m.MovedUserIDs = stringListValue(moved)
	m.MovedCount = types.Int64Value(int64(len(moved)))
	m.CurrentPercent = types.Int64Value(cur)
	m.StableVersions, m.Snapshots = stringMap(run.Stable()), stringMap(run.Snapshots())
	last := run.Last()
	if last != nil {
		m.LastAnalysis = analysisObject(*last)
	} else if m.LastAnalysis.IsUnknown() {
		m.LastAnalysis = types.ObjectNull(lastAnalysisAttrTypes)
	}
	pending := unjudged(cur, m.LastAnalysis, run.Stable(), moved, cfg.version)
	switch {
	case aborted && len(moved) == 0:
		m.Phase = types.StringValue(upgrade.PhaseAborted)
	case pending:
		// Engines stand at a step no analysis passed: not promoted, not holding, whatever the
		// percentage says.
		m.Phase = types.StringValue(upgrade.PhaseProgressing)
	default:
		m.Phase = types.StringValue(upgrade.PhaseAt(cfg.steps, cfg.holdAt, cur))
	}
	var problems []upgrade.Problem
	if engines != nil {
		problems = upgrade.CheckCanary(run.Catalog(), engines, cfg.users, cfg.version, cfg.allowMajor).Errors
	}
	next := nextStepText(run.Catalog(), run.Seed(), cfg, moved, engines, problems)
	if pending {
		next = rejudgeText(cur, next)
		if len(problems) > 0 {
			next = refusedText(problems)
		}
	}
	m.NextStep = types.StringValue(next)
}

// refusedText is next_step while the plan's fleet rules refuse the rollout: "none", the error the
// next plan fails with, and what to do.
func refusedText(ps []upgrade.Problem) string {
	s := fmt.Sprintf("none: the next plan fails with %q: %s", ps[0].Summary, ps[0].Detail)
	if len(ps) > 1 {
		s += fmt.Sprintf(" (and %d more errors)", len(ps)-1)
	}
	return s
}

// analysedThrough is the step a passing last_analysis covers (0 for none or a failed one).
func analysedThrough(o types.Object) int64 {
	if o.IsNull() || o.IsUnknown() {
		return 0
	}
	verdict, ok := o.Attributes()["verdict"].(types.String)
	step, ok2 := o.Attributes()["step"].(types.Int64)
	if !ok || !ok2 || verdict.ValueString() != "pass" {
		return 0
	}
	return step.ValueInt64()
}

// unjudged reports whether the fleet stands at a step no passing analysis covers although the
// canary moved engines to reach it: an apply stopped during a bake or an analysis. Engines that
// were on the version before the canary (stable version = the version) need no judging.
func unjudged(cur int64, last types.Object, stable map[string]string, moved []string, version string) bool {
	if cur == 0 || analysedThrough(last) >= cur {
		return false
	}
	for _, u := range moved {
		if v := stable[u]; v != "" && v != version {
			return true
		}
	}
	return false
}

// rejudgeText prefixes next_step with the judging of the step an interrupted apply left unjudged.
func rejudgeText(cur int64, next string) string {
	s := fmt.Sprintf("judge the %d%% step again (bake, then analysis)", cur)
	if !strings.HasPrefix(next, "none") {
		s += "; then " + next
	}
	return s
}

// nextStepText says what the next apply will do from moved: "move 4 users to 25%: ...; snapshot
// first for 4", steps joined by "; then " in auto mode, or "none". Holding at hold_at, it is "none"
// followed by what the next apply would do without the hold, so the plan that lifts the hold shows
// what its apply does.
// A plan that would move engines fails on problems (the fleet rules of upgrade.CheckCanary); then
// it says so, in the words of that error, instead of naming a step no apply would take. Engines
// held above version are named last: no step moves them.
func nextStepText(cat *upgrade.Catalog, seed string, cfg canaryConfig, moved []string, engines map[string]api.Engine,
	problems []upgrade.Problem) string {
	next := nextStepMoves(cat, seed, cfg, moved, engines, problems)
	if len(cfg.held) > 0 {
		next += fmt.Sprintf("; leaves %s where they run, above %s", upgrade.HeldList(cfg.held, 10), cfg.version)
	}
	return next
}

func nextStepMoves(cat *upgrade.Catalog, seed string, cfg canaryConfig, moved []string, engines map[string]api.Engine,
	problems []upgrade.Problem) string {
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(moved))
	if targets := upgrade.Targets(cfg.mode, cfg.steps, cfg.holdAt, cur); len(targets) > 0 {
		if len(problems) > 0 {
			return refusedText(problems)
		}
		return describeMoves(cat, seed, cfg, moved, engines, targets)
	}
	if cfg.holdAt > 0 && cur >= cfg.holdAt {
		if rest := upgrade.Targets(cfg.mode, cfg.steps, 0, cur); len(rest) > 0 {
			lifted := "the next apply would " + describeMoves(cat, seed, cfg, moved, engines, rest)
			if len(problems) > 0 {
				lifted = strings.TrimPrefix(refusedText(problems), "none: ")
			}
			return fmt.Sprintf("none: holding at %d%%; without hold_at %s", cfg.holdAt, lifted)
		}
	}
	return "none"
}

// describeMoves renders the moves to targets from moved, joined by "; then ".
func describeMoves(cat *upgrade.Catalog, seed string, cfg canaryConfig, moved []string, engines map[string]api.Engine,
	targets []int64) string {
	moves := upgrade.PlanSteps(seed, cfg.users, targets, moved)
	parts := make([]string, len(moves))
	for i, mv := range moves {
		parts[i] = upgrade.DescribeStep(mv, snapshotsNeeded(cat, engines, mv.Movers, cfg.version), 10)
	}
	return strings.Join(parts, "; then ")
}

// snapshotsNeeded counts the users whose path to version migrates the brain.
func snapshotsNeeded(cat *upgrade.Catalog, engines map[string]api.Engine, users []string, version string) int {
	n := 0
	for _, u := range users {
		e, ok := engines[u]
		if !ok {
			continue
		}
		if p, err := cat.Path(e.EngineVersion, version); err == nil && p.RequiresSnapshot {
			n++
		}
	}
	return n
}

func abortDetail(id, version string, f *rollout.StepFailure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Canary %s of %s was aborted at the %d%% step.\n\n%s\n\n", id, version, f.Step, f.Text(errText))
	if f.RollbackErr != nil {
		fmt.Fprintf(&b, "Rolling the moved engines back FAILED: %v. %d engines are back (%s). State records phase = "+
			"\"aborted\" and what each engine runs; run terraform apply again to retry the rollback and the step, or "+
			"restore the listed snapshots by hand.",
			rollbackErrText(f.RollbackErr), len(f.RolledBack), strings.Join(firstNames(f.RolledBack, 10), ", "))
		return b.String()
	}
	fmt.Fprintf(&b, "Every moved engine is back on its stable version and healthy (%d rolled back: %s; snapshots "+
		"restored where the schema moved). "+
		"State records phase = \"aborted\"; the next plan shows what a retry would do. Fix the release (or pick another "+
		"version) before applying again.",
		len(f.RolledBack), strings.Join(firstNames(f.RolledBack, 10), ", "))
	return b.String()
}

// abortObject is last_abort for f.
func abortObject(f *rollout.StepFailure, at time.Time) types.Object {
	cause, user, code := abortAnalysisFailed, types.StringNull(), types.StringNull()
	switch {
	case f.Verdict != nil:
	case f.AnalysisErr != nil:
		cause, code = abortAnalysisUnavailable, errCode(f.AnalysisErr)
	default:
		cause, user, code = abortEngineFailed, types.StringValue(f.Engine), errCode(f.EngineErr)
	}
	return types.ObjectValueMust(lastAbortAttrTypes, map[string]attr.Value{
		"step": types.Int64Value(f.Step), "cause": types.StringValue(cause), "user_id": user, "error_code": code,
		"detail": types.StringValue(f.Text(errText)), "rolled_back": types.BoolValue(f.RollbackErr == nil), "at": types.StringValue(rfc3339(at)),
	})
}

// errCode is the control plane's error code behind err, null when it named none.
func errCode(err error) types.String {
	var oe *rollout.OperationError
	var ce *client.Error
	switch {
	case errors.As(err, &oe) && oe.Op.Error != nil && oe.Op.Error.Code != "":
		return types.StringValue(oe.Op.Error.Code)
	case errors.As(err, &ce) && ce.Code != "":
		return types.StringValue(ce.Code)
	}
	return types.StringNull()
}

// abortedWarning says why an aborted canary aborted, from last_abort, and what applying again does.
func abortedWarning(m canaryModel) (diag.Diagnostic, bool) {
	if m.LastAbort.IsNull() || m.LastAbort.IsUnknown() {
		return nil, false
	}
	a := m.LastAbort.Attributes()
	str := func(k string) string {
		v, _ := a[k].(types.String)
		return v.ValueString()
	}
	step, _ := a["step"].(types.Int64)
	back, _ := a["rolled_back"].(types.Bool)
	outcome := "every engine it moved went back to its stable version"
	if !back.ValueBool() {
		outcome = "rolling the moved engines back did not finish: the next apply retries that first"
	}
	return diag.NewWarningDiagnostic("Canary Aborted",
		fmt.Sprintf("Canary %s of %s aborted at the %d%% step on %s (%s): %s\n\nThen %s. Applying again retries the rollout from the first "+
			"step: fix the cause, or roll out another version, first. "+
			"last_abort keeps this record. A canary whose create aborted is tainted: Terraform replaces it, which rolls back nothing more and "+
			"starts again from the first step.",
			m.ID.ValueString(), m.Version.ValueString(), step.ValueInt64(), str("at"), str("cause"), str("detail"), outcome)), true
}

func analysisObject(a rollout.AnalysisRecord) types.Object {
	verdict := "pass"
	if !a.Verdict.Pass() {
		verdict = "fail"
	}
	fails := make([]string, len(a.Verdict.Findings))
	for i, f := range a.Verdict.Findings {
		fails[i] = f.Detail
	}
	return types.ObjectValueMust(lastAnalysisAttrTypes, map[string]attr.Value{
		"step": types.Int64Value(a.Step), "verdict": types.StringValue(verdict), "failures": stringListValue(fails),
		"canary": figuresObject(a.Verdict.Canary), "baseline": figuresObject(a.Verdict.Baseline), "at": types.StringValue(rfc3339(a.At)),
	})
}

func figuresObject(f upgrade.Figures) types.Object {
	eval := types.Float64Null()
	if f.EvalScore != nil {
		eval = types.Float64Value(round4(*f.EvalScore))
	}
	values := map[string]attr.Value{
		"engines": types.Int64Value(int64(f.Engines)), "warning_kinds": stringListValue(f.WarningKinds), "eval_score": eval,
	}
	for _, m := range upgrade.Metrics {
		values[m.Name] = types.Float64Value(round4(m.Mean(f)))
	}
	return types.ObjectValueMust(figuresAttrTypes, values)
}

func round4(f float64) float64 {
	return float64(int64(f*10000+0.5)) / 10000
}

// rollbackErrText renders a rollback's error, naming the engine it stopped at.
func rollbackErrText(err error) string {
	var re *rollout.RollbackError
	if errors.As(err, &re) {
		return re.Text(errText)
	}
	return errText(err)
}
