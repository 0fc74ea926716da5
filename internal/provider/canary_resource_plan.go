package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/diag"
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
	p, ok := r.readPlan(ctx, req, resp)
	if p != nil {
		defer dehydratePlan(ctx, resp, p.keep)
	}
	if !ok {
		return
	}
	if p.state != nil && len(p.targets) == 0 && !p.usersChanged && !p.scheduleChanged && !p.pending {
		// Nothing to move: progress stays as refresh read it, so an unchanged configuration
		// gives an empty plan.
		r.quietPlan(ctx, resp, &p.plan, *p.state, p.cfg, p.moved)
		return
	}
	if !r.planFleet(ctx, req, resp, p) || !p.planStep(ctx, resp) {
		return
	}
	p.planProgress(ctx, resp)
}

// canaryPlan is what a canary's plan works out, step by step.
type canaryPlan struct {
	plan                          canaryModel
	state                         *canaryModel
	cfg                           canaryConfig
	seed                          string
	users, moved                  []string
	cur                           int64
	targets                       []int64
	usersChanged, scheduleChanged bool
	// pending: the fleet stands at a step no analysis judged (an interrupted apply).
	pending bool
	// scope is the users the plan checks: user_ids plus the moved users that still run version.
	scope   []string
	cat     *upgrade.Catalog
	engines map[string]api.Engine
	moves   []upgrade.StepMove
	// keep says whether a selector's facts were hydrated into plan and state (dehydrated again at the end).
	keep scopeKeeper
}

// readPlan reads the plan and state, leaves progress unknown while the configuration is, and
// works out the scope and the steps the apply walks from what refresh read.
func (r *canaryResource) readPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) (*canaryPlan,
	bool) {
	p := &canaryPlan{}
	plan := &p.plan
	resp.Diagnostics.Append(req.Plan.Get(ctx, plan)...)
	if !req.State.Raw.IsNull() {
		p.state = &canaryModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, p.state)...)
	}
	if resp.Diagnostics.HasError() {
		return nil, false
	}
	var diags diag.Diagnostics
	p.keep, diags = r.hydrate(ctx, plan, 0)
	resp.Diagnostics.Append(diags...)
	if p.state != nil {
		_, diags = r.hydrate(ctx, p.state, hydrateRecord|hydrateMoved)
		resp.Diagnostics.Append(diags...)
	}
	if resp.Diagnostics.HasError() {
		return nil, false
	}
	state := p.state
	// Only an apply that aborts changes last_abort, and that apply fails: Terraform checks the
	// result against the plan only when the apply succeeds, so the plan keeps it as it is.
	plan.LastAbort = types.ObjectNull(lastAbortAttrTypes)
	if state != nil {
		plan.LastAbort = state.LastAbort
		resp.Diagnostics.Append(importedWithoutRecord(ctx, req.Private, *state)...)
	}
	users, okUsers := listStrings(plan.UserIDs)
	steps, okSteps := listInts(plan.Steps)
	if !okUsers || !okSteps || plan.Version.IsUnknown() || plan.Mode.IsUnknown() || plan.HoldAt.IsUnknown() ||
		(plan.CohortSeed.IsUnknown() && state != nil) {
		setProgressUnknown(plan)
		plan.PlannedStep = types.StringUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
		return p, false
	}
	if upgrade.ValidateSteps(steps) != nil || upgrade.ValidateHoldAt(steps, plan.HoldAt.ValueInt64()) != nil {
		return nil, false // ValidateConfig has said why
	}
	if state == nil {
		plan.ID = types.StringValue(p.keep.idOf(*plan))
	} else {
		plan.ID = state.ID
	}
	if plan.CohortSeed.IsUnknown() || plan.CohortSeed.IsNull() {
		plan.CohortSeed = plan.ID
	}
	p.cfg = canaryConfig{version: plan.Version.ValueString(), steps: steps, holdAt: plan.HoldAt.ValueInt64(), mode: plan.Mode.ValueString(),
		allowMajor: plan.AllowMajorUpgrade.ValueBool()}
	p.seed, p.users = plan.CohortSeed.ValueString(), users

	var left []string
	p.cfg.users = users
	if state != nil {
		p.cfg.users, p.moved, left = planScope(users, *state, p.cfg.version, p.seed)
	}
	if len(p.cfg.users) == 0 {
		resp.Diagnostics.AddAttributeError(path.Root("user_ids"), "Canary Has No Users",
			"user_ids is empty and this canary has moved no engine that still runs "+p.cfg.version+": there is nothing to roll out. "+
				"Name at least one user; a data \"engine_instances\" filter that matches no engine yet gives an empty list.")
		return nil, false
	}
	p.scope = p.cfg.users
	if state != nil {
		// The engines refresh found above version stay out of the scope (upgrade.CheckCanary).
		held, diags := getHeld(ctx, req.Private, p.scope)
		resp.Diagnostics.Append(diags...)
		p.cfg.held = held
	}
	p.cur, p.targets = p.cfg.progress(p.moved)
	p.usersChanged = state == nil || !plan.UserIDs.Equal(state.UserIDs)
	p.scheduleChanged = state == nil || !plan.Steps.Equal(state.Steps) || !plan.HoldAt.Equal(state.HoldAt) || !plan.Mode.Equal(state.Mode)
	p.pending = state != nil && unjudged(p.cur, state.LastAnalysis, mapStrings(state.StableVersions), p.moved, p.cfg.version)
	if len(left) > 0 {
		resp.Diagnostics.Append(r.leftScope(ctx, *state, left)...)
	}
	return p, true
}

// planFleet reads the catalog and the engines in scope, applies the fleet's rules, and works out
// the moves of the steps the apply walks.
func (r *canaryResource) planFleet(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse,
	p *canaryPlan) bool {
	cfg := &p.cfg
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return false
	}
	engines, err := rollout.Fleet(ctx, r.data.Client, p.scope)
	if err != nil {
		resp.Diagnostics.Append(clientErrorAttrDiag(path.Root("user_ids"), "Engine Fleet Read Failed", err))
		return false
	}
	p.cat, p.engines = cat, engines
	check := upgrade.CheckCanary(cat, engines, p.scope, cfg.version, cfg.allowMajor)
	resp.Diagnostics.Append(problemDiags(check.Errors, true)...)
	resp.Diagnostics.Append(p.plan.checkRehearsals(ctx, r.data.Client, p.state, engines, cfg.version)...)
	if resp.Diagnostics.HasError() {
		return false
	}
	if p.state == nil {
		if len(check.Held) > 0 {
			// Nothing drifted under a canary that does not exist yet: the configuration asks
			// it to move these engines back.
			resp.Diagnostics.Append(problemDiags([]upgrade.Problem{upgrade.CanaryNewerEngines(cfg.version, check.Held)}, true)...)
			return false
		}
		// Engines already on the version count as moved without an operation.
		for _, u := range upgrade.Rank(p.seed, p.users) {
			if e := engines[u]; e.EngineVersion == cfg.version && e.Status != api.StatusFailed {
				p.moved = append(p.moved, u)
			}
		}
		p.cur, p.targets = cfg.progress(p.moved)
	}
	// An update holds what refresh held (Terraform plans again while applying, and both plans
	// must agree); an engine above version that refresh did not hold (it moved since, or was
	// just added to user_ids) is refused only when this plan would move it.
	cfg.users = upgrade.Without(p.scope, cfg.held)
	p.moves = upgrade.PlanSteps(p.seed, cfg.users, p.targets, p.moved)
	resp.Diagnostics.Append(canaryOwnerDiags(engines, p.moves, r.canaryOwner(ctx, req.Private, p.plan.ID.ValueString()).token,
		!p.plan.Selector.IsNull())...)
	if since := upgrade.MovedAbove(p.moves, upgrade.NewlyHeld(check.Held, cfg.held)); len(since) > 0 {
		resp.Diagnostics.Append(problemDiags([]upgrade.Problem{upgrade.CanaryWouldDowngrade(cfg.version, since)}, true)...)
		return false
	}
	resp.Diagnostics.Append(problemDiags(heldWarning(*cfg), false)...)
	return true
}
