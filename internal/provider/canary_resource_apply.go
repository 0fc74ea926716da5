package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// This file maps a canary's apply onto its walk (rollout.Canary): the walk from the model, the
// fleet's rules on fresh reads, and the outcome back into the model and diagnostics.

// newRun builds a walk from the model's configuration and, when prior is set, its recorded
// progress.
func (r *canaryResource) newRun(ctx context.Context, m canaryModel, prior *canaryModel) (*rollout.Canary, canaryConfig, diag.Diagnostics) {
	var diags diag.Diagnostics
	cfg := canaryConfig{version: m.Version.ValueString(), mode: m.Mode.ValueString(), holdAt: m.HoldAt.ValueInt64(),
		allowMajor: m.AllowMajorUpgrade.ValueBool()}
	cfg.users, _ = listStrings(m.UserIDs)
	cfg.steps, _ = listInts(m.Steps)
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return nil, cfg, diags
	}
	seed := m.CohortSeed.ValueString()
	if seed == "" {
		seed = m.ID.ValueString()
	}
	run := rollout.NewCanary(r.data.driver(), cat, cfg.version, seed, cfg.users, int(m.MaxParallel.ValueInt64()))
	run.Bake, _ = time.ParseDuration(m.BakeTime.ValueString())
	run.Analysis, run.Suite, run.Window = m.analysis()
	run.RetentionDays = defaultRetentionDays
	if w, err := m.window(); err == nil {
		run.Rollout = w
	}
	if prior != nil {
		run.Resume(mapStrings(prior.StableVersions), mapStrings(prior.Snapshots))
	}
	return run, cfg, diags
}

// observed builds a walk from state and reads what the fleet really runs into it: the users in
// scope and every recorded one.
func (r *canaryResource) observed(ctx context.Context, state canaryModel) (*rollout.Canary, canaryConfig, map[string]api.Engine,
	diag.Diagnostics) {
	run, cfg, diags := r.newRun(ctx, state, &state)
	if diags.HasError() {
		return nil, cfg, nil, diags
	}
	engines, err := rollout.Fleet(ctx, r.data.Client, run.ScopeWithRecorded())
	if err != nil {
		diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return nil, cfg, nil, diags
	}
	run.Observe(ctx, engines)
	cfg.held = upgrade.CheckCanary(run.Catalog(), engines, run.WidenScope(), cfg.version, cfg.allowMajor).Held
	cfg.users = run.Hold(cfg.held)
	return run, cfg, engines, diags
}

type canaryResult struct {
	diags diag.Diagnostics
	// touched: something moved or was recorded, so state must keep the canary.
	touched bool
}

// converge walks the steps this apply owes (one in stepwise mode, every remaining one in auto),
// and leaves m holding the truth read from the fleet. prior is nil on create.
func (r *canaryResource) converge(ctx context.Context, m *canaryModel, prior *canaryModel, private privateState) canaryResult {
	var out canaryResult
	ctx = tflog.SetField(ctx, "canary_id", m.ID.ValueString())
	run, cfg, diags := r.newRun(ctx, *m, prior)
	out.diags.Append(diags...)
	if out.diags.HasError() {
		return out
	}
	out.diags.Append(r.bindOwner(ctx, run, private, m.ID.ValueString())...)
	if m.PlannedStep.IsUnknown() {
		m.PlannedStep = types.StringNull() // planned while user_ids or steps were unknown
	}
	if prior != nil {
		m.LastAnalysis, m.LastAbort = prior.LastAnalysis, prior.LastAbort
	} else {
		m.LastAnalysis, m.LastAbort = types.ObjectNull(lastAnalysisAttrTypes), types.ObjectNull(lastAbortAttrTypes)
	}
	engines, err := rollout.Fleet(ctx, r.data.Client, run.ScopeWithRecorded())
	if err != nil {
		out.diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	// The plan's rules again, on fresh reads. The apply holds what its plan held: what the
	// refresh before it held (none on create).
	check := upgrade.CheckCanary(run.Catalog(), engines, cfg.users, cfg.version, cfg.allowMajor)
	if len(check.Errors) > 0 {
		out.diags.Append(problemDiags(check.Errors, true)...)
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	held, diags := getHeld(ctx, private, cfg.users)
	out.diags.Append(diags...)
	cfg.held = held
	cfg.users = run.Hold(cfg.held)
	if prior == nil {
		run.KeepOnVersion(engines)
	}
	run.Observe(ctx, engines)
	cfg.users = run.WidenScope()
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(run.MovedList()))
	targets := upgrade.Targets(cfg.mode, cfg.steps, cfg.holdAt, cur)
	if len(cfg.users) == 0 {
		targets = nil // every user is held: nothing to walk
	}
	// An engine that moved above version since the plan is refused only when this apply would
	// move it: moving it would be a downgrade.
	if since := upgrade.MovedAbove(upgrade.PlanSteps(run.Seed(), cfg.users, targets, run.MovedList()), upgrade.NewlyHeld(check.Held,
		cfg.held)); len(since) > 0 {
		out.diags.Append(problemDiags([]upgrade.Problem{upgrade.CanaryWouldDowngrade(cfg.version, since)}, true)...)
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	tflog.Info(ctx, "canary apply", map[string]any{"current_percent": cur, "targets": fmt.Sprint(targets), "mode": cfg.mode})
	rejudge := unjudged(cur, m.LastAnalysis, run.Stable(), run.MovedList(), cfg.version)
	if rejudge {
		tflog.Info(ctx, "the step the fleet stands at was never judged: baking and analysing it again", map[string]any{"current_percent": cur})
	}
	err = run.Advance(ctx, cur, targets, rejudge)
	out.touched = true
	var sf *rollout.StepFailure
	switch {
	case err == nil:
	case rollout.IsInterrupted(err):
		var ie *rollout.InterruptedError
		errors.As(err, &ie)
		msg := fmt.Sprintf("The apply stopped (%v) before canary %s finished its step. State records what the engines run: %d users on %s, "+
			"their stable versions and every snapshot taken. "+
			"Operations still running on the control plane keep running; the next apply attaches to them and resumes from the fleet, "+
			"never upgrading an engine twice.",
			ie.Cause, m.ID.ValueString(), len(run.MovedList()), cfg.version)
		if prior == nil {
			// An error on create would taint the canary and plan a rollback of the progress made.
			out.diags.AddWarning("Canary Step Interrupted", msg)
		} else {
			out.diags.AddError("Canary Step Interrupted", msg)
		}
	case errors.As(err, &sf):
		m.LastAbort = abortObject(sf, time.Now())
		out.diags.AddError("Canary Aborted", abortDetail(m.ID.ValueString(), cfg.version, sf))
		return r.finish(m, run, cfg, engines, prior, true, out)
	default:
		var we *rollout.WindowError
		if errors.As(err, &we) {
			out.diags.AddAttributeError(path.Root("rollout_window"), "Canary Step Not Started", err.Error()+".")
			break
		}
		out.diags.AddError("Canary Step Failed", fmt.Sprintf("Canary %s could not prepare its next step: %s.\n\nNo engine moved in this step; "+
			"state records what the engines run. Fix the cause, then apply again.",
			m.ID.ValueString(), errText(err)))
	}
	return r.finish(m, run, cfg, engines, prior, false, out)
}

func (r *canaryResource) finish(m *canaryModel, run *rollout.Canary, cfg canaryConfig, engines map[string]api.Engine, prior *canaryModel,
	aborted bool, out canaryResult) canaryResult {
	if prior != nil && !aborted && len(run.MovedList()) == 0 && prior.Phase.ValueString() == upgrade.PhaseAborted {
		aborted = true
	}
	fillProgress(m, run, cfg, engines, aborted)
	return out
}
