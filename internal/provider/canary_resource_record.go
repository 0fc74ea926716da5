package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// The canary's own record on the control plane (PUT /v1/canaries/{id}, .../moved): its
// configuration, progress, last analysis and abort, and each moved engine's stable version and
// snapshot. Every apply writes it; destroy deletes it; import reads it back, so an imported
// canary keeps the rollback targets it recorded instead of guessing them from history.

// privateImportGuessed marks a canary imported without its record: the plan warns until an apply
// has written the record.
const privateImportGuessed = "canary_import_guessed"

// recordWriteTimeout bounds the record's write after an apply, which runs even when the apply's
// own context was cancelled.
const recordWriteTimeout = time.Minute

func (m canaryModel) settingValues() map[string]attr.Value {
	return map[string]attr.Value{"hold_at": m.HoldAt, "analysis": m.Analysis, "allow_major_upgrade": m.AllowMajorUpgrade,
		"rollout_window": m.RolloutWindow, "on_destroy": m.OnDestroy}
}

// saveRecord writes m's record. A control plane that cannot keep it costs the import its
// fidelity, not the apply: that is a warning.
func (r *canaryResource) saveRecord(ctx context.Context, m canaryModel, keep scopeKeeper) diag.Diagnostics {
	var diags diag.Diagnostics
	rec, err := canaryRecord(ctx, m, keep.scope(m))
	if err == nil {
		_, err = r.data.Client.PutCanary(ctx, rec)
	}
	if err == nil {
		err = r.data.Client.RecordMoved(ctx, rec.ID, movedEngines(m))
	}
	if err != nil && keep.on {
		diags.AddError("Canary Record Not Saved",
			fmt.Sprintf("Canary %s's record (each moved engine's stable version and snapshot, which a selector canary keeps only "+
				"there) could not be written to the control plane: %s.\n\n"+
				"The next apply or refresh reads the stable versions back from each engine's operation history (the last upgrade to %s). "+
				"Fix the cause and apply again before an abort or destroy needs them.",
				m.ID.ValueString(), errText(err), m.Version.ValueString()))
	} else if err != nil {
		diags.AddWarning("Canary Record Not Saved",
			fmt.Sprintf("Canary %s's record (its settings, last analysis and each moved engine's stable version and snapshot) could "+
				"not be written to the control plane: %s.\n\n"+
				"State still holds all of it; the next apply writes the record again. Until then an import of this canary cannot recover "+
				"its rollback targets.",
				m.ID.ValueString(), errText(err)))
	}
	return diags
}

func canaryRecord(ctx context.Context, m canaryModel, scope api.CanaryScope) (api.Canary, error) {
	steps, _ := listInts(m.Steps)
	if m.Steps.IsNull() {
		steps = upgrade.DefaultSteps
	}
	rec := api.Canary{ID: m.ID.ValueString(), Version: m.Version.ValueString(), Seed: m.CohortSeed.ValueString(), Steps: steps,
		BakeTime: m.BakeTime.ValueString(), MaxParallel: m.MaxParallel.ValueInt64(), Mode: m.Mode.ValueString(),
		Scope: scope, CurrentStep: m.CurrentPercent.ValueInt64()}
	var err error
	if rec.LastAnalysis, err = valueJSON(ctx, m.LastAnalysis); err != nil {
		return rec, err
	}
	if rec.LastAbort, err = valueJSON(ctx, m.LastAbort); err != nil {
		return rec, err
	}
	settings := map[string]json.RawMessage{}
	for name, v := range m.settingValues() {
		if settings[name], err = valueJSON(ctx, v); err != nil {
			return rec, fmt.Errorf("%s: %w", name, err)
		}
	}
	rec.Settings, err = json.Marshal(settings)
	return rec, err
}

// movedEngines is every engine with a recorded stable version, with its snapshot.
func movedEngines(m canaryModel) []api.MovedEngine {
	stable, snaps := mapStrings(m.StableVersions), mapStrings(m.Snapshots)
	out := make([]api.MovedEngine, 0, len(stable))
	for u, v := range stable {
		out = append(out, api.MovedEngine{UserID: u, StableVersion: v, SnapshotID: snaps[u]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// deleteRecord drops the record once the canary is gone; a failure leaves a stale record, said
// as a warning.
func (r *canaryResource) deleteRecord(ctx context.Context, id string) diag.Diagnostics {
	var diags diag.Diagnostics
	if err := r.data.Client.DeleteCanary(ctx, id); err != nil {
		diags.AddWarning("Canary Record Not Deleted",
			fmt.Sprintf("Canary %s is destroyed, but its record on the control plane could not be deleted: %s. Delete it with DELETE "+
				"/v1/canaries/%s.", id, errText(err), id))
	}
	return diags
}

// importRecord fills the imported state from the canary's record: false when the control plane
// holds none.
func (r *canaryResource) importRecord(ctx context.Context, id string, st *tfsdk.State) (bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	rec, err := r.data.Client.GetCanary(ctx, id)
	if client.IsNotFound(err) {
		return false, nil
	}
	var moved []api.MovedEngine
	if err == nil {
		moved, err = r.data.Client.MovedEngines(ctx, id)
	}
	if err != nil {
		diags.Append(clientErrorDiag("Canary Record Read Failed", err))
		return false, diags
	}
	stable, snaps := recordMaps(moved)
	set := func(name string, v any) { diags.Append(st.SetAttribute(ctx, path.Root(name), v)...) }
	set("id", rec.ID)
	set("version", rec.Version)
	set("user_ids", rec.Scope.UserIDs)
	set("selector", selectorValue(rec.Scope.Selector))
	set("steps", rec.Steps)
	set("bake_time", rec.BakeTime)
	set("max_parallel", rec.MaxParallel)
	set("cohort_seed", rec.Seed)
	set("mode", rec.Mode)
	set("phase", upgrade.PhaseProgressing)
	if rec.Scope.Selector == nil {
		set("stable_versions", stable)
		set("snapshots", snaps)
	}
	raw := map[string]json.RawMessage{}
	if len(rec.Settings) > 0 {
		if err := json.Unmarshal(rec.Settings, &raw); err != nil {
			diags.AddError("Canary Record Unreadable", fmt.Sprintf("Canary %s's settings on the control plane are not a JSON object: %v.", id, err))
			return false, diags
		}
	}
	raw["last_analysis"], raw["last_abort"] = rec.LastAnalysis, rec.LastAbort
	for name, b := range raw {
		diags.Append(setFromJSON(ctx, st, name, b)...)
	}
	return !diags.HasError(), diags
}

// recordMaps is a record's moved engines as the stable_versions and snapshots maps.
func recordMaps(moved []api.MovedEngine) (stable, snaps map[string]string) {
	stable, snaps = map[string]string{}, map[string]string{}
	for _, e := range moved {
		stable[e.UserID] = e.StableVersion
		if e.SnapshotID != "" {
			snaps[e.UserID] = e.SnapshotID
		}
	}
	return stable, snaps
}

// importedWithoutRecord warns, on every plan until an apply writes the record, what an import
// without the canary's record could not recover.
func importedWithoutRecord(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, state canaryModel) diag.Diagnostics {
	var diags diag.Diagnostics
	var missing []string
	if !getPrivateJSON(ctx, priv, privateImportGuessed, &missing) {
		return nil
	}
	diags.AddWarning("Canary Imported Without Its Record",
		fmt.Sprintf("The control plane held no record for canary %s when it was imported, so these were not recovered: %s.\n\n"+
			"Each moved engine's stable version (its rollback target) was read from its last upgrade to %s: if an engine was moved out "+
			"of band since, "+
			"that target may be wrong; check stable_versions in state before an abort or destroy needs it. The settings take the "+
			"configuration's values and "+
			"the step the fleet stands at is judged again. The next apply writes the record and this warning goes away.",
			state.ID.ValueString(), strings.Join(missing, ", "), state.Version.ValueString()))
	return diags
}

// importGuessed records in private state what an import without a record could not recover.
func importGuessed(ctx context.Context, resp *resource.ImportStateResponse) {
	missing := []string{"stable_versions (read from operation history)", "snapshots (read from operation history)",
		"steps", "bake_time", "max_parallel",
		"mode", "hold_at", "analysis", "allow_major_upgrade", "rollout_window", "on_destroy", "last_analysis", "last_abort"}
	resp.Diagnostics.Append(setPrivateJSON(ctx, resp.Private, privateImportGuessed, missing)...)
}

// recordApply writes the record after an apply, also when the apply was interrupted (the write
// has a minute of its own); once written, an import without a record has nothing left to warn
// about.
func (r *canaryResource) recordApply(ctx context.Context, m canaryModel, keep scopeKeeper, priv interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}) diag.Diagnostics {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	diags := r.saveRecord(wctx, m, keep)
	if len(diags) == 0 {
		diags.Append(priv.SetKey(ctx, privateImportGuessed, nil)...)
	}
	return diags
}
