package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var (
	_ resource.ResourceWithConfigure   = (*releaseResource)(nil)
	_ resource.ResourceWithImportState = (*releaseResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*releaseResource)(nil)
)

// NewReleaseResource is the engine_release resource.
func NewReleaseResource() resource.Resource { return &releaseResource{} }

// releaseResource manages the version one engine runs.
type releaseResource struct {
	data *providerData
}

// privateReleaseOp is the private-state key of an upgrade an interrupted apply left running.
const privateReleaseOp = "release_operation"

func (r *releaseResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_release"
}

func (r *releaseResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (r *releaseResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !r.claimRelease(ctx, &plan, resp.Private, &resp.Diagnostics) {
		return
	}
	out := r.converge(ctx, &plan, nil, resp.Private)
	plan.settleRunningVersion()
	resp.Diagnostics.Append(out.diags...)
	switch {
	case out.interrupted:
		// An error here would taint the release and plan a rollback-and-redo; instead record
		// it with the attempt in progress, and let the next plan attach to the operation.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	case out.diags.HasError() && !plan.PreviousVersion.IsUnknown() && !plan.Version.Equal(plan.PreviousVersion):
		// The upgrade failed and the engine is not back on the version this create found (the
		// rollback failed, or was off): keep the release, tainted, so that its destroy (or the
		// replacement the next apply plans) returns the engine to previous_version.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	case out.diags.HasError():
		// The engine is on the version it was found on (never started, or rolled back): nothing
		// to track, and the next plan shows the create, so the upgrade is still pending.
		r.releaseUntracked(ctx, plan, resp.Private)
	default:
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	}
}

func (r *releaseResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.updateClaims(plan, state) && !r.claimRelease(ctx, &plan, resp.Private, &resp.Diagnostics) {
		resp.State.Raw = req.State.Raw.Copy()
		return
	}
	if state.holdsDrift() && plan.Version.Equal(state.Version) && !plan.AllowDowngrade.ValueBool() {
		// The plan changes settings only (ModifyPlan kept every computed value): the engine
		// someone moved above version stays where it is.
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := r.converge(ctx, &plan, &state, resp.Private)
	plan.settleRunningVersion()
	resp.Diagnostics.Append(out.diags...)
	if out.diags.HasError() && !out.started {
		// Refused before anything started ("Engine Changed Since Plan", a rule, the window):
		// none of the refused plan took effect, neither its settings nor its planned_upgrade.
		resp.State.Raw = req.State.Raw.Copy()
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *releaseResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	userID := state.UserID.ValueString()
	if userID == "" {
		userID = state.ID.ValueString() // import
	}
	e, err := r.data.Client.GetEngine(ctx, userID)
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "engine gone; removing the release from state", map[string]any{"user_id": userID})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Engine Read Failed", err))
		return
	}
	if id := state.EngineID.ValueString(); id != "" && e.EngineID != id {
		tflog.Warn(ctx, "engine re-provisioned; the release no longer applies to it",
			map[string]any{"user_id": userID, "old_engine_id": id, "engine_id": e.EngineID})
		resp.State.RemoveResource(ctx)
		return
	}
	changed, pending := false, false
	var running *api.Operation // our operation, still running
	if op, ok, diags := r.pendingOperation(ctx, resp.Private, userID); ok || diags.HasError() {
		resp.Diagnostics.Append(diags...)
		changed, pending = true, ok
		if cur, err := r.data.Client.GetOperation(ctx, op.ID); err == nil && !cur.Done() {
			running = &cur
		} else if err == nil {
			a := lastAttemptFrom(state.LastAttempt)
			a.applyOperation(cur)
			state.LastAttempt = a.object()
			resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateReleaseOp, nil)...)
		} else if client.IsNotFound(err) {
			resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateReleaseOp, nil)...)
		}
	}
	held, adopted := state.Version.ValueString(), false
	var unjudged *releaseWatch
	if running == nil && !state.Version.IsNull() && held != e.EngineVersion {
		// This release's own update, cut off by a killed apply, is not drift: record it.
		adopted, unjudged = r.adoptKilledUpdate(ctx, &state, e, r.releaseOwner(ctx, resp.Private, userID).Token)
		changed = adopted || changed
	}
	changed = state.fillEngine(e) || changed
	changed = setOwner(&state.Owner, e) || changed
	switch {
	case unjudged != nil:
		// Not judged yet: the plan shows the upgrade, and its apply judges it (resumeWatch).
		resp.Diagnostics.Append(setPrivateJSON(ctx, resp.Private, privateReleaseWatch, unjudged)...)
		state.Version = types.StringValue(held)
	case running != nil && running.FromVersion != "":
		// The engine may already report the target while the operation boots and checks it:
		// until the operation ends, the version reached is the one it started from, so the
		// plan shows the upgrade and the apply attaches to it.
		state.Version = types.StringValue(running.FromVersion)
	case !pending && !adopted && upgrade.HoldsDrift(held, e.EngineVersion, state.AllowDowngrade.ValueBool()):
		// Someone moved the engine above the version this resource holds: running_version shows
		// it, version stays, so plans leave the engine alone instead of planning a downgrade.
		state.Version = types.StringValue(held)
	}
	if lost := r.rollbackWritesLost(ctx, &state, e, resp.Private); !lost.Equal(state.RollbackWritesLost) {
		state.RollbackWritesLost, changed = lost, true
	}
	if !state.PlannedUpgrade.IsNull() && !pending {
		// The upgrade the last plan described has been carried out (or has failed: last_attempt
		// says which); until a plan moves the version again no upgrade is planned. Keeping the
		// description would make every later plan of a fleet decode it once per engine.
		state.PlannedUpgrade, changed = types.ObjectNull(plannedUpgradeAttrTypes), true
	}
	if state.PreviousVersion.IsNull() || state.PreviousVersion.ValueString() == "" {
		state.PreviousVersion, changed = types.StringValue(e.EngineVersion), true
	}
	if changed {
		// Encoding the whole object is most of a refresh's cost in the plugin framework; the
		// state Terraform sent is already the response when the engine is as recorded.
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
	}
}

func (r *releaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.rollBack(ctx, state, req.Private, resp)
	if !resp.Diagnostics.HasError() {
		r.releaseOnDestroy(ctx, state.UserID.ValueString(), req.Private)
	}
}

// rollBack is destroy's rollback (on_destroy = "rollback"): the engine back on previous_version,
// unless another manager has taken it over.
func (r *releaseResource) rollBack(ctx context.Context, state releaseModel, priv privateState, resp *resource.DeleteResponse) {
	if state.OnDestroy.ValueString() == onDestroyKeep {
		tflog.Info(ctx, "on_destroy = keep: leaving the engine as it is", map[string]any{"user_id": state.UserID.ValueString()})
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, 30*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	userID, to := state.UserID.ValueString(), state.PreviousVersion.ValueString()
	ctx = tflog.SetField(ctx, "user_id", userID)
	if r.takenOver(ctx, userID, priv, &resp.Diagnostics) {
		return
	}
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return
	}
	// Whatever runs is waited out first (an interrupted rollback included: resuming is waiting
	// for it).
	drain, health := state.durations()
	rolled, err := r.data.driver().RollBackTo(ctx, cat, userID, to, state.PreUpgradeSnapshotID.ValueString(),
		rollout.RollbackOptions{Drain: drain, Health: health})
	switch {
	case client.IsNotFound(err):
	case err != nil:
		resp.Diagnostics.Append(rollbackFailedDiag(userID, to, err))
	case rolled.Plan.To == "":
		tflog.Info(ctx, "engine already runs the rollback target", map[string]any{"version": to})
	}
}

func rollbackFailedDiag(userID, to string, err error) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Engine Rollback Failed",
		fmt.Sprintf("Destroy could not return user %s's engine to %s: %v.\n\nThe release stays in state. Fix the cause, then run "+
			"terraform destroy again: it resumes "+
			"(a running rollback is waited for, never started twice). To drop the release without rolling back, set "+
			"on_destroy = \"keep\" and apply first.", userID, to, errText(err)))
}

func (r *releaseResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	set := func(name string, v any) {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(name), v)...)
	}
	set("id", req.ID)
	set("user_id", req.ID)
	set("auto_snapshot", false)
	set("allow_major_upgrade", false)
	set("allow_downgrade", false)
	set("drain_timeout", "30s")
	set("health_timeout", "2m")
	set("auto_rollback", true)
	set("on_destroy", onDestroyRollback)
	set("take_ownership", false)
	// Import takes the engine over, at the first apply after it (the plan shows owner changing).
	resp.Diagnostics.Append(setPrivateJSON(ctx, resp.Private, privateOwner, ownerRecord{Token: ownerToken(resourceTypeRelease, req.ID,
		r.data.manager), TakeOver: true})...)
	importRehearsalDefaults(set)
}

// fillEngine copies what the engine reports into state: the running version (so out-of-band
// changes show as drift), its schema and id. It reports whether any value changed, so a refresh
// that finds the engine as recorded can hand Terraform back the state it was given.
func (m *releaseModel) fillEngine(e api.Engine) bool {
	changed := setString(&m.ID, e.UserID)
	changed = setString(&m.UserID, e.UserID) || changed
	changed = setString(&m.Version, e.EngineVersion) || changed
	changed = setString(&m.RunningVersion, e.EngineVersion) || changed
	changed = setString(&m.EngineID, e.EngineID) || changed
	if v := types.Int64Value(int64(e.SchemaVersion)); !m.SchemaVersion.Equal(v) {
		m.SchemaVersion, changed = v, true
	}
	if m.PreUpgradeSnapshotID.IsUnknown() || (!m.PreUpgradeSnapshotID.IsNull() && m.PreUpgradeSnapshotID.ValueString() == "") {
		m.PreUpgradeSnapshotID, changed = types.StringNull(), true // none recorded: null, as every plan shows it
	}
	if m.RollbackWritesLost.IsUnknown() {
		m.RollbackWritesLost, changed = types.Int64Value(0), true
	}
	if m.PlannedUpgrade.IsUnknown() {
		m.PlannedUpgrade, changed = types.ObjectNull(plannedUpgradeAttrTypes), true
	}
	if m.LastAttempt.IsUnknown() {
		m.LastAttempt, changed = types.ObjectNull(lastAttemptAttrTypes), true
	}
	return changed
}

// holdsDrift says whether m holds an engine someone moved above version (Read keeps version then).
func (m *releaseModel) holdsDrift() bool {
	rv := m.RunningVersion.ValueString()
	return !m.RunningVersion.IsUnknown() && rv != "" && rv != m.Version.ValueString()
}

// settleRunningVersion leaves running_version null when the apply did not read where the engine
// ended up (it stopped while an operation still runs): the next refresh reads it.
func (m *releaseModel) settleRunningVersion() {
	if m.RunningVersion.IsUnknown() {
		m.RunningVersion = types.StringNull()
	}
}

// setString sets *dst to the known string v and reports whether that changed it.
func setString(dst *types.String, v string) bool {
	nv := types.StringValue(v)
	if dst.Equal(nv) {
		return false
	}
	*dst = nv
	return true
}

// applyOperation records how an upgrade operation ended.
func (a *lastAttempt) applyOperation(op api.Operation) {
	a.OperationID = op.ID
	if a.Version == "" {
		a.Version = op.ToVersion
	}
	if a.StartedAt == "" {
		a.StartedAt = rfc3339(op.CreatedAt)
	}
	switch op.Status {
	case api.OpSucceeded:
		a.Status, a.Error = attemptSucceeded, ""
	case api.OpFailed:
		a.Status, a.Error = attemptFailed, opErrorText(op)
	default:
		a.Status = attemptInProgress
	}
	if op.FinishedAt != nil {
		a.FinishedAt = rfc3339(*op.FinishedAt)
	}
}
