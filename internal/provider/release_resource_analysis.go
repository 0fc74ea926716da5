package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// privateReleaseWatch is the private-state key of an upgrade whose analysis an interrupted apply
// left unjudged: the next apply resumes its bake and judges it once.
const privateReleaseWatch = "release_watch"

// defaultReleaseBake is how long a release watches the upgraded engine when analysis sets no
// bake_time.
const defaultReleaseBake = "10m"

// releaseAnalysisAttribute is engine_release's analysis: the canary's checks, with the engine's
// own figures before the upgrade as the baseline.
func releaseAnalysisAttribute() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		MarkdownDescription: "The post-upgrade checklist, as `engine_canary` runs it: before the drain the engine's own " +
			"metrics over `window` are read (the " +
			"baseline); after the new version reports healthy (and `eval_gate`, if set, passed) the engine is watched for " +
			"`bake_time`, then its metrics " +
			"over `window` are compared with the thresholds and with the baseline. A failing analysis fails the upgrade like a failed gate: with " +
			"`auto_rollback` the engine goes back to the version it ran, restoring the pre-upgrade snapshot where the schema " +
			"moved, and `last_attempt.error` " +
			"lists each failed check with its figures before and after. Not set: no metrics are read and nothing is watched.",
		Optional: true,
		Attributes: analysisAttributes(analysisWords{who: "the engine after the upgrade",
			newKinds:  "How many warning kinds the engine may log after the upgrade that it did not log before.",
			worseThan: "How much worse than before the upgrade the engine may be", comparedTo: "its figures before"}, map[string]schema.Attribute{
			"bake_time": schema.StringAttribute{
				MarkdownDescription: "How long to watch the engine after it reports healthy, before the analysis, as a Go duration (`0s`–`24h`). " +
					"Defaults to `" + defaultReleaseBake + "`. " +
					"The apply waits it out in full, so it must fit in the create/update timeout. Make `window` no longer than `bake_time`, so the " +
					"figures after the upgrade hold no traffic from before it.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(defaultReleaseBake),
				Validators: []validator.String{durationValidator{min: 0, max: 24 * time.Hour}},
			},
		}),
	}
}

// releaseWatch is one upgrade's analysis (rollout.Watch); private state keeps it for an analysis
// an interrupted apply left unjudged.
type releaseWatch = rollout.Watch

// watchSettings reads the analysis; ok is false when none is set.
func (m releaseModel) watchSettings() (w releaseWatch, ok bool) {
	if m.Analysis.IsNull() || m.Analysis.IsUnknown() {
		return w, false
	}
	w.Config = upgrade.AnalysisConfig{BaselineTolerance: defaultBaselineTolerance}
	window, _ := time.ParseDuration(defaultAnalysisWindow)
	w.Window = readAnalysis(m.Analysis, &w.Config, window)
	w.Bake, _ = time.ParseDuration(defaultReleaseBake)
	if s, isString := m.Analysis.Attributes()["bake_time"].(types.String); isString && !s.IsUnknown() {
		if d, err := time.ParseDuration(s.ValueString()); err == nil {
			w.Bake = d
		}
	}
	return w, true
}

// baking records the watch in private state once its bake has started, for an interrupted apply.
func (r *releaseResource) baking(ctx context.Context, priv privateState, out *convergeResult) func(*releaseWatch) {
	return func(w *releaseWatch) {
		out.diags.Append(setPrivateJSON(ctx, priv, privateReleaseWatch, w)...)
		tflog.Info(ctx, "watching the upgraded engine before the analysis",
			map[string]any{"phase": "bake", "bake": w.Bake.String(), "left": w.Left().String()})
	}
}

// judgeBake maps a bake's outcome: failure is "" when the analysis passed; stopped when the apply
// was interrupted first (private state keeps the watch, the attempt stays in progress).
func (r *releaseResource) judgeBake(ctx context.Context, m *releaseModel, create bool, priv privateState, w *releaseWatch,
	res rollout.BakeResult, a *lastAttempt, out *convergeResult) (failure string, stopped bool) {
	userID := m.UserID.ValueString()
	if res.Interrupted {
		out.interrupted, out.started = true, true
		a.Status = attemptInProgress
		msg := fmt.Sprintf("The apply stopped (%v) while watching user %s's engine after its upgrade from %s to %s, %s into a "+
			"bake of %s. The engine runs %s; "+
			"the upgrade is not judged yet, so last_attempt stays in_progress. The next terraform apply resumes the bake where it "+
			"stopped and judges the upgrade once: nothing is upgraded again.",
			ctx.Err(), userID, w.From, w.To, time.Since(w.BakeStartedAt).Round(time.Millisecond), w.Bake, w.To)
		if create {
			out.diags.AddWarning("Engine Upgrade Analysis Interrupted", msg)
		} else {
			out.diags.AddError("Engine Upgrade Analysis Interrupted", msg)
		}
		return "", true
	}
	out.diags.Append(priv.SetKey(ctx, privateReleaseWatch, nil)...)
	if res.Err != nil {
		return "the analysis could not read the engine's metrics after the upgrade (" + errText(res.Err) + "), and an unjudged " +
			"upgrade never counts as passed", false
	}
	if v := res.Verdict; v.Pass() {
		tflog.Info(ctx, "the analysis passed", map[string]any{"error_rate": res.After.ErrorRate, "p99_latency_ms": res.After.P99LatencyMS})
		return "", false
	}
	return fmt.Sprintf("the analysis after a bake of %s failed (metrics over %s, after the upgrade against before it):\n%s",
		w.Bake, w.Window, res.Verdict.Summary()), false
}

// resumeWatch judges an upgrade whose analysis an interrupted apply left unjudged, when the
// engine still runs what it was upgraded to: rollout.Driver.ResumeRelease bakes for what is left,
// runs the analysis once and rolls back a failing one. ok is false when there is nothing to resume
// (the converge goes on as usual).
func (r *releaseResource) resumeWatch(ctx context.Context, m *releaseModel, prior *releaseModel, priv privateState, e api.Engine,
	attached *api.Operation, cat *upgrade.Catalog, finish func(api.Engine, *lastAttempt) convergeResult) (convergeResult, bool) {
	var out convergeResult
	var w releaseWatch
	if attached != nil || !getPrivateJSON(ctx, priv, privateReleaseWatch, &w) {
		return out, false
	}
	if !w.Resumable(e, m.Version.ValueString()) {
		tflog.Warn(ctx, "dropping an unjudged upgrade: the engine or the configuration moved on",
			map[string]any{"to": w.To, "engine_version": e.EngineVersion, "status": e.Status})
		out.diags.Append(priv.SetKey(ctx, privateReleaseWatch, nil)...)
		return out, false
	}
	out.started = true
	a := lastAttempt{Version: w.To, Status: attemptInProgress, OperationID: w.OperationID, StartedAt: w.StartedAt, SnapshotID: w.SnapshotID}
	if prior == nil {
		m.EngineID, m.PreviousVersion = types.StringValue(e.EngineID), types.StringValue(w.From)
	}
	if w.SnapshotID != "" {
		m.PreUpgradeSnapshotID = types.StringValue(w.SnapshotID)
	}
	tflog.Info(ctx, "resuming the analysis an interrupted apply left unjudged",
		map[string]any{"operation_id": w.OperationID, "bake_started_at": w.BakeStartedAt})
	run := r.data.driver().ResumeRelease(ctx, m.UserID.ValueString(), e, &w, r.baking(ctx, priv, &out), m.rollBackOptions(), cat)
	failure, stopped := r.judgeBake(ctx, m, prior == nil, priv, &w, *run.Bake, &a, &out)
	if stopped {
		return r.finishFresh(context.WithoutCancel(ctx), m, finish, e, &a, &out), true
	}
	if failure == "" {
		a.Status, a.Error = attemptSucceeded, ""
		return r.finishFresh(ctx, m, finish, e, &a, &out), true
	}
	a.Status, a.Error = attemptFailed, failure
	return r.rollBackFailed(ctx, m, prior == nil, false, finish, e, &a, &out, w.From, w.To, w.SnapshotID, run.RollBack, nil), true
}

// rollBackFailed ends an upgrade from -> to that failed (a gate or the analysis): with
// auto_rollback (and unless keep) rollout has returned the engine to from, restoring snapshotID
// where the schema moved, and rollBack gives how (or its error); it says what happened and what
// state holds. stop, when set, takes over if the apply was interrupted during the rollback.
func (r *releaseResource) rollBackFailed(ctx context.Context, m *releaseModel, create, keep bool, finish func(api.Engine,
	*lastAttempt) convergeResult, e api.Engine, a *lastAttempt, out *convergeResult, from, to, snapshotID string,
	rollBack func() (upgrade.RollbackPlan, error), stop func(error) convergeResult) convergeResult {
	userID := m.UserID.ValueString()
	if !m.AutoRollback.ValueBool() || keep {
		out.diags.AddError("Engine Upgrade Failed", fmt.Sprintf("Upgrading user %s's engine from %s to %s failed: %s. auto_rollback is off, so "+
			"the engine was left as it is; state records what it runs. Roll back with a lower version and allow_downgrade, or destroy the release.",
			userID, from, to, a.Error))
		return r.finishFresh(ctx, m, finish, e, a, out)
	}
	rb, err := rollBack()
	if err != nil && ctx.Err() != nil && stop != nil {
		return stop(err)
	}
	if err != nil {
		res := r.finishFresh(ctx, m, finish, e, a, out)
		res.diags.Append(rollbackFailedAfterUpgradeDiag(userID, from, to, a.Error, errText(err), snapshotID, m.Version.ValueString(), create))
		return res
	}
	a.Status = attemptRolledBack
	res := r.finishFresh(ctx, m, finish, e, a, out)
	res.diags.Append(rolledBackDiag(userID, from, to, a.Error, rb, m.Version.ValueString(), create))
	return res
}

// rollBackOptions is the rollback a failed upgrade runs: nil without auto_rollback.
func (m *releaseModel) rollBackOptions() *rollout.RollbackOptions {
	if !m.AutoRollback.ValueBool() {
		return nil
	}
	drain, health := m.durations()
	return &rollout.RollbackOptions{Drain: drain, Health: health}
}

// watchPending reports whether an interrupted apply left an upgrade unjudged, and warns that the
// plan's apply judges it.
func watchPending(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, diags *diag.Diagnostics) bool {
	var w releaseWatch
	if !getPrivateJSON(ctx, priv, privateReleaseWatch, &w) {
		return false
	}
	left := w.Left()
	if left < 0 {
		left = 0
	}
	diags.AddWarning("Engine Upgrade Not Judged Yet", fmt.Sprintf("An earlier apply upgraded user %s's engine from %s to %s (operation %s) "+
		"and stopped during the analysis bake. "+
		"Applying resumes the bake for what is left of it (about %s), then runs the analysis once; a failing analysis rolls the engine back to "+
		"%s. Nothing is upgraded again.",
		w.Before.UserID, w.From, w.To, w.OperationID, left.Round(time.Second), w.From))
	return true
}

// watchPlanDiags states the watch an upgrade plan carries (how long it bakes, what it compares),
// and refuses a bake that cannot fit in the timeout.
func (m releaseModel) watchPlanDiags(ctx context.Context, userID, from, action string, create bool) diag.Diagnostics {
	var diags diag.Diagnostics
	w, ok := m.watchSettings()
	if !ok || action == upgrade.ActionNone {
		return diags
	}
	timeout, _ := m.Timeouts.Update(ctx, 30*time.Minute)
	if create {
		timeout, _ = m.Timeouts.Create(ctx, 30*time.Minute)
	}
	if w.Bake >= timeout {
		diags.AddAttributeError(path.Root("analysis").AtName("bake_time"), "Analysis Bake Exceeds The Timeout",
			fmt.Sprintf("The analysis of user %s's upgrade bakes %s, which does not fit in the %s timeout of this apply. Nothing was changed; "+
				"shorten analysis.bake_time or raise timeouts.", userID, w.Bake, timeout))
		return diags
	}
	var checks []string
	for _, row := range upgrade.Metrics {
		c := row.Name
		if t := row.Threshold(w.Config); t != nil {
			c += fmt.Sprintf(" (%s %g)", row.Limit, *t)
		}
		checks = append(checks, c)
	}
	checks = append(checks, fmt.Sprintf("warning kinds (max_new_warning_kinds %d)", w.Config.MaxNewWarningKinds))
	onFailure := fmt.Sprintf("A failing analysis fails the upgrade and rolls the engine back to %s (auto_rollback), restoring the "+
		"pre-upgrade snapshot where the brain schema moved.", from)
	if !m.AutoRollback.ValueBool() {
		onFailure = fmt.Sprintf("auto_rollback is off: a failing analysis fails the apply and leaves the engine on %s.", m.Version.ValueString())
	}
	diags.AddAttributeWarning(path.Root("analysis"), "Upgrade Watched By Analysis",
		fmt.Sprintf("After user %s's engine reports healthy on %s, this apply watches it for bake_time %s, then compares its %s over a %s "+
			"window with its own figures over the %s before the upgrade (read before the drain; baseline_tolerance %g). %s",
			userID, m.Version.ValueString(), w.Bake, strings.Join(checks, ", "), w.Window, w.Window, w.Config.BaselineTolerance, onFailure))
	if w.Window > w.Bake {
		diags.AddAttributeWarning(path.Root("analysis").AtName("window"), "Analysis Window Longer Than The Bake",
			fmt.Sprintf("analysis.window %s is longer than bake_time %s: the figures after the upgrade include up to %s from before it. Make the "+
				"window no longer than the bake.", w.Window, w.Bake, w.Window-w.Bake))
	}
	return diags
}
