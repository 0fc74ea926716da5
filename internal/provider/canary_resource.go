package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
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
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.ID.IsUnknown() || plan.ID.IsNull() {
		users, _ := listStrings(plan.UserIDs)
		plan.ID = types.StringValue(canaryID(plan.Version.ValueString(), users))
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := r.converge(ctx, &plan, &state, req.Private)
	resp.Diagnostics.Append(out.diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *canaryResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state canaryModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	run, cfg, engines, diags := r.observed(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	run.fill(&state, cfg, engines, state.Phase.ValueString() == upgrade.PhaseAborted)
	state.PlannedStep = types.StringNull() // it described the apply that ran; the next plan says anew
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
	if state.OnDestroy.ValueString() == onDestroyKeep {
		tflog.Info(ctx, "on_destroy = keep: leaving every engine as it is", map[string]any{"canary_id": state.ID.ValueString()})
		r.releaseKept(ctx, state, req.Private)
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultCanaryTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Derive the work from what the engines really run, so an interrupted destroy resumes.
	run, _, engines, diags := r.observed(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	owner := r.canaryOwner(ctx, req.Private, state.ID.ValueString())
	done, err := run.rollbackAll(ctx, keepTakenOver(run.rollbackCandidates(), engines, owner.token, &resp.Diagnostics))
	if err != nil {
		resp.Diagnostics.AddError("Canary Rollback Failed",
			fmt.Sprintf("Destroy could not return every moved engine of canary %s to its stable version: %v. %d engines are back (%s).\n\n"+
				"The canary stays in state. Fix the cause, then run terraform destroy again: it resumes from what the engines run (a running rollback is waited for, never started twice). "+
				"To drop the canary without rolling back, set on_destroy = \"keep\" and apply first.", state.ID.ValueString(), err, len(done), strings.Join(firstNames(done, 10), ", ")))
		return
	}
	tflog.Info(ctx, "canary rolled back", map[string]any{"canary_id": state.ID.ValueString(), "engines": len(done)})
	owner.releaseAll(ctx, engines)
}

// ImportState takes "VERSION:USER_ID,USER_ID,..." or "VERSION:COHORT_SEED:USER_ID,USER_ID,...";
// refresh then reads progress, stable versions and snapshots back from the fleet and its
// operations.
func (r *canaryResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	parts := strings.Split(req.ID, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[len(parts)-1] == "" {
		resp.Diagnostics.AddError("Invalid Canary Import Id",
			fmt.Sprintf("%q is not VERSION:USER_ID,USER_ID,... or VERSION:COHORT_SEED:USER_ID,USER_ID,... (for example 2.4.0:user-0001,user-0002).", req.ID))
		return
	}
	version, users := parts[0], strings.Split(parts[len(parts)-1], ",")
	id := canaryID(version, users)
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

// newRun builds a walk from the model's configuration and, when prior is set, its recorded
// progress.
func (r *canaryResource) newRun(ctx context.Context, m canaryModel, prior *canaryModel) (*canaryRun, canaryConfig, diag.Diagnostics) {
	var diags diag.Diagnostics
	cfg := canaryConfig{version: m.Version.ValueString(), mode: m.Mode.ValueString(), holdAt: m.HoldAt.ValueInt64(), allowMajor: m.AllowMajorUpgrade.ValueBool()}
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
	run := newCanaryRun(r.data.driver(), cat, cfg.version, seed, cfg.users, int(m.MaxParallel.ValueInt64()))
	run.bake, _ = time.ParseDuration(m.BakeTime.ValueString())
	run.analysis, run.suite, run.window = m.analysis()
	if w, err := m.window(); err == nil {
		run.rollout = w
	}
	if prior != nil {
		for k, v := range mapStrings(prior.StableVersions) {
			run.stable[k] = v
		}
		for k, v := range mapStrings(prior.Snapshots) {
			run.snapshots[k] = v
		}
	}
	return run, cfg, diags
}

// observed builds a walk from state and reads what the fleet really runs into it: the users in
// scope and every recorded one.
func (r *canaryResource) observed(ctx context.Context, state canaryModel) (*canaryRun, canaryConfig, map[string]api.Engine, diag.Diagnostics) {
	run, cfg, diags := r.newRun(ctx, state, &state)
	if diags.HasError() {
		return nil, cfg, nil, diags
	}
	engines, err := fleet(ctx, r.data.Client, run.scopeWithRecorded())
	if err != nil {
		diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return nil, cfg, nil, diags
	}
	run.observe(ctx, engines)
	cfg.held = upgrade.CheckCanary(run.cat, engines, run.widenScope(), cfg.version, cfg.allowMajor).Held
	cfg.users = run.hold(cfg.held)
	return run, cfg, engines, diags
}

// hold takes the held users out of the run's scope and returns the scope.
func (run *canaryRun) hold(held map[string]string) []string {
	run.users = upgrade.Without(run.users, held)
	return run.users
}

// scopeWithRecorded is the users in scope plus any recorded ones since removed from user_ids:
// those still need rolling back on destroy.
func (run *canaryRun) scopeWithRecorded() []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range run.users {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	var extra []string
	for u := range run.stable {
		if !seen[u] {
			seen[u] = true
			extra = append(extra, u)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

// widenScope makes the run's scope user_ids plus every user this canary moved (a recorded stable
// version other than the canary's) that runs the canary version now, and returns it. Call it after
// observe.
func (run *canaryRun) widenScope() []string {
	run.mu.Lock()
	var mine []string
	for u, v := range run.stable {
		if v != run.version && run.moved[u] {
			mine = append(mine, u)
		}
	}
	run.mu.Unlock()
	run.users = upgrade.Scope(run.users, mine)
	return run.users
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
	engines, err := fleet(ctx, r.data.Client, run.scopeWithRecorded())
	if err != nil {
		out.diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	// The plan's rules again, on fresh reads. The apply holds what its plan held: what the
	// refresh before it held (none on create).
	check := upgrade.CheckCanary(run.cat, engines, cfg.users, cfg.version, cfg.allowMajor)
	if len(check.Errors) > 0 {
		out.diags.Append(problemDiags(check.Errors, true)...)
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	held, diags := getHeld(ctx, private, cfg.users)
	out.diags.Append(diags...)
	cfg.held = held
	cfg.users = run.hold(cfg.held)
	if prior == nil {
		// Engines on the version before the canary existed stay there on destroy: their stable
		// version is the version itself (not whatever an older, unrelated upgrade came from).
		for u, e := range engines {
			if e.EngineVersion == cfg.version {
				run.stable[u] = cfg.version
			}
		}
	}
	run.observe(ctx, engines)
	cfg.users = run.widenScope()
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(run.movedList()))
	targets := upgrade.Targets(cfg.mode, cfg.steps, cfg.holdAt, cur)
	if len(cfg.users) == 0 {
		targets = nil // every user is held: nothing to walk
	}
	// An engine that moved above version since the plan is refused only when this apply would
	// move it: moving it would be a downgrade.
	if since := movedAbove(upgrade.PlanSteps(run.seed, cfg.users, targets, run.movedList()), newlyHeld(check.Held, cfg.held)); len(since) > 0 {
		out.diags.Append(problemDiags([]upgrade.Problem{upgrade.CanaryWouldDowngrade(cfg.version, since)}, true)...)
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
	tflog.Info(ctx, "canary apply", map[string]any{"current_percent": cur, "targets": fmt.Sprint(targets), "mode": cfg.mode})
	if unjudged(cur, m.LastAnalysis, run.stableCopy(), run.movedList(), cfg.version) {
		tflog.Info(ctx, "the step the fleet stands at was never judged: baking and analysing it again", map[string]any{"current_percent": cur})
		if err = run.reanalyse(ctx, cur); err == nil {
			err = run.walk(ctx, targets)
		}
	} else {
		err = run.walk(ctx, targets)
	}
	out.touched = true
	var sf *stepFailure
	switch {
	case err == nil:
	case isInterrupted(err):
		var ie *interruptedError
		errors.As(err, &ie)
		msg := fmt.Sprintf("The apply stopped (%v) before canary %s finished its step. State records what the engines run: %d users on %s, their stable versions and every snapshot taken. "+
			"Operations still running on the control plane keep running; the next apply attaches to them and resumes from the fleet, never upgrading an engine twice.",
			ie.cause, m.ID.ValueString(), len(run.movedList()), cfg.version)
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
		var we *windowError
		if errors.As(err, &we) {
			out.diags.AddAttributeError(path.Root("rollout_window"), "Canary Step Not Started", err.Error()+".")
			break
		}
		out.diags.AddError("Canary Step Failed", fmt.Sprintf("Canary %s could not prepare its next step: %s.\n\nNo engine moved in this step; state records what the engines run. Fix the cause, then apply again.",
			m.ID.ValueString(), errText(err)))
	}
	return r.finish(m, run, cfg, engines, prior, false, out)
}

func (r *canaryResource) finish(m *canaryModel, run *canaryRun, cfg canaryConfig, engines map[string]api.Engine, prior *canaryModel, aborted bool, out canaryResult) canaryResult {
	if prior != nil && !aborted && len(run.movedList()) == 0 && prior.Phase.ValueString() == upgrade.PhaseAborted {
		aborted = true
	}
	run.fill(m, cfg, engines, aborted)
	return out
}

func firstNames(us []string, n int) []string { return upgrade.FirstNames(us, n) }

func analysisObject(a analysisRecord) types.Object {
	verdict := "pass"
	if !a.Verdict.Pass() {
		verdict = "fail"
	}
	fails := make([]string, len(a.Verdict.Findings))
	for i, f := range a.Verdict.Findings {
		fails[i] = f.Detail
	}
	return types.ObjectValueMust(lastAnalysisAttrTypes, map[string]attr.Value{
		"step": types.Int64Value(a.Step), "verdict": types.StringValue(verdict), "failures": stringListValue(fails),
		"canary": figuresObject(a.Verdict.Canary), "baseline": figuresObject(a.Verdict.Baseline), "at": types.StringValue(rfc3339(a.At)),
	})
}

func figuresObject(f upgrade.Figures) types.Object {
	eval := types.Float64Null()
	if f.EvalScore != nil {
		eval = types.Float64Value(round4(*f.EvalScore))
	}
	return types.ObjectValueMust(figuresAttrTypes, map[string]attr.Value{
		"engines": types.Int64Value(int64(f.Engines)), "error_rate": types.Float64Value(round4(f.ErrorRate)),
		"p99_latency_ms": types.Float64Value(round4(f.P99LatencyMS)), "cache_hit_ratio": types.Float64Value(round4(f.CacheHitRatio)),
		"warning_kinds": stringListValue(f.WarningKinds), "eval_score": eval,
	})
}

func round4(f float64) float64 {
	return float64(int64(f*10000+0.5)) / 10000
}

// privateCanaryHeld is the private state key of the users the last refresh or plan held above
// the canary's version, with the versions they run (a JSON object).
const privateCanaryHeld = "canary_held"

// getHeld reads the held users of scope from private state: none when absent. A user no longer
// in scope (taken out of user_ids) is no longer held.
func getHeld(ctx context.Context, p privateState, scope []string) (map[string]string, diag.Diagnostics) {
	if p == nil {
		return nil, nil
	}
	b, diags := p.GetKey(ctx, privateCanaryHeld)
	var recorded map[string]string
	if len(b) > 0 {
		_ = json.Unmarshal(b, &recorded) // unreadable: hold none, so every drift is checked afresh
	}
	var held map[string]string
	for _, u := range scope {
		if v, ok := recorded[u]; ok {
			if held == nil {
				held = map[string]string{}
			}
			held[u] = v
		}
	}
	return held, diags
}

// setHeld records held in private state, or removes the key when none is held.
func setHeld(ctx context.Context, p privateState, held map[string]string) diag.Diagnostics {
	if len(held) == 0 {
		if b, diags := p.GetKey(ctx, privateCanaryHeld); len(b) == 0 {
			return diags // nothing recorded: nothing to remove
		}
		return p.SetKey(ctx, privateCanaryHeld, nil)
	}
	return setPrivateJSON(ctx, p, privateCanaryHeld, held)
}

// movedAbove is the users of above that moves would move.
func movedAbove(moves []upgrade.StepMove, above map[string]string) map[string]string {
	var out map[string]string
	for _, mv := range moves {
		for _, u := range mv.Movers {
			if v, ok := above[u]; ok {
				if out == nil {
					out = map[string]string{}
				}
				out[u] = v
			}
		}
	}
	return out
}

// newlyHeld is the users of held that planned did not hold.
func newlyHeld(held, planned map[string]string) map[string]string {
	var out map[string]string
	for u, v := range held {
		if _, ok := planned[u]; !ok {
			if out == nil {
				out = map[string]string{}
			}
			out[u] = v
		}
	}
	return out
}
