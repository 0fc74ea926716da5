package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// ValidateConfig rejects a bad schedule before any API call: steps that do not strictly increase
// or leave 1–100, and a hold_at that is not one of the steps (or is the last).
func (r *canaryResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m canaryModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if msg, bad := noScope(m); bad {
		resp.Diagnostics.AddAttributeError(path.Root("user_ids"), "Canary Has No Scope", msg)
		return
	}
	steps, ok := listInts(m.Steps)
	if !ok {
		return
	}
	if m.Steps.IsNull() {
		steps = upgrade.DefaultSteps
	}
	if err := upgrade.ValidateSteps(steps); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("steps"), "Invalid Canary Steps", "steps: "+err.Error()+".")
		return
	}
	if m.HoldAt.IsUnknown() {
		return
	}
	if err := upgrade.ValidateHoldAt(steps, m.HoldAt.ValueInt64()); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("hold_at"), "Invalid Canary Hold", err.Error()+".")
	}
}

// ModifyPlan makes the plan say what the apply will do: which users move at which step, the
// snapshots taken first and the expected duration (planned_step), and the progress the apply will
// reach (current_percent, phase, moved_user_ids, next_step — known at plan on update). No warning
// says it: Terraform plans again while applying and would print it once more after the apply. While the rollout is
// neither promoted nor holding the plan is never empty; once it is, the plan is empty and makes
// no API call beyond refresh.
func (r *canaryResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil {
		return
	}
	if req.Plan.Raw.IsNull() {
		var state canaryModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if !resp.Diagnostics.HasError() {
			_, diags := r.hydrate(ctx, &state, hydrateRecord)
			resp.Diagnostics.Append(diags...)
		}
		if !resp.Diagnostics.HasError() {
			resp.Diagnostics.Append(r.planDestroy(ctx, state, r.canaryOwner(ctx, req.Private, state.ID.ValueString()).token)...)
		}
		return
	}
	var plan canaryModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var state *canaryModel
	if !req.State.Raw.IsNull() {
		state = &canaryModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	keep, diags := r.hydrate(ctx, &plan, 0)
	resp.Diagnostics.Append(diags...)
	if state != nil {
		_, diags = r.hydrate(ctx, state, hydrateRecord|hydrateMoved)
		resp.Diagnostics.Append(diags...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	defer dehydratePlan(ctx, resp, keep)
	// Only an apply that aborts changes last_abort, and that apply fails: Terraform checks the
	// result against the plan only when the apply succeeds, so the plan keeps it as it is.
	plan.LastAbort = types.ObjectNull(lastAbortAttrTypes)
	if state != nil {
		plan.LastAbort = state.LastAbort
		resp.Diagnostics.Append(importedWithoutRecord(ctx, req.Private, *state)...)
	}
	users, okUsers := listStrings(plan.UserIDs)
	steps, okSteps := listInts(plan.Steps)
	if !okUsers || !okSteps || plan.Version.IsUnknown() || plan.Mode.IsUnknown() || plan.HoldAt.IsUnknown() || (plan.CohortSeed.IsUnknown() && state != nil) {
		setProgressUnknown(&plan)
		plan.PlannedStep = types.StringUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if upgrade.ValidateSteps(steps) != nil || upgrade.ValidateHoldAt(steps, plan.HoldAt.ValueInt64()) != nil {
		return // ValidateConfig has said why
	}
	if state == nil {
		plan.ID = types.StringValue(keep.idOf(plan))
	} else {
		plan.ID = state.ID
	}
	if plan.CohortSeed.IsUnknown() || plan.CohortSeed.IsNull() {
		plan.CohortSeed = plan.ID
	}
	cfg := canaryConfig{version: plan.Version.ValueString(), steps: steps, holdAt: plan.HoldAt.ValueInt64(), mode: plan.Mode.ValueString(), allowMajor: plan.AllowMajorUpgrade.ValueBool()}
	seed := plan.CohortSeed.ValueString()

	var moved, left []string
	cfg.users = users
	if state != nil {
		cfg.users, moved, left = planScope(users, *state, cfg.version, seed)
	}
	if len(cfg.users) == 0 {
		resp.Diagnostics.AddAttributeError(path.Root("user_ids"), "Canary Has No Users",
			"user_ids is empty and this canary has moved no engine that still runs "+cfg.version+": there is nothing to roll out. "+
				"Name at least one user; a data \"engine_instances\" filter that matches no engine yet gives an empty list.")
		return
	}
	scope := cfg.users
	if state != nil {
		// The engines refresh found above version stay out of the scope (upgrade.CheckCanary).
		held, diags := getHeld(ctx, req.Private, scope)
		resp.Diagnostics.Append(diags...)
		cfg.held = held
	}
	cur, targets := cfg.progress(moved)
	usersChanged := state == nil || !plan.UserIDs.Equal(state.UserIDs)
	scheduleChanged := state == nil || !plan.Steps.Equal(state.Steps) || !plan.HoldAt.Equal(state.HoldAt) || !plan.Mode.Equal(state.Mode)
	pending := state != nil && unjudged(cur, state.LastAnalysis, mapStrings(state.StableVersions), moved, cfg.version)
	if len(left) > 0 {
		resp.Diagnostics.Append(r.leftScope(ctx, *state, left)...)
	}

	if state != nil && len(targets) == 0 && !usersChanged && !scheduleChanged && !pending {
		// Nothing to move: progress stays as refresh read it, so an unchanged configuration
		// gives an empty plan.
		r.quietPlan(ctx, resp, &plan, *state, cfg, moved)
		return
	}

	cat, err := r.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return
	}
	engines, err := rollout.Fleet(ctx, r.data.Client, scope)
	if err != nil {
		resp.Diagnostics.Append(clientErrorAttrDiag(path.Root("user_ids"), "Engine Fleet Read Failed", err))
		return
	}
	check := upgrade.CheckCanary(cat, engines, scope, cfg.version, cfg.allowMajor)
	resp.Diagnostics.Append(problemDiags(check.Errors, true)...)
	resp.Diagnostics.Append(plan.checkRehearsals(ctx, r.data.Client, state, engines, cfg.version)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if state == nil {
		if len(check.Held) > 0 {
			// Nothing drifted under a canary that does not exist yet: the configuration asks
			// it to move these engines back.
			resp.Diagnostics.Append(problemDiags([]upgrade.Problem{upgrade.CanaryNewerEngines(cfg.version, check.Held)}, true)...)
			return
		}
		// Engines already on the version count as moved without an operation.
		for _, u := range upgrade.Rank(seed, users) {
			if e := engines[u]; e.EngineVersion == cfg.version && e.Status != api.StatusFailed {
				moved = append(moved, u)
			}
		}
		cur, targets = cfg.progress(moved)
	}
	// An update holds what refresh held (Terraform plans again while applying, and both plans
	// must agree); an engine above version that refresh did not hold (it moved since, or was
	// just added to user_ids) is refused only when this plan would move it.
	cfg.users = upgrade.Without(scope, cfg.held)
	moves := upgrade.PlanSteps(seed, cfg.users, targets, moved)
	resp.Diagnostics.Append(canaryOwnerDiags(engines, moves, r.canaryOwner(ctx, req.Private, plan.ID.ValueString()).token)...)
	if since := upgrade.MovedAbove(moves, upgrade.NewlyHeld(check.Held, cfg.held)); len(since) > 0 {
		resp.Diagnostics.Append(problemDiags([]upgrade.Problem{upgrade.CanaryWouldDowngrade(cfg.version, since)}, true)...)
		return
	}
	resp.Diagnostics.Append(problemDiags(heldWarning(cfg), false)...)

	timeout, _ := plan.Timeouts.Update(ctx, defaultCanaryTimeout)
	which := "update"
	if state == nil {
		timeout, _ = plan.Timeouts.Create(ctx, defaultCanaryTimeout)
		which = "create"
	}
	parallel := int(plan.MaxParallel.ValueInt64())
	bake, _ := time.ParseDuration(plan.BakeTime.ValueString())
	certain, expected := upgrade.Schedule(moves, parallel, bake)
	if pending {
		certain, expected = certain+bake, expected+bake
	}
	if certain > timeout {
		attr, next := "bake_time", "shorten bake_time or raise timeouts."+which
		if cfg.mode == upgrade.ModeAuto {
			attr, next = "mode", "set mode = \"stepwise\" (one step per apply, so no CI job waits for the whole schedule), shorten bake_time, or raise timeouts."+which
		}
		resp.Diagnostics.AddAttributeError(path.Root(attr), "Canary Schedule Exceeds The Timeout",
			fmt.Sprintf("This apply would walk %d steps (%s) with bake_time %s after each: at least %s of baking, longer than the %s timeout of %s. Nothing was changed; %s.",
				len(moves), joinPercents(targets), bake, certain, which, timeout, next))
		return
	}
	plan.PlannedStep = types.StringNull()
	if len(moves) > 0 || pending {
		var parts []string
		if pending {
			parts = append(parts, fmt.Sprintf("judge the %d%% step again (bake, then analysis)", cur))
		}
		for _, mv := range moves {
			parts = append(parts, upgrade.DescribeStep(mv, snapshotsNeeded(cat, engines, mv.Movers, cfg.version), 10))
		}
		text := strings.Join(parts, "; then ")
		if state != nil && state.Phase.ValueString() == upgrade.PhaseAborted {
			text = "retry the aborted rollout from the first step: " + text
		}
		plan.PlannedStep = types.StringValue(fmt.Sprintf("%s. Expected about %s, at least %s of it baking", text, expected, certain))
		if w, err := plan.window(); err == nil && w != nil && !w.Contains(time.Now()) && len(moves) > 0 {
			resp.Diagnostics.AddAttributeWarning(path.Root("rollout_window"), "Outside The Rollout Window",
				fmt.Sprintf("It is %s, outside the rollout window %s: applying now will refuse to start the %d%% step. The window next opens at %s.",
					time.Now().UTC().Format(time.RFC3339), w.String(), moves[0].Percent, w.NextOpening(time.Now()).Format(time.RFC3339)))
		}
	}

	if state == nil {
		// What create reaches depends on analyses only apply can run; planned_step says what it
		// will try.
		setProgressUnknown(&plan)
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	final := moved
	reached := cur
	anyMover := false
	for _, mv := range moves {
		final, reached = mv.Cohort, mv.Percent
		anyMover = anyMover || len(mv.Movers) > 0
	}
	plan.MovedUserIDs = stringListValue(final)
	plan.MovedCount = types.Int64Value(int64(len(final)))
	plan.CurrentPercent = types.Int64Value(upgrade.CurrentPercent(steps, len(cfg.users), len(final)))
	plan.Phase = types.StringValue(upgrade.PhaseAt(steps, cfg.holdAt, reached))
	plan.NextStep = types.StringValue(nextStepText(cat, seed, cfg, final, engines, nil))
	plan.StableVersions, plan.Snapshots = state.StableVersions, state.Snapshots
	if anyMover {
		plan.StableVersions, plan.Snapshots = types.MapUnknown(types.StringType), types.MapUnknown(types.StringType)
	}
	plan.LastAnalysis, plan.LastAbort = state.LastAnalysis, state.LastAbort
	if len(moves) > 0 || pending {
		plan.LastAnalysis = types.ObjectUnknown(lastAnalysisAttrTypes)
		selectorProgressUnknown(&plan, keep)
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
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
func (r *canaryResource) quietPlan(ctx context.Context, resp *resource.ModifyPlanResponse, plan *canaryModel, state canaryModel, cfg canaryConfig, moved []string) {
	resp.Diagnostics.Append(problemDiags(heldWarning(cfg), false)...)
	cur, _ := cfg.progress(moved)
	plan.StableVersions, plan.Snapshots, plan.LastAnalysis, plan.LastAbort = state.StableVersions, state.Snapshots, state.LastAnalysis, state.LastAbort
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
