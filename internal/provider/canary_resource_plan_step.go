package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// What a canary's plan says the apply will do: planned_step and its schedule, and the progress
// the apply reaches (or, with nothing to move, the quiet plan).

// planStep refuses a schedule longer than the timeout and says in planned_step what the apply
// will do and how long it takes.
func (p *canaryPlan) planStep(ctx context.Context, resp *resource.ModifyPlanResponse) bool {
	plan, state, cfg := &p.plan, p.state, p.cfg
	timeout, _ := plan.Timeouts.Update(ctx, defaultCanaryTimeout)
	which := "update"
	if state == nil {
		timeout, _ = plan.Timeouts.Create(ctx, defaultCanaryTimeout)
		which = "create"
	}
	parallel := int(plan.MaxParallel.ValueInt64())
	bake, _ := time.ParseDuration(plan.BakeTime.ValueString())
	certain, expected := upgrade.Schedule(p.moves, parallel, bake)
	if p.pending {
		certain, expected = certain+bake, expected+bake
	}
	if certain > timeout {
		attr, next := "bake_time", "shorten bake_time or raise timeouts."+which
		if cfg.mode == upgrade.ModeAuto {
			attr, next = "mode", "set mode = \"stepwise\" (one step per apply, so no CI job waits for the whole schedule), shorten bake_time, "+
				"or raise timeouts."+which
		}
		resp.Diagnostics.AddAttributeError(path.Root(attr), "Canary Schedule Exceeds The Timeout",
			fmt.Sprintf("This apply would walk %d steps (%s) with bake_time %s after each: at least %s of baking, "+
				"longer than the %s timeout of %s. Nothing was changed; %s.",
				len(p.moves), joinPercents(p.targets), bake, certain, which, timeout, next))
		return false
	}
	plan.PlannedStep = types.StringNull()
	if len(p.moves) == 0 && !p.pending {
		return true
	}
	var parts []string
	if p.pending {
		parts = append(parts, fmt.Sprintf("judge the %d%% step again (bake, then analysis)", p.cur))
	}
	for _, mv := range p.moves {
		parts = append(parts, upgrade.DescribeStep(mv, snapshotsNeeded(p.cat, p.engines, mv.Movers, cfg.version), 10))
	}
	text := strings.Join(parts, "; then ")
	if state != nil && state.Phase.ValueString() == upgrade.PhaseAborted {
		text = "retry the aborted rollout from the first step: " + text
	}
	plan.PlannedStep = types.StringValue(fmt.Sprintf("%s. Expected about %s, at least %s of it baking", text, expected, certain))
	if w, err := plan.window(); err == nil && w != nil && !w.Contains(time.Now()) && len(p.moves) > 0 {
		resp.Diagnostics.AddAttributeWarning(path.Root("rollout_window"), "Outside The Rollout Window",
			fmt.Sprintf("It is %s, outside the rollout window %s: applying now will refuse to start the %d%% step. The window next opens at %s.",
				time.Now().UTC().Format(time.RFC3339), w.String(), p.moves[0].Percent, w.NextOpening(time.Now()).Format(time.RFC3339)))
	}
	return true
}

// planProgress sets the progress the apply will reach: unknown on create (it depends on analyses
// only apply can run), else the last step's cohort, phase and next step.
func (p *canaryPlan) planProgress(ctx context.Context, resp *resource.ModifyPlanResponse) {
	plan, state, cfg := &p.plan, p.state, p.cfg
	if state == nil {
		setProgressUnknown(plan)
		resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
		return
	}
	final := p.moved
	reached := p.cur
	anyMover := false
	for _, mv := range p.moves {
		final, reached = mv.Cohort, mv.Percent
		anyMover = anyMover || len(mv.Movers) > 0
	}
	plan.MovedUserIDs = stringListValue(final)
	plan.MovedCount = types.Int64Value(int64(len(final)))
	plan.CurrentPercent = types.Int64Value(upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(final)))
	plan.Phase = types.StringValue(upgrade.PhaseAt(cfg.steps, cfg.holdAt, reached))
	plan.NextStep = types.StringValue(nextStepText(p.cat, p.seed, cfg, final, p.engines, nil))
	plan.StableVersions, plan.Snapshots = state.StableVersions, state.Snapshots
	if anyMover {
		plan.StableVersions, plan.Snapshots = types.MapUnknown(types.StringType), types.MapUnknown(types.StringType)
	}
	plan.LastAnalysis, plan.LastAbort = state.LastAnalysis, state.LastAbort
	if len(p.moves) > 0 || p.pending {
		plan.LastAnalysis = types.ObjectUnknown(lastAnalysisAttrTypes)
		selectorProgressUnknown(plan, p.keep)
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

// progress is the percentage moved reaches over the scope without the held users, and the steps
// the apply walks from there (none when every user is held).
func (cfg canaryConfig) progress(moved []string) (int64, []int64) {
	n := len(upgrade.Without(cfg.users, cfg.held))
	cur := upgrade.CurrentPercent(cfg.steps, n, len(moved))
	if n == 0 {
		return cur, nil
	}
	return cur, upgrade.Targets(cfg.mode, cfg.steps, cfg.holdAt, cur)
}

// quietPlan is the plan of a canary with nothing to move: progress stays as refresh read it, so
// an unchanged configuration gives an empty plan. It warns about held engines.
func (r *canaryResource) quietPlan(ctx context.Context, resp *resource.ModifyPlanResponse, plan *canaryModel, state canaryModel,
	cfg canaryConfig, moved []string) {
	resp.Diagnostics.Append(problemDiags(heldWarning(cfg), false)...)
	cur, _ := cfg.progress(moved)
	plan.StableVersions, plan.Snapshots = state.StableVersions, state.Snapshots
	plan.LastAnalysis, plan.LastAbort = state.LastAnalysis, state.LastAbort
	plan.MovedUserIDs = stringListValue(moved)
	plan.MovedCount = types.Int64Value(int64(len(moved)))
	plan.CurrentPercent = types.Int64Value(cur)
	plan.Phase = types.StringValue(upgrade.PhaseAt(cfg.steps, cfg.holdAt, cur))
	plan.NextStep, plan.PlannedStep = state.NextStep, state.PlannedStep
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

// heldWarning is the plan's warning about engines held above the canary's version, if any.
func heldWarning(cfg canaryConfig) []upgrade.Problem {
	if len(cfg.held) == 0 {
		return nil
	}
	return []upgrade.Problem{upgrade.CanaryDriftAbove(cfg.version, cfg.held)}
}

func setProgressUnknown(m *canaryModel) {
	if m.ID.IsNull() {
		m.ID = types.StringUnknown()
	}

	m.StableVersions, m.Snapshots = types.MapUnknown(types.StringType), types.MapUnknown(types.StringType)
	m.MovedUserIDs = types.ListUnknown(types.StringType)
	m.MovedCount = types.Int64Unknown()
	m.CurrentPercent, m.Phase, m.NextStep = types.Int64Unknown(), types.StringUnknown(), types.StringUnknown()
	m.LastAnalysis = types.ObjectUnknown(lastAnalysisAttrTypes)
}

func joinPercents(ps []int64) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d%%", p)
	}
	return strings.Join(parts, ", ")
}
