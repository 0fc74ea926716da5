package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var (
	_ resource.ResourceWithConfigure      = (*canaryResource)(nil)
	_ resource.ResourceWithImportState    = (*canaryResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*canaryResource)(nil)
	_ resource.ResourceWithValidateConfig = (*canaryResource)(nil)
)

func init() { resources = append(resources, NewCanaryResource) }

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
	out := r.converge(ctx, &plan, nil)
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
	out := r.converge(ctx, &plan, &state)
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
	run, _, _, diags := r.observed(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	done, err := run.rollbackAll(ctx, run.rollbackCandidates())
	if err != nil {
		resp.Diagnostics.AddError("Canary Rollback Failed",
			fmt.Sprintf("Destroy could not return every moved engine of canary %s to its stable version: %v. %d engines are back (%s).\n\n"+
				"The canary stays in state. Fix the cause, then run terraform destroy again: it resumes from what the engines run (a running rollback is waited for, never started twice). "+
				"To drop the canary without rolling back, set on_destroy = \"keep\" and apply first.", state.ID.ValueString(), err, len(done), strings.Join(firstNames(done, 10), ", ")))
		return
	}
	tflog.Info(ctx, "canary rolled back", map[string]any{"canary_id": state.ID.ValueString(), "engines": len(done)})
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
	cfg.users = run.widenScope()
	return run, cfg, engines, diags
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
func (r *canaryResource) converge(ctx context.Context, m *canaryModel, prior *canaryModel) canaryResult {
	var out canaryResult
	ctx = tflog.SetField(ctx, "canary_id", m.ID.ValueString())
	run, cfg, diags := r.newRun(ctx, *m, prior)
	out.diags.Append(diags...)
	if out.diags.HasError() {
		return out
	}
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
	// The plan's rules again, on fresh reads.
	problems := checkFleet(run.cat, engines, cfg.users, cfg.version, cfg.allowMajor)
	if len(problems) > 0 {
		out.diags.Append(problemDiags(problems, true)...)
		return r.finish(m, run, cfg, engines, prior, false, out)
	}
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

func abortDetail(id, version string, f *stepFailure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Canary %s of %s was aborted at the %d%% step.\n\n%s\n\n", id, version, f.Step, f.Error())
	if f.RollbackErr != nil {
		fmt.Fprintf(&b, "Rolling the moved engines back FAILED: %v. %d engines are back (%s). State records phase = \"aborted\" and what each engine runs; "+
			"run terraform apply again to retry the rollback and the step, or restore the listed snapshots by hand.", f.RollbackErr, len(f.RolledBack), strings.Join(firstNames(f.RolledBack, 10), ", "))
		return b.String()
	}
	fmt.Fprintf(&b, "Every moved engine is back on its stable version and healthy (%d rolled back: %s; snapshots restored where the schema moved). "+
		"State records phase = \"aborted\"; the next plan shows what a retry would do. Fix the release (or pick another version) before applying again.",
		len(f.RolledBack), strings.Join(firstNames(f.RolledBack, 10), ", "))
	return b.String()
}

// abortObject is last_abort for f.
func abortObject(f *stepFailure, at time.Time) types.Object {
	cause, user, code := abortAnalysisFailed, types.StringNull(), types.StringNull()
	switch {
	case f.Verdict != nil:
	case f.AnalysisErr != nil:
		cause, code = abortAnalysisUnavailable, errCode(f.AnalysisErr)
	default:
		cause, user, code = abortEngineFailed, types.StringValue(f.Engine), errCode(f.EngineErr)
	}
	return types.ObjectValueMust(lastAbortAttrTypes, map[string]attr.Value{
		"step": types.Int64Value(f.Step), "cause": types.StringValue(cause), "user_id": user, "error_code": code,
		"detail": types.StringValue(f.Error()), "rolled_back": types.BoolValue(f.RollbackErr == nil), "at": types.StringValue(rfc3339(at)),
	})
}

// errCode is the control plane's error code behind err, null when it named none.
func errCode(err error) types.String {
	var oe *rollout.OperationError
	var ce *client.Error
	switch {
	case errors.As(err, &oe) && oe.Op.Error != nil && oe.Op.Error.Code != "":
		return types.StringValue(oe.Op.Error.Code)
	case errors.As(err, &ce) && ce.Code != "":
		return types.StringValue(ce.Code)
	}
	return types.StringNull()
}

// abortedWarning says why an aborted canary aborted, from last_abort, and what applying again does.
func abortedWarning(m canaryModel) (diag.Diagnostic, bool) {
	if m.LastAbort.IsNull() || m.LastAbort.IsUnknown() {
		return nil, false
	}
	a := m.LastAbort.Attributes()
	str := func(k string) string {
		v, _ := a[k].(types.String)
		return v.ValueString()
	}
	step, _ := a["step"].(types.Int64)
	back, _ := a["rolled_back"].(types.Bool)
	outcome := "every engine it moved went back to its stable version"
	if !back.ValueBool() {
		outcome = "rolling the moved engines back did not finish: the next apply retries that first"
	}
	return diag.NewWarningDiagnostic("Canary Aborted",
		fmt.Sprintf("Canary %s of %s aborted at the %d%% step on %s (%s): %s\n\nThen %s. Applying again retries the rollout from the first step: fix the cause, or roll out another version, first. "+
			"last_abort keeps this record. A canary whose create aborted is tainted: Terraform replaces it, which rolls back nothing more and starts again from the first step.",
			m.ID.ValueString(), m.Version.ValueString(), step.ValueInt64(), str("at"), str("cause"), str("detail"), outcome)), true
}

func firstNames(us []string, n int) []string {
	if len(us) <= n {
		return us
	}
	return append(append([]string(nil), us[:n]...), fmt.Sprintf("and %d more", len(us)-n))
}

// fill writes the run's progress into m: moved users, the percentage reached, the phase, the
// maps, the last analysis and what the next apply would do.
func (run *canaryRun) fill(m *canaryModel, cfg canaryConfig, engines map[string]api.Engine, aborted bool) {
	moved := run.movedList()
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(moved))
	m.MovedUserIDs = stringListValue(moved)
	m.CurrentPercent = types.Int64Value(cur)
	run.mu.Lock()
	m.StableVersions, m.Snapshots = stringMap(run.stable), stringMap(run.snapshots)
	last := run.last
	run.mu.Unlock()
	if last != nil {
		m.LastAnalysis = analysisObject(*last)
	} else if m.LastAnalysis.IsUnknown() {
		m.LastAnalysis = types.ObjectNull(lastAnalysisAttrTypes)
	}
	pending := unjudged(cur, m.LastAnalysis, run.stableCopy(), moved, cfg.version)
	switch {
	case aborted && len(moved) == 0:
		m.Phase = types.StringValue(upgrade.PhaseAborted)
	case pending:
		// Engines stand at a step no analysis passed: not promoted, not holding, whatever the
		// percentage says.
		m.Phase = types.StringValue(upgrade.PhaseProgressing)
	default:
		m.Phase = types.StringValue(upgrade.PhaseAt(cfg.steps, cfg.holdAt, cur))
	}
	var problems []upgrade.Problem
	if engines != nil {
		problems = checkFleet(run.cat, engines, cfg.users, cfg.version, cfg.allowMajor)
	}
	next := nextStepText(run.cat, run.seed, cfg, moved, engines, problems)
	if pending {
		next = rejudgeText(cur, next)
		if len(problems) > 0 {
			next = refusedText(problems)
		}
	}
	m.NextStep = types.StringValue(next)
}

// refusedText is next_step while the plan's fleet rules refuse the rollout: "none", the error the
// next plan fails with, and what to do.
func refusedText(ps []upgrade.Problem) string {
	s := fmt.Sprintf("none: the next plan fails with %q: %s", ps[0].Summary, ps[0].Detail)
	if len(ps) > 1 {
		s += fmt.Sprintf(" (and %d more errors)", len(ps)-1)
	}
	return s
}

func (run *canaryRun) stableCopy() map[string]string {
	run.mu.Lock()
	defer run.mu.Unlock()
	out := make(map[string]string, len(run.stable))
	for k, v := range run.stable {
		out[k] = v
	}
	return out
}

// analysedThrough is the step a passing last_analysis covers (0 for none or a failed one).
func analysedThrough(o types.Object) int64 {
	if o.IsNull() || o.IsUnknown() {
		return 0
	}
	verdict, ok := o.Attributes()["verdict"].(types.String)
	step, ok2 := o.Attributes()["step"].(types.Int64)
	if !ok || !ok2 || verdict.ValueString() != "pass" {
		return 0
	}
	return step.ValueInt64()
}

// unjudged reports whether the fleet stands at a step no passing analysis covers although the
// canary moved engines to reach it: an apply stopped during a bake or an analysis. Engines that
// were on the version before the canary (stable version = the version) need no judging.
func unjudged(cur int64, last types.Object, stable map[string]string, moved []string, version string) bool {
	if cur == 0 || analysedThrough(last) >= cur {
		return false
	}
	for _, u := range moved {
		if v := stable[u]; v != "" && v != version {
			return true
		}
	}
	return false
}

// rejudgeText prefixes next_step with the judging of the step an interrupted apply left unjudged.
func rejudgeText(cur int64, next string) string {
	s := fmt.Sprintf("judge the %d%% step again (bake, then analysis)", cur)
	if !strings.HasPrefix(next, "none") {
		s += "; then " + next
	}
	return s
}

// nextStepText says what the next apply will do from moved: "move 4 users to 25%: ...; snapshot
// first for 4", steps joined by "; then " in auto mode, or "none". Holding at hold_at, it is "none"
// followed by what the next apply would do without the hold, so the plan that lifts the hold shows
// what its apply does.
// A plan that would move engines fails on problems (the fleet rules of checkFleet); then it says
// so, in the words of that error, instead of naming a step no apply would take.
func nextStepText(cat *upgrade.Catalog, seed string, cfg canaryConfig, moved []string, engines map[string]api.Engine, problems []upgrade.Problem) string {
	cur := upgrade.CurrentPercent(cfg.steps, len(cfg.users), len(moved))
	if targets := upgrade.Targets(cfg.mode, cfg.steps, cfg.holdAt, cur); len(targets) > 0 {
		if len(problems) > 0 {
			return refusedText(problems)
		}
		return describeMoves(cat, seed, cfg, moved, engines, targets)
	}
	if cfg.holdAt > 0 && cur >= cfg.holdAt {
		if rest := upgrade.Targets(cfg.mode, cfg.steps, 0, cur); len(rest) > 0 {
			lifted := "the next apply would " + describeMoves(cat, seed, cfg, moved, engines, rest)
			if len(problems) > 0 {
				lifted = strings.TrimPrefix(refusedText(problems), "none: ")
			}
			return fmt.Sprintf("none: holding at %d%%; without hold_at %s", cfg.holdAt, lifted)
		}
	}
	return "none"
}

// describeMoves renders the moves to targets from moved, joined by "; then ".
func describeMoves(cat *upgrade.Catalog, seed string, cfg canaryConfig, moved []string, engines map[string]api.Engine, targets []int64) string {
	moves := upgrade.PlanSteps(seed, cfg.users, targets, moved)
	parts := make([]string, len(moves))
	for i, mv := range moves {
		parts[i] = upgrade.DescribeStep(mv, snapshotsNeeded(cat, engines, mv.Movers, cfg.version), 10)
	}
	return strings.Join(parts, "; then ")
}

// snapshotsNeeded counts the users whose path to version migrates the brain.
func snapshotsNeeded(cat *upgrade.Catalog, engines map[string]api.Engine, users []string, version string) int {
	n := 0
	for _, u := range users {
		e, ok := engines[u]
		if !ok {
			continue
		}
		if p, err := cat.Path(e.EngineVersion, version); err == nil && p.RequiresSnapshot {
			n++
		}
	}
	return n
}

// checkFleet applies the rules that need the engines: every user known, no major without
// allow_major_upgrade, no engine newer than version (a canary never downgrades).
func checkFleet(cat *upgrade.Catalog, engines map[string]api.Engine, users []string, version string, allowMajor bool) []upgrade.Problem {
	var ps []upgrade.Problem
	if _, ok := cat.Get(version); !ok {
		ps = append(ps, upgrade.Problem{Attribute: "version", Summary: "Unknown Engine Version",
			Detail: fmt.Sprintf("Version %q is not in the control plane's release catalog (%s). Set version to a catalog version; data \"engine_versions\" lists them.", version, strings.Join(cat.Names(), ", "))})
		return ps
	}
	var unknown, major, newer []string
	for _, u := range users {
		e, ok := engines[u]
		if !ok {
			unknown = append(unknown, u)
			continue
		}
		switch k, err := upgrade.Kind(e.EngineVersion, version); {
		case err != nil:
		case k == upgrade.KindMajor && !allowMajor:
			major = append(major, u+" ("+e.EngineVersion+")")
		case k == upgrade.KindDowngrade:
			newer = append(newer, u+" ("+e.EngineVersion+")")
		}
	}
	if len(unknown) > 0 {
		ps = append(ps, upgrade.Problem{Attribute: "user_ids", Summary: "Unknown Users",
			Detail: fmt.Sprintf("The control plane has no engine for %d of user_ids: %s. Remove them from user_ids; data \"engine_instances\" lists the engines it knows.", len(unknown), strings.Join(unknown, ", "))})
	}
	if len(major) > 0 {
		v, _ := cat.Get(version)
		guide := ""
		if v.MigrationGuideURL != "" {
			guide = " Read the migration guide first: " + v.MigrationGuideURL + "."
		}
		ps = append(ps, upgrade.Problem{Attribute: "version", Summary: "Major Upgrade Not Allowed",
			Detail: fmt.Sprintf("Rolling out %s is a major upgrade for %d engines (%s), with breaking changes: %s. Set allow_major_upgrade = true to proceed.%s",
				version, len(major), strings.Join(firstNames(major, 10), ", "), strings.Join(v.BreakingChanges, "; "), guide)})
	}
	if len(newer) > 0 {
		ps = append(ps, upgrade.Problem{Attribute: "version", Summary: "Canary Would Downgrade",
			Detail: fmt.Sprintf("%d engines already run a version newer than %s (%s): a canary only moves engines forward. Remove them from user_ids, or roll out a newer version.",
				len(newer), version, strings.Join(firstNames(newer, 10), ", "))})
	}
	return ps
}

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
