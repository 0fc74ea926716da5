package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
)

var (
	_ resource.ResourceWithConfigure   = (*brainSnapshotResource)(nil)
	_ resource.ResourceWithImportState = (*brainSnapshotResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*brainSnapshotResource)(nil)
)

// NewBrainSnapshotResource is the engine_brain_snapshot resource.
func NewBrainSnapshotResource() resource.Resource { return &brainSnapshotResource{} }

// brainSnapshotResource is a verified, retention-protected snapshot of one engine's brain.
type brainSnapshotResource struct {
	data *providerData
}

const (
	defaultRetentionDays = 7
	maxRetentionDays     = 3650
	// snapshotPending is the status of a snapshot whose operation was still running when the
	// apply that started it was interrupted; the next plan attaches to the operation.
	snapshotPending = "pending"
	// privateSnapshotOp is the private-state key holding the running snapshot operation.
	privateSnapshotOp = "snapshot_operation"
)

func (r *brainSnapshotResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_brain_snapshot"
}

func (r *brainSnapshotResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	stable := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A verified snapshot of one engine's brain, taken while the engine keeps taking turns (the local control plane " +
			"copies the database file at a commit a read transaction pins, or falls back to SQLite's online backup), checked with " +
			"`PRAGMA integrity_check` and a sha256, kept at least `retention_days`. This is the rollback insurance " +
			"`engine_release` and `engine_canary` rely on for snapshot-before-migrate. Destroying it deletes the " +
			"snapshot only, never the engine; inside its retention, destroy needs `force_destroy = true` applied first.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The snapshot id. Import with it.",
				Computed:            true, PlanModifiers: stable,
			},
			"user_id": schema.StringAttribute{
				MarkdownDescription: "The user whose engine's brain is snapshotted. Changing it replaces the snapshot.",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{idValidator()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text kept with the snapshot. Updates in place. Defaults to `\"\"`.",
				Optional:            true, Computed: true, Default: stringdefault.StaticString(""),
				Validators: []validator.String{stringvalidator.LengthAtMost(1024)},
			},
			"retention_days": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("Days the snapshot is protected from deletion, counted from `created_at`; the Engine docs advise "+
					"keeping pre-upgrade snapshots at least a week. Between 1 and %d. Defaults to `%d`. Updates in place (recomputes `retain_until`).",
					maxRetentionDays, defaultRetentionDays),
				Optional: true, Computed: true, Default: int64default.StaticInt64(defaultRetentionDays),
				Validators: []validator.Int64{int64validator.Between(1, maxRetentionDays)},
			},
			"force_destroy": schema.BoolAttribute{
				MarkdownDescription: "Allow destroying the snapshot before `retain_until`. It must be applied (be in state) before the " +
					"destroy is planned. Defaults to `false`. Updates in place.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"engine_id": schema.StringAttribute{MarkdownDescription: "The engine the brain belongs to.", Computed: true, PlanModifiers: stable},
			"engine_version": schema.StringAttribute{MarkdownDescription: "The version the engine ran when the snapshot was taken.",
				Computed: true, PlanModifiers: stable},
			"schema_version": schema.Int64Attribute{MarkdownDescription: "The brain schema version captured.",
				Computed: true, PlanModifiers: int64Stable()},
			"size_bytes": schema.Int64Attribute{MarkdownDescription: "Size of the snapshot file.", Computed: true, PlanModifiers: int64Stable()},
			"sha256": schema.StringAttribute{MarkdownDescription: "sha256 of the snapshot file, checked before any restore.",
				Computed: true, PlanModifiers: stable},
			"brain_writes": schema.Int64Attribute{
				MarkdownDescription: "The engine's brain write counter when the snapshot was taken: restoring it loses the writes counted after.",
				Computed:            true, PlanModifiers: int64Stable(),
			},
			"created_at": schema.StringAttribute{MarkdownDescription: "When the snapshot was taken (RFC 3339).",
				Computed: true, PlanModifiers: stable},
			"retain_until": schema.StringAttribute{
				MarkdownDescription: "`created_at` + `retention_days` (RFC 3339): before it, destroy needs `force_destroy`.",
				Computed:            true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "`verified` (integrity-checked, checksum matches), `corrupt` (the file no longer matches its sha256: " +
					"it will never be restored), `missing` (the file is gone), or `pending` (its operation was still running when an apply was " +
					"interrupted; the next apply attaches to it).",
				Computed: true, PlanModifiers: stable,
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeoutsBlock(ctx, timeouts.Opts{Create: true, Delete: true}),
		},
	}
}

func (r *brainSnapshotResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (r *brainSnapshotResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan brainSnapshotModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, 20*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	userID := plan.UserID.ValueString()
	ctx = tflog.SetField(ctx, "user_id", userID)
	if diags := r.usableEngine(ctx, userID); diags.HasError() {
		resp.Diagnostics.Append(diags...)
		return
	}
	d := r.data.driver()
	op, err := d.StartSnapshot(ctx, userID, client.NewIdempotencyKey(), api.CreateSnapshotRequest{
		Description: plan.Description.ValueString(), RetentionDays: int(plan.RetentionDays.ValueInt64()),
	})
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Brain Snapshot Not Started", err))
		return
	}
	tflog.Info(ctx, "snapshot started", map[string]any{"operation_id": op.ID, "snapshot_id": op.SnapshotID})
	snap, op, err := d.FinishSnapshot(ctx, op)
	if err != nil && ctx.Err() != nil && op.SnapshotID != "" {
		// Interrupted or out of time while the control plane works on: record the snapshot as
		// pending (an error here would taint it), so the next plan attaches instead of starting
		// a second snapshot.
		plan.pending(op)
		resp.Diagnostics.Append(setPendingOperation(ctx, resp.Private, privateSnapshotOp, op)...)
		resp.Diagnostics.AddWarning("Brain Snapshot Still Running",
			fmt.Sprintf("Snapshot %s of user %s (operation %s) had not finished when the apply stopped (%s). The "+
				"control plane keeps working on it; "+
				"it is recorded with status \"pending\" and the next terraform apply waits for it and records the result. Nothing was started twice.",
				op.SnapshotID, userID, op.ID, ctx.Err()))
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(operationErrorDiag("Brain Snapshot Failed", err))
		return
	}
	plan.fill(snap)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *brainSnapshotResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state brainSnapshotModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx = tflog.SetField(ctx, "snapshot_id", state.ID.ValueString())
	if op, ok, diags := getPendingOperation(ctx, req.Private, privateSnapshotOp); ok || diags.HasError() {
		resp.Diagnostics.Append(diags...)
		cur, err := r.data.Client.GetOperation(ctx, op.ID)
		switch {
		case client.IsNotFound(err):
			// The control plane forgot the operation; fall through to the snapshot itself.
		case err != nil:
			resp.Diagnostics.Append(clientErrorDiag("Brain Snapshot Operation Read Failed", err))
			return
		case !cur.Done():
			return // still pending: keep state; the plan shows the attach
		case cur.Status == api.OpFailed:
			resp.Diagnostics.AddWarning("Pending Brain Snapshot Failed",
				fmt.Sprintf("Snapshot operation %s for user %s failed (%s); the snapshot is removed from state and will be planned again.",
					cur.ID, cur.UserID, opErrorText(cur)))
			resp.State.RemoveResource(ctx)
			return
		}
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateSnapshotOp, nil)...)
	}
	snap, err := r.data.Client.GetSnapshot(ctx, state.ID.ValueString())
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "snapshot deleted out of band; removing from state")
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Brain Snapshot Read Failed", err))
		return
	}
	state.fill(snap)
	if state.ForceDestroy.IsNull() {
		state.ForceDestroy = types.BoolValue(false)
	}
	if snap.Status != api.SnapshotVerified {
		resp.Diagnostics.AddWarning("Brain Snapshot Is "+titleCase(snap.Status),
			fmt.Sprintf("Snapshot %s of user %s is %q: its file no longer matches the sha256 %s recorded when it was taken. "+
				"It will never be restored, and upgrades cannot rely on it. Take a new engine_brain_snapshot (for example "+
				"with terraform apply -replace).",
				snap.ID, snap.UserID, snap.Status, snap.SHA256))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *brainSnapshotResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state brainSnapshotModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	ctx = tflog.SetField(ctx, "snapshot_id", id)
	if op, ok, diags := getPendingOperation(ctx, req.Private, privateSnapshotOp); ok || diags.HasError() {
		resp.Diagnostics.Append(diags...)
		tflog.Info(ctx, "attaching to the pending snapshot operation", map[string]any{"operation_id": op.ID})
		if _, _, err := r.data.driver().FinishSnapshot(ctx, op); err != nil {
			resp.Diagnostics.Append(operationErrorDiag("Brain Snapshot Failed", err))
			return
		}
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateSnapshotOp, nil)...)
	}
	update := api.UpdateSnapshotRequest{}
	if !plan.Description.Equal(state.Description) {
		update.Description = plan.Description.ValueStringPointer()
	}
	if !plan.RetentionDays.Equal(state.RetentionDays) {
		days := int(plan.RetentionDays.ValueInt64())
		update.RetentionDays = &days
	}
	var snap api.Snapshot
	var err error
	if update.Description != nil || update.RetentionDays != nil {
		snap, err = r.data.Client.UpdateSnapshot(ctx, id, update)
	} else {
		snap, err = r.data.Client.GetSnapshot(ctx, id)
	}
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Brain Snapshot Update Failed", err))
		return
	}
	plan.fill(snap)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *brainSnapshotResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state brainSnapshotModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, 5*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if op, ok, _ := getPendingOperation(ctx, req.Private, privateSnapshotOp); ok {
		// Let a pending snapshot finish first, so deleting it leaves nothing behind.
		if _, _, err := r.data.driver().FinishSnapshot(ctx, op); err != nil && ctx.Err() != nil {
			resp.Diagnostics.Append(operationErrorDiag("Brain Snapshot Delete Interrupted", err))
			return
		}
	}
	err := r.data.Client.DeleteSnapshot(ctx, state.ID.ValueString(), state.ForceDestroy.ValueBool())
	if err != nil && !client.IsNotFound(err) {
		resp.Diagnostics.Append(clientErrorDiag("Brain Snapshot Delete Failed", err))
	}
}

func (r *brainSnapshotResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("force_destroy"), false)...)
}

func (r *brainSnapshotResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil {
		return
	}
	switch {
	case req.Plan.Raw.IsNull(): // destroy
		var state brainSnapshotModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		resp.Diagnostics.Append(retentionBlocksDestroy(state, time.Now())...)
	case req.State.Raw.IsNull(): // create
		var plan brainSnapshotModel
		resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
		if resp.Diagnostics.HasError() || plan.UserID.IsUnknown() {
			return
		}
		diags := r.usableEngine(ctx, plan.UserID.ValueString())
		resp.Diagnostics.Append(diags...)
	default: // update
		var plan, state brainSnapshotModel
		resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		if state.Status.ValueString() == snapshotPending {
			plan.unknownComputed()
		} else if created, err := time.Parse(time.RFC3339, state.CreatedAt.ValueString()); err == nil && !plan.RetentionDays.IsUnknown() {
			plan.RetainUntil = types.StringValue(created.AddDate(0, 0, int(plan.RetentionDays.ValueInt64())).UTC().Format(time.RFC3339))
		} else {
			plan.RetainUntil = types.StringUnknown()
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

// retentionBlocksDestroy fails a destroy plan of a snapshot inside its retention unless
// force_destroy = true is already in state: the plan, not the apply, is where this must show.
func retentionBlocksDestroy(state brainSnapshotModel, now time.Time) diag.Diagnostics {
	var diags diag.Diagnostics
	if state.ForceDestroy.ValueBool() {
		return diags
	}
	until, err := time.Parse(time.RFC3339, state.RetainUntil.ValueString())
	if err != nil || !now.Before(until) {
		return diags
	}
	diags.AddError("Brain Snapshot Is Inside Its Retention",
		fmt.Sprintf("Snapshot %s of user %s is retained until %s (%s from now), so it cannot be destroyed yet: it may be the only way back "+
			"from a forward-only migration. "+
			"To delete it anyway, set force_destroy = true on it and apply that first, then destroy. Nothing was changed.",
			state.ID.ValueString(), state.UserID.ValueString(), until.UTC().Format(time.RFC3339), until.Sub(now).Round(time.Minute)))
	return diags
}

// usableEngine reads an engine for a snapshot plan or create: an unknown user or a failed engine
// is an error that names the user and what to do.
func (r *brainSnapshotResource) usableEngine(ctx context.Context, userID string) diag.Diagnostics {
	e, diags := readEngine(ctx, r.data.Client, userID)
	if !diags.HasError() && e.Status == api.StatusFailed {
		diags.AddAttributeError(path.Root("user_id"), "Engine Is Failed",
			fmt.Sprintf("User %s's engine %s is failed (%s) and its brain cannot be snapshotted. Restore it from an earlier snapshot first.",
				userID, e.EngineID, engineErrorText(e)))
	}
	return diags
}

// brainSnapshotModel is engine_brain_snapshot's state.
type brainSnapshotModel struct {
	snapshotValues                // the snapshot itself, as engine_brain_snapshots lists it
	ForceDestroy   types.Bool     `tfsdk:"force_destroy"`
	Timeouts       timeouts.Value `tfsdk:"timeouts"`
}

func (m *brainSnapshotModel) fill(s api.Snapshot) {
	m.snapshotValues = snapshotFields(s)
}

// pending records a snapshot whose operation is still running: what is known now, zero values
// for what only the finished snapshot can tell.
func (m *brainSnapshotModel) pending(op api.Operation) {
	m.ID = types.StringValue(op.SnapshotID)
	m.Status = types.StringValue(snapshotPending)
	for _, v := range []*types.String{&m.EngineID, &m.EngineVersion, &m.SHA256, &m.CreatedAt, &m.RetainUntil} {
		*v = types.StringValue("")
	}
	m.EngineVersion = types.StringValue(op.FromVersion)
	for _, v := range []*types.Int64{&m.SchemaVersion, &m.SizeBytes, &m.BrainWrites} {
		*v = types.Int64Value(0)
	}
}

func (m *brainSnapshotModel) unknownComputed() {
	for _, v := range []*types.String{&m.EngineID, &m.EngineVersion, &m.SHA256, &m.CreatedAt, &m.RetainUntil, &m.Status} {
		*v = types.StringUnknown()
	}
	for _, v := range []*types.Int64{&m.SchemaVersion, &m.SizeBytes, &m.BrainWrites} {
		*v = types.Int64Unknown()
	}
}

// operationErrorDiag renders a failed operation (with its step and code) or a client error.
func operationErrorDiag(summary string, err error) diag.Diagnostic {
	var oe *rollout.OperationError
	if errors.As(err, &oe) {
		return diag.NewErrorDiagnostic(summary, oe.Error()+". Nothing else was changed; see the control plane's operation "+oe.Op.ID+" for its "+
			"steps.")
	}
	return clientErrorDiag(summary, err)
}

func opErrorText(op api.Operation) string {
	if op.Error == nil {
		return "no error detail"
	}
	return op.Error.Code + ": " + op.Error.Message
}

func engineErrorText(e api.Engine) string { return rollout.EngineErrorText(e) }
