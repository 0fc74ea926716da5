package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var (
	_ resource.ResourceWithConfigure   = (*rehearsalResource)(nil)
	_ resource.ResourceWithImportState = (*rehearsalResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*rehearsalResource)(nil)
)

// NewRehearsalResource is the engine_rehearsal resource.
func NewRehearsalResource() resource.Resource { return &rehearsalResource{} }

// rehearsalResource is an upgrade rehearsed on a staging engine booted on a copy of the brain.
type rehearsalResource struct {
	data *providerData
}

// rehearsalKeyPrefix starts the Idempotency-Key of every rehearsal this resource starts; the
// next part is a digest of the request, so an apply killed before it saved state finds the
// rehearsal it started (rehearsalToAdopt) instead of starting a second staging engine.
const rehearsalKeyPrefix = "engine-rehearsal-"

func (r *rehearsalResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_rehearsal"
}

func (r *rehearsalResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

// request is the control plane request the configuration asks for.
func (m rehearsalModel) request() api.RehearsalRequest {
	cfg := upgrade.AnalysisConfig{BaselineTolerance: defaultBaselineTolerance, MaxEvalRegression: defaultMaxEvalRegression}
	window := readAnalysis(m.Analysis, &cfg, 5*time.Minute)
	if !m.Analysis.IsNull() && !m.Analysis.IsUnknown() {
		if v, ok := m.Analysis.Attributes()["max_eval_regression"].(types.Float64); ok && !v.IsNull() && !v.IsUnknown() {
			cfg.MaxEvalRegression = v.ValueFloat64()
		}
	}
	req := api.RehearsalRequest{
		Version: m.Version.ValueString(), ReplayTurns: int(m.ReplayTurns.ValueInt64()), EvalSuite: m.EvalSuite.ValueString(),
		MetricsWindowSeconds: int(window / time.Second), KeepEngine: m.KeepEngine.ValueBool(),
		Analysis: api.RehearsalAnalysis{MaxNewWarningKinds: cfg.MaxNewWarningKinds, BaselineTolerance: cfg.BaselineTolerance,
			MaxEvalRegression: cfg.MaxEvalRegression},
	}
	if !m.SnapshotID.IsUnknown() {
		req.SnapshotID = m.SnapshotID.ValueString()
	}
	for _, row := range upgrade.Metrics {
		if v := row.Threshold(cfg); v != nil {
			switch row.Limit {
			case "max_error_rate":
				req.Analysis.MaxErrorRate = v
			case "max_p99_latency_ms":
				req.Analysis.MaxP99LatencyMS = v
			case "min_cache_hit_ratio":
				req.Analysis.MinCacheHitRatio = v
			}
		}
	}
	return req
}

// keyDigest is the part of the Idempotency-Key that names what was asked for.
func keyDigest(userID string, req api.RehearsalRequest) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(append([]byte(userID+"\x00"), b...))
	return rehearsalKeyPrefix + hex.EncodeToString(sum[:6]) + "-"
}

func (r *rehearsalResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan rehearsalModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, 60*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	userID := plan.UserID.ValueString()
	ctx = tflog.SetField(ctx, "user_id", userID)
	body := plan.request()
	prefix := keyDigest(userID, body)
	op, adopted, err := r.rehearsalToAdopt(ctx, userID, prefix)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Rehearsal Not Started", err))
		return
	}
	if adopted {
		resp.Diagnostics.AddWarning("Interrupted Rehearsal Found", fmt.Sprintf("An earlier apply started rehearsal operation %s on user %s's "+
			"engine with this configuration "+
			"and stopped before it could save state; this apply attaches to it instead of starting a second staging engine.", op.ID, userID))
	} else if op, err = r.data.driver().StartRehearsal(ctx, userID, prefix+client.NewIdempotencyKey(), body); err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Rehearsal Not Started", err))
		return
	}
	tflog.Info(ctx, "rehearsal started", map[string]any{"operation_id": op.ID, "rehearsal_id": op.Result.RehearsalID})
	r.finish(ctx, op.Result.RehearsalID, op, &plan, &resp.Diagnostics)
	if plan.ID.IsUnknown() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// rehearsalToAdopt finds the rehearsal an apply killed before it saved state started with this
// configuration: one still running, or a passed one whose staging engine it kept.
func (r *rehearsalResource) rehearsalToAdopt(ctx context.Context, userID, prefix string) (api.Operation, bool, error) {
	rs, err := r.data.Client.ListRehearsals(ctx, userID)
	if err != nil {
		return api.Operation{}, false, err
	}
	for _, reh := range rs {
		if reh.Status != api.RehearsalRunning && reh.StagingStatus != api.StagingRunning {
			continue
		}
		op, err := r.data.Client.GetOperation(ctx, reh.OperationID)
		if err != nil {
			return op, false, err
		}
		if strings.HasPrefix(op.IdempotencyKey, prefix) {
			return op, true, nil
		}
	}
	return api.Operation{}, false, nil
}

// finish waits for the rehearsal's operation and records the rehearsal in m. A failed verdict
// or a rehearsal that could not run is an error naming each failed check; an apply cut off
// while it runs records it as running, so the next apply attaches.
func (r *rehearsalResource) finish(ctx context.Context, id string, op api.Operation, m *rehearsalModel, diags *diag.Diagnostics) {
	done, err := r.data.driver().Wait(ctx, op)
	reh, gerr := r.data.Client.GetRehearsal(context.WithoutCancel(ctx), id)
	if gerr != nil {
		diags.Append(clientErrorDiag("Rehearsal Read Failed", gerr))
		return
	}
	m.fill(reh)
	if err != nil && !done.Done() {
		diags.AddWarning("Rehearsal Still Running", fmt.Sprintf("Rehearsal %s of user %s (operation %s) had not finished when the apply stopped "+
			"(%v). "+
			"The control plane keeps running it; it is recorded with status \"running\" and the next terraform apply waits for its verdict. "+
			"Nothing was started twice.",
			reh.ID, reh.UserID, done.ID, err))
		return
	}
	diags.Append(rehearsalDiags(reh)...)
}

// rehearsalDiags is the error of a rehearsal that did not pass.
func rehearsalDiags(reh api.Rehearsal) diag.Diagnostics {
	var diags diag.Diagnostics
	switch reh.Status {
	case api.RehearsalFailed:
		lines := make([]string, len(reh.FailedChecks))
		for i, c := range reh.FailedChecks {
			lines[i] = "- " + c.Detail
		}
		diags.AddError("Rehearsal Failed", fmt.Sprintf("Rehearsal %s of user %s's upgrade %s -> %s failed %d checks on its staging engine:\n%s\n"+
			"The staging engine and its brain were removed; the source engine was not touched. Do not upgrade to %s on this evidence: fix the "+
			"cause or pick another "+
			"version, then rehearse again (terraform apply replaces this "+
			"rehearsal).", reh.ID, reh.UserID, reh.FromVersion, reh.ToVersion, len(lines), strings.Join(lines, "\n"), reh.ToVersion))
	case api.RehearsalErrored:
		msg := "no error detail"
		if reh.Error != nil {
			msg = reh.Error.Code + ": " + reh.Error.Message
		}
		diags.AddError("Rehearsal Could Not Run", fmt.Sprintf("Rehearsal %s of user %s's upgrade %s -> %s stopped without a verdict (%s). "+
			"Nothing is left running and "+
			"the source engine was not touched; fix the cause and apply again.", reh.ID, reh.UserID, reh.FromVersion, reh.ToVersion, msg))
	}
	return diags
}

func (r *rehearsalResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state rehearsalModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	reh, err := r.data.Client.GetRehearsal(ctx, state.ID.ValueString())
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "rehearsal gone from the control plane; removing from state")
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Rehearsal Read Failed", err))
		return
	}
	state.fill(reh)
	if state.ReplayTurns.IsNull() {
		// Imported: the request's own settings are not part of the record.
		state.ReplayTurns, state.KeepEngine = types.Int64Value(defaultReplayTurns), types.BoolValue(reh.KeepEngine)
		if reh.EvalSuite != "" {
			state.EvalSuite = types.StringValue(reh.EvalSuite)
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update attaches to a rehearsal an interrupted apply left running, and tears the staging engine
// down when keep_engine is turned off.
func (r *rehearsalResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state rehearsalModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	if state.Status.ValueString() == api.RehearsalRunning {
		r.finish(ctx, id, api.Operation{ID: state.OperationID.ValueString(), UserID: state.UserID.ValueString(), Kind: api.OpRehearsal}, &plan,
			&resp.Diagnostics)
	}
	if !plan.KeepEngine.ValueBool() && state.KeepEngine.ValueBool() {
		if err := r.data.Client.DeleteRehearsal(ctx, id); err != nil && !client.IsNotFound(err) {
			resp.Diagnostics.Append(clientErrorDiag("Staging Engine Not Removed", err))
			return
		}
	}
	reh, err := r.data.Client.GetRehearsal(ctx, id)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Rehearsal Read Failed", err))
		return
	}
	plan.fill(reh)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete stops the staging engine and deletes its brain (waiting out a rehearsal still running).
func (r *rehearsalResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state rehearsalModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, 10*time.Minute)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := state.ID.ValueString()
	for {
		err := r.data.Client.DeleteRehearsal(ctx, id)
		if err == nil || client.IsNotFound(err) {
			return
		}
		opID, running := client.OperationInProgress(err)
		if !running {
			resp.Diagnostics.Append(clientErrorDiag("Rehearsal Delete Failed", err))
			return
		}
		if _, err := r.data.driver().Wait(ctx, api.Operation{ID: opID, UserID: state.UserID.ValueString(),
			Kind: api.OpRehearsal}); err != nil && ctx.Err() != nil {
			resp.Diagnostics.Append(clientErrorDiag("Rehearsal Delete Interrupted", err))
			return
		}
	}
}

func (r *rehearsalResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}

// ModifyPlan checks at plan what can be known then: the engine exists and runs, the version is
// an upgrade of it, the snapshot is this engine's. A rehearsal left running plans an attach.
func (r *rehearsalResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan rehearsalModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !req.State.Raw.IsNull() {
		var state rehearsalModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		switch {
		case len(resp.RequiresReplace) > 0:
			return // a new rehearsal: its values are known after apply
		case state.Status.ValueString() == api.RehearsalRunning:
			plan.unknownComputed()
			plan.ID = state.ID
		default:
			// A record: nothing changes but the staging engine, torn down when keep_engine is
			// turned off.
			plan.rehearsalValues = state.rehearsalValues
			if !plan.KeepEngine.Equal(state.KeepEngine) {
				plan.StagingURL = types.StringUnknown()
			}
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if plan.UserID.IsUnknown() || plan.Version.IsUnknown() {
		return
	}
	resp.Diagnostics.Append(r.checkPlan(ctx, plan)...)
}

func (r *rehearsalResource) checkPlan(ctx context.Context, plan rehearsalModel) diag.Diagnostics {
	userID, version := plan.UserID.ValueString(), plan.Version.ValueString()
	e, diags := readEngine(ctx, r.data.Client, userID)
	if diags.HasError() {
		return diags
	}
	if e.Status == api.StatusFailed {
		diags.AddAttributeError(path.Root("user_id"), "Engine Is Failed", fmt.Sprintf("User %s's engine is failed (%s): there is no running "+
			"engine to rehearse an upgrade of. Restore it first.", userID, engineErrorText(e)))
		return diags
	}
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return diags
	}
	p, err := cat.Path(e.EngineVersion, version)
	switch {
	case err != nil:
		diags.AddAttributeError(path.Root("version"), "Unknown Version", err.Error())
	case p.Kind == upgrade.KindNone || p.Kind == upgrade.KindDowngrade:
		diags.AddAttributeError(path.Root("version"), "Not An Upgrade", fmt.Sprintf("User %s's engine runs %s; a rehearsal rehearses an upgrade "+
			"to a newer version, and %s is not one. "+
			"Set version to the version you mean to upgrade to.", userID, e.EngineVersion, version))
	}
	if id := plan.SnapshotID.ValueString(); id != "" && !plan.SnapshotID.IsUnknown() {
		sn, err := r.data.Client.GetSnapshot(ctx, id)
		switch {
		case client.IsNotFound(err):
			diags.AddAttributeError(path.Root("snapshot_id"), "Snapshot Not Found", fmt.Sprintf("There is no snapshot %s. Name a verified snapshot "+
				"of user %s's engine, or leave snapshot_id out to take one.", id, userID))
		case err != nil:
			diags.Append(clientErrorDiag("Snapshot Read Failed", err))
		case sn.UserID != userID:
			diags.AddAttributeError(path.Root("snapshot_id"), "Snapshot Of Another Engine", fmt.Sprintf("Snapshot %s is of user %s's engine, not "+
				"%s's: a rehearsal must run on a copy of this engine's brain.", id, sn.UserID, userID))
		case sn.Status != api.SnapshotVerified:
			diags.AddAttributeError(path.Root("snapshot_id"), "Snapshot Not Verified", fmt.Sprintf("Snapshot %s is %s: it cannot be copied for a "+
				"rehearsal. Take a new one.", id, sn.Status))
		}
	}
	return diags
}
