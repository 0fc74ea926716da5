package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// ModifyPlan decides at plan everything that can be known then: the upgrade path and its risks
// (as warnings, and as planned_upgrade for policy tools), the rule violations (as errors), and
// for a destroy the rollback and its data-loss window. A plan with no version change makes no
// API call here, so refresh's single GET is the whole cost of a quiet plan.
func (r *releaseResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil {
		return
	}
	if req.Plan.Raw.IsNull() {
		var state releaseModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if !resp.Diagnostics.HasError() {
			resp.Diagnostics.Append(r.planDestroy(ctx, state, r.releaseOwner(ctx, req.Private, state.UserID.ValueString()).Token)...)
		}
		return
	}
	_, pending, _ := getPendingOperation(ctx, req.Private, privateReleaseOp)
	pending = watchPending(ctx, req.Private, &resp.Diagnostics) || pending
	claim := claimPending(ctx, req.Private)
	if !pending && !claim && !req.State.Raw.IsNull() && req.Plan.Raw.Equal(req.State.Raw) {
		// Nothing changes and no interrupted operation is left to resume: the proposed plan is
		// already the quiet plan below. Decoding and re-encoding the whole object is most of a
		// no-change plan's cost in the plugin framework, so skip it.
		resp.Diagnostics.Append(r.heldDriftWarning(ctx, req)...)
		return
	}
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var state *releaseModel
	if !req.State.Raw.IsNull() {
		state = &releaseModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	// The engine above version because of our own operation (still running, or an upgrade not yet
	// judged) is no drift: the plan shows that upgrade, and the apply attaches to it.
	drifted := state != nil && state.holdsDrift() && !pending
	// A drifted engine with allow_downgrade set is planned from where it runs: back to version.
	goBack := drifted && plan.AllowDowngrade.ValueBool()
	if state != nil && plan.Version.Equal(state.Version) && !pending && !goBack {
		// Quiet: nothing to upgrade, so every computed value stays as it is.
		if drifted {
			resp.Diagnostics.Append(r.driftWarning(ctx, *state)...)
		}
		plan.keepComputed(*state)
		plan.Owner = r.plannedOwner(plan, state.Owner, claim)
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	// Only refresh moves rollback_writes_lost (it follows the engine's writes): a plan keeps it,
	// so it never shows as a change, and an apply returns it as planned.
	plan.RollbackWritesLost = types.Int64Value(0)
	if state != nil {
		plan.RollbackWritesLost = state.RollbackWritesLost
	}
	if plan.UserID.IsUnknown() || plan.Version.IsUnknown() {
		// Values only apply knows: leave the other computed ones unknown.
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("rollback_writes_lost"), plan.RollbackWritesLost)...)
		return
	}
	r.planUpgrade(ctx, req, resp, &plan, state, pending, drifted)
}

// keepComputed copies every computed value from state: the quiet plan.
func (m *releaseModel) keepComputed(state releaseModel) {
	m.ID, m.EngineID, m.PreviousVersion = state.ID, state.EngineID, state.PreviousVersion
	m.SchemaVersion, m.RunningVersion = state.SchemaVersion, state.RunningVersion
	m.PreUpgradeSnapshotID = nullIfEmpty(state.PreUpgradeSnapshotID)
	m.PlannedUpgrade, m.LastAttempt = state.PlannedUpgrade, state.LastAttempt
	m.RollbackWritesLost = state.RollbackWritesLost
}

// planUpgrade decides the upgrade from the engine as state (or, on create, the control plane)
// has it: the rules as errors and warnings, and the computed values the apply will set.
func (r *releaseResource) planUpgrade(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse,
	plan *releaseModel,
	state *releaseModel, pending, drifted bool) {
	userID := plan.UserID.ValueString()
	e, diags := readEngine(ctx, r.data.Client, userID)
	resp.Diagnostics.Append(diags...)
	if diags.HasError() {
		return
	}
	owner := r.releaseOwner(ctx, req.Private, userID)
	resp.Diagnostics.Append(ownerPlanDiags(e, owner, plan.TakeOwnership.ValueBool(), r.data.manager)...)
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return
	}
	if state != nil {
		// Terraform runs ModifyPlan again at apply; deciding from the refreshed state (not from
		// a live read that an operation may have moved meanwhile) keeps both plans the same.
		e.EngineVersion, e.SchemaVersion = state.Version.ValueString(), int(state.SchemaVersion.ValueInt64())
		if drifted {
			e.EngineVersion = state.RunningVersion.ValueString()
		}
		plan.PreUpgradeSnapshotID = nullIfEmpty(state.PreUpgradeSnapshotID)
	}
	var resumed *api.Operation // an earlier create's operation that this create takes over
	if state == nil {
		plan.PreUpgradeSnapshotID = types.StringNull()
		resumed = r.planCreateFrom(ctx, resp, cat, &e, userID, plan.Version.ValueString(), owner.Token)
	}
	timeout, _ := plan.Timeouts.Update(ctx, 30*time.Minute)
	intent := upgrade.ReleaseIntent{Engine: e, Target: plan.Version.ValueString(), AutoSnapshot: plan.AutoSnapshot.ValueBool(),
		AllowMajor: plan.AllowMajorUpgrade.ValueBool(), AllowDowngrade: plan.AllowDowngrade.ValueBool(), Deadline: time.Now().Add(timeout)}
	if state != nil {
		intent.PreviousVersion = state.PreviousVersion.ValueString()
		if drifted {
			intent.Held = state.Version.ValueString()
		}
	}
	resp.Diagnostics.Append(r.loadSnapshots(ctx, plan, &intent)...)
	if resp.Diagnostics.HasError() {
		return
	}
	dec := upgrade.PlanRelease(cat, intent)
	resp.Diagnostics.Append(problemDiags(dec.Errors, true)...)
	resp.Diagnostics.Append(problemDiags(dec.Warnings, false)...)
	resp.Diagnostics.Append(plan.watchPlanDiags(ctx, userID, e.EngineVersion, dec.Action, state == nil)...)
	if dec.Action != upgrade.ActionNone {
		if w, err := plan.window(); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("rollout_window"), "Invalid Rollout Window", err.Error())
		} else if w != nil && !w.Contains(time.Now()) {
			resp.Diagnostics.AddAttributeWarning(path.Root("rollout_window"), "Outside The Rollout Window",
				fmt.Sprintf("It is %s, outside the rollout window %s: applying now will refuse to start the upgrade of user %s's "+
					"engine. The window next opens at %s.",
					time.Now().UTC().Format(time.RFC3339), w.String(), userID, w.NextOpening(time.Now()).Format(time.RFC3339)))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	plan.setPlanned(cat, e, dec, intent, state, pending, resumed)
	plan.PlannedUpgrade = plan.planRehearsal(ctx, r.data.Client, e, dec, &resp.Diagnostics)
	plan.Owner = types.StringValue(r.data.manager)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

// planCreateFrom adjusts e, on create, to what the first of the apply's two plans saw: when
// another run is moving the engine to version, the version that operation started from; and
// returns an earlier create's operation this create takes over (a warning says so), or nil.
func (r *releaseResource) planCreateFrom(ctx context.Context, resp *resource.ModifyPlanResponse, cat *upgrade.Catalog, e *api.Engine,
	userID, version, token string) *api.Operation {
	// A create is planned twice in one apply too, with no state to decide from. Planning from a
	// half-moved engine would make the two plans differ, which Terraform reports as a provider
	// bug instead of the wait it is.
	if e.CurrentOperationID != "" {
		if op, err := r.data.Client.GetOperation(ctx, e.CurrentOperationID); err == nil && !op.Done() &&
			(op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == version {
			if from, ok := cat.Get(op.FromVersion); ok {
				e.EngineVersion, e.SchemaVersion = from.Version, from.SchemaVersion
			}
		}
		return nil
	}
	op, ok := r.interruptedCreate(ctx, userID, version, token)
	if !ok {
		return nil
	}
	resp.Diagnostics.AddWarning("Interrupted Create Found", fmt.Sprintf("An earlier create of this release started "+
		"operation %s (%s %s -> %s, %s) on user %s's engine and stopped before it could save state. "+
		"Applying takes the rollback target from it: previous_version = %q and the snapshot it named (%q).",
		op.ID, op.Kind, op.FromVersion, op.ToVersion, op.Status, userID, op.FromVersion, op.SnapshotID))
	return &op
}

// setPlanned sets the computed values the apply will reach for decision dec, unknown where only
// the apply can know them.
func (m *releaseModel) setPlanned(cat *upgrade.Catalog, e api.Engine, dec upgrade.ReleaseDecision, intent upgrade.ReleaseIntent,
	state *releaseModel,
	pending bool, resumed *api.Operation) {
	plan := m
	plan.ID = types.StringValue(plan.UserID.ValueString())
	plan.EngineID = types.StringValue(e.EngineID)
	switch {
	case state != nil:
		plan.PreviousVersion = state.PreviousVersion
	case resumed != nil:
		plan.PreviousVersion = types.StringValue(resumed.FromVersion)
	default:
		plan.PreviousVersion = types.StringValue(e.EngineVersion)
	}
	plan.SchemaVersion, plan.RunningVersion = types.Int64Value(int64(e.SchemaVersion)), types.StringValue(e.EngineVersion)
	if v, ok := cat.Get(plan.Version.ValueString()); ok && dec.Action != upgrade.ActionNone {
		// The apply says where the engine ends up (a failed gate rolls it back).
		plan.SchemaVersion, plan.RunningVersion = types.Int64Value(int64(v.SchemaVersion)), types.StringUnknown()
	}
	snap := types.StringValue(plan.SnapshotID.ValueString())
	switch {
	case plan.SnapshotID.IsUnknown() || dec.TakeSnapshot:
		snap = types.StringUnknown()
	case dec.Action == upgrade.ActionRestore && plan.SnapshotID.ValueString() == "" && intent.RestoreSnapshot != nil:
		snap = types.StringValue(intent.RestoreSnapshot.ID)
	}
	if dec.Action == upgrade.ActionUpgrade && dec.Path.RequiresSnapshot {
		plan.PreUpgradeSnapshotID = nullIfEmpty(snap)
	}
	if pending {
		// An interrupted apply's operation: apply attaches to it and then knows these.
		plan.SchemaVersion, plan.PreUpgradeSnapshotID, plan.RunningVersion = types.Int64Unknown(), types.StringUnknown(), types.StringUnknown()
	}
	if resumed != nil {
		plan.PreUpgradeSnapshotID = optionalString(resumed.SnapshotID)
		if dec.Action != upgrade.ActionNone || resumed.Status != api.OpSucceeded {
			// A failed operation is recovered from at apply, which may take a new snapshot.
			plan.SchemaVersion, plan.PreUpgradeSnapshotID = types.Int64Unknown(), types.StringUnknown()
		}
	}
	plan.PlannedUpgrade = plannedUpgradeObject(dec.Action, dec.Path, snap)
	switch {
	case dec.Action != upgrade.ActionNone || pending || resumed != nil:
		plan.LastAttempt = types.ObjectUnknown(lastAttemptAttrTypes)
	case state != nil:
		plan.LastAttempt = state.LastAttempt
	default:
		plan.LastAttempt = types.ObjectNull(lastAttemptAttrTypes)
	}
}

// heldDriftWarning is the no-change plan's warning for an engine someone moved above version
// (state's running_version differs from version); it reads only those two attributes unless so.
func (r *releaseResource) heldDriftWarning(ctx context.Context, req resource.ModifyPlanRequest) diag.Diagnostics {
	var m releaseModel
	diags := req.State.GetAttribute(ctx, path.Root("running_version"), &m.RunningVersion)
	diags.Append(req.State.GetAttribute(ctx, path.Root("version"), &m.Version)...)
	if diags.HasError() || !m.holdsDrift() {
		return diags
	}
	diags.Append(req.State.GetAttribute(ctx, path.Root("user_id"), &m.UserID)...)
	return append(diags, r.driftWarning(ctx, m)...)
}

// driftWarning warns that m's engine runs above version and the plan leaves it there. The way
// back comes from the (cached) catalog, for whether it restores a snapshot.
func (r *releaseResource) driftWarning(ctx context.Context, m releaseModel) diag.Diagnostics {
	held, running := m.Version.ValueString(), m.RunningVersion.ValueString()
	var back api.UpgradePath
	if cat, err := r.data.Catalog(ctx); err == nil {
		back, _ = cat.Path(running, held)
	}
	return problemDiags([]upgrade.Problem{upgrade.DriftAbove(m.UserID.ValueString(), held, running, back)}, false)
}

// planDestroy spells out what destroying a release will do: which version the engine returns to,
// which snapshot is restored, taken when, and how many brain writes since then will be lost; and
// fails the plan when the rollback cannot be done.
func (r *releaseResource) planDestroy(ctx context.Context, state releaseModel, token string) diag.Diagnostics {
	var diags diag.Diagnostics
	userID, to := state.UserID.ValueString(), state.PreviousVersion.ValueString()
	if state.OnDestroy.ValueString() == onDestroyKeep || to == "" {
		return diags
	}
	e, err := r.data.Client.GetEngine(ctx, userID)
	if client.IsNotFound(err) {
		return diags
	}
	if err != nil {
		diags.Append(clientErrorDiag("Engine Read Failed", err))
		return diags
	}
	if destroyLeavesAlone(e, token, &diags) {
		return diags
	}
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return diags
	}
	var snap *api.Snapshot
	if id := state.PreUpgradeSnapshotID.ValueString(); id != "" {
		if s, err := r.data.Client.GetSnapshot(ctx, id); err == nil {
			snap = &s
		} else if !client.IsNotFound(err) {
			diags.Append(clientErrorDiag("Snapshot Read Failed", err))
			return diags
		}
	}
	return destroyPlanDiags(cat, e, to, state.PreUpgradeSnapshotID.ValueString(), snap)
}

// destroyPlanDiags is the destroy plan's verdict for a release: nothing, a warning describing the
// rollback (and its data loss), or an error when the snapshot it needs is gone or corrupt.
func destroyPlanDiags(cat *upgrade.Catalog, e api.Engine, to, snapshotID string, snap *api.Snapshot) diag.Diagnostics {
	var diags diag.Diagnostics
	if e.EngineVersion == to && e.Status == api.StatusRunning {
		return diags
	}
	rb, err := upgrade.PlanRollback(cat, e, to, snapshotID)
	if err != nil {
		diags.AddError("Engine Rollback Impossible",
			fmt.Sprintf("Destroying this release would roll user %s's engine back from %s to %s, but %v. To remove the release and leave the "+
				"engine on %s, set on_destroy = \"keep\" and apply first; to go back anyway, restore a snapshot taken on %s.",
				e.UserID, e.EngineVersion, to, err, e.EngineVersion, to))
		return diags
	}
	if !rb.Restore {
		diags.AddWarning("Destroy Rolls The Engine Back",
			fmt.Sprintf("Destroying this release returns user %s's engine from %s to %s. The brain schema does not change, so no data is lost.",
				e.UserID, e.EngineVersion, to))
		return diags
	}
	if snap == nil || snap.Status != api.SnapshotVerified {
		status := "gone"
		if snap != nil {
			status = snap.Status
		}
		diags.AddError("Rollback Snapshot Unusable",
			fmt.Sprintf("Destroying this release must restore snapshot %s to bring user %s's engine back from %s to %s (the brain schema "+
				"moved), but that snapshot is %s. "+
				"Nothing was changed. Set on_destroy = \"keep\" and apply to drop the release without rolling back, or restore the engine from "+
				"another verified snapshot first.",
				snapshotID, e.UserID, e.EngineVersion, to, status))
		return diags
	}
	diags.AddWarning("Destroy Restores A Snapshot And Loses Data",
		fmt.Sprintf("Destroying this release rolls user %s's engine back from %s to %s by restoring snapshot %s, taken %s. %d brain "+
			"writes made since then will be lost.",
			e.UserID, e.EngineVersion, to, snap.ID, snap.CreatedAt.UTC().Format(time.RFC3339), upgrade.WritesSince(e, *snap)))
	return diags
}

// nullIfEmpty is v, or null when v is the empty string: "no snapshot" is null in every plan.
func nullIfEmpty(v types.String) types.String {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() == "" {
		return types.StringNull()
	}
	return v
}
