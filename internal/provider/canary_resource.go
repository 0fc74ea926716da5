package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var (
	_ resource.ResourceWithConfigure      = (*canaryResource)(nil)
	_ resource.ResourceWithImportState    = (*canaryResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*canaryResource)(nil)
	_ resource.ResourceWithValidateConfig = (*canaryResource)(nil)
)

// NewCanaryResource is the engine_canary resource.
func NewCanaryResource() resource.Resource { return &canaryResource{} }

// canaryResource rolls a version out across per-user engines, step by step.
type canaryResource struct {
	data *providerData
}

// defaultCanaryTimeout bounds create, update and delete unless timeouts says otherwise.
const defaultCanaryTimeout = 60 * time.Minute

func (r *canaryResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_canary"
}

func (r *canaryResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (r *canaryResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan canaryModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultCanaryTimeout)
	resp.Diagnostics.Append(diags...)
	keep, diags := r.hydrate(ctx, &plan, 0)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.ID.IsUnknown() || plan.ID.IsNull() {
		plan.ID = types.StringValue(keep.idOf(plan))
	}
	if plan.CohortSeed.IsUnknown() || plan.CohortSeed.IsNull() {
		plan.CohortSeed = plan.ID
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := r.converge(ctx, &plan, nil, resp.Private)
	resp.Diagnostics.Append(out.diags...)
	if out.diags.HasError() && !out.touched {
		return // nothing moved and nothing recorded: no canary to track
	}
	resp.Diagnostics.Append(r.recordApply(ctx, plan, keep, resp.Private)...)
	keep.dehydrate(&plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *canaryResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state canaryModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultCanaryTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.ID = state.ID
	if plan.CohortSeed.IsUnknown() || plan.CohortSeed.IsNull() {
		plan.CohortSeed = state.CohortSeed
	}
	keep, diags := r.hydrate(ctx, &plan, 0)
	resp.Diagnostics.Append(diags...)
	_, diags = r.hydrate(ctx, &state, hydrateRecord)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := r.converge(ctx, &plan, &state, req.Private)
	resp.Diagnostics.Append(out.diags...)
	resp.Diagnostics.Append(r.recordApply(ctx, plan, keep, resp.Private)...)
	keep.dehydrate(&plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *canaryResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state canaryModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	keep, diags := r.hydrate(ctx, &state, hydrateRecord)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	run, cfg, engines, diags := r.observed(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	fillProgress(&state, run, cfg, engines, state.Phase.ValueString() == upgrade.PhaseAborted)
	state.PlannedStep = types.StringNull() // it described the apply that ran; the next plan says anew
	keep.dehydrate(&state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
	resp.Diagnostics.Append(setHeld(ctx, resp.Private, cfg.held)...)
	if state.Phase.ValueString() == upgrade.PhaseAborted {
		// Refresh runs before every plan, tainted canary or not: the abort is said once per plan.
		if d, ok := abortedWarning(state); ok {
			resp.Diagnostics.Append(d)
		}
	}
}

func (r *canaryResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state canaryModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultCanaryTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, diags = r.hydrate(ctx, &state, hydrateRecord)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if state.OnDestroy.ValueString() == onDestroyKeep {
		tflog.Info(ctx, "on_destroy = keep: leaving every engine as it is", map[string]any{"canary_id": state.ID.ValueString()})
		r.releaseKept(ctx, state, req.Private)
		resp.Diagnostics.Append(r.deleteRecord(ctx, state.ID.ValueString())...)
		return
	}
	// Derive the work from what the engines really run, so an interrupted destroy resumes.
	run, _, engines, diags := r.observed(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	owner := r.canaryOwner(ctx, req.Private, state.ID.ValueString())
	run.Skip = owner.takenOver(state, engines, &resp.Diagnostics)
	done, err := run.RollBackAll(ctx)
	if err != nil {
		resp.Diagnostics.AddError("Canary Rollback Failed",
			fmt.Sprintf("Destroy could not return every moved engine of canary %s to its stable version: %s. %d engines are back (%s).\n\n"+
				"The canary stays in state. Fix the cause, then run terraform destroy again: it resumes from what the engines run (a running "+
				"rollback is waited for, never started twice). To drop the canary without rolling back, set on_destroy = \"keep\" and apply first.",
				state.ID.ValueString(), rollbackErrText(err), len(done), strings.Join(firstNames(done, 10), ", ")))
		return
	}
	tflog.Info(ctx, "canary rolled back", map[string]any{"canary_id": state.ID.ValueString(), "engines": len(done)})
	resp.Diagnostics.Append(r.deleteRecord(ctx, state.ID.ValueString())...)
	owner.releaseAll(ctx, engines)
}

// ImportState takes the canary's id (its record on the control plane holds everything), or
// "VERSION:USER_ID,USER_ID,..." / "VERSION:COHORT_SEED:USER_ID,USER_ID,...", which names the same
// id. Without a record, refresh reads progress, stable versions and snapshots back from the fleet
// and its operations, and every plan warns what that could not recover.
func (r *canaryResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	parts := strings.Split(req.ID, ":")
	if len(parts) == 1 && req.ID != "" {
		found, diags := r.importRecord(ctx, req.ID, &resp.State)
		resp.Diagnostics.Append(diags...)
		if !found && !diags.HasError() {
			resp.Diagnostics.AddError("Canary Record Not Found",
				fmt.Sprintf("The control plane holds no record for canary %q: every apply writes one (GET /v1/canaries/%s). Check the id "+
					"(terraform state show of the canary, or id in its plan), "+
					"or import by VERSION:COHORT_SEED:USER_ID,USER_ID,... instead, which reads each engine's stable version from its "+
					"operation history.", req.ID, req.ID))
		}
		return
	}
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[len(parts)-1] == "" {
		resp.Diagnostics.AddError("Invalid Canary Import Id",
			fmt.Sprintf("%q is not a canary id (canary-...), VERSION:USER_ID,USER_ID,... or VERSION:COHORT_SEED:USER_ID,USER_ID,... "+
				"(for example 2.4.0:user-0001,user-0002).", req.ID))
		return
	}
	version, users := parts[0], strings.Split(parts[len(parts)-1], ",")
	id := canaryID(version, users)
	if found, diags := r.importRecord(ctx, id, &resp.State); found || diags.HasError() {
		resp.Diagnostics.Append(diags...)
		return
	}
	seed := id
	if len(parts) == 3 && parts[1] != "" {
		seed = parts[1]
	}
	set := func(name string, v any) {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(name), v)...)
	}
	set("id", id)
	set("version", version)
	set("user_ids", users)
	set("steps", upgrade.DefaultSteps)
	set("bake_time", "10m")
	set("max_parallel", int64(10))
	set("cohort_seed", seed)
	set("mode", upgrade.ModeStepwise)
	set("allow_major_upgrade", false)
	set("on_destroy", onDestroyRollback)
	set("phase", upgrade.PhaseProgressing)
	importGuessed(ctx, resp)
}

// canaryConfig is the part of the model the step logic needs, as Go values.
type canaryConfig struct {
	version string
	// users is the scope: user_ids plus the users this canary moved that still run version
	// (upgrade.Scope), once the fleet has been read; user_ids alone before.
	users      []string
	steps      []int64
	holdAt     int64
	mode       string
	allowMajor bool
	// held maps the users in user_ids whose engine runs above version to that version: out of
	// the scope, left where they run (upgrade.CheckCanary).
	held map[string]string
}

// canaryID derives a canary's id from its version and initial users: known at plan (so the
// default cohort seed, and with it every cohort, is reviewable), the same on every plan of the
// same configuration, and kept in state afterwards so adding users never reshuffles.
func canaryID(version string, users []string) string {
	sorted := append([]string(nil), users...)
	sort.Strings(sorted)
	sum := sha256.Sum256([]byte(version + "\x00" + strings.Join(sorted, "\x00")))
	return "canary-" + hex.EncodeToString(sum[:8])
}

func firstNames(us []string, n int) []string { return upgrade.FirstNames(us, n) }
