package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// privateState is the part of the framework's private state a converge needs.
type privateState interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}

type convergeResult struct {
	diags diag.Diagnostics
	// interrupted: the apply stopped (cancel or timeout) while an operation kept running on the
	// control plane; it is recorded in private state for the next apply to attach to.
	interrupted bool
	// started: an operation moving the engine was started or attached to. An error without it
	// is a refusal: nothing changed, so the state stays as it was.
	started bool
}

// converge brings the engine to m.Version: attach to or wait out a running operation, re-check
// the plan's rules on fresh reads, honour the rollout window, snapshot if asked, take the eval
// baseline, upgrade (or downgrade, or restore), check the gates, roll back on failure. It leaves
// m holding the truth: the running version and how the attempt ended. prior is nil on create.
func (r *releaseResource) converge(ctx context.Context, m *releaseModel, prior *releaseModel, priv privateState) convergeResult {
	var out convergeResult
	userID, target := m.UserID.ValueString(), m.Version.ValueString()
	ctx = tflog.SetField(ctx, "user_id", userID)
	d := r.data.driver()
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		out.diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return out
	}
	attempt := lastAttempt{Version: target, StartedAt: rfc3339(time.Now())}
	if prior != nil {
		m.EngineID, m.PreviousVersion = prior.EngineID, prior.PreviousVersion
		if m.PreUpgradeSnapshotID.IsUnknown() {
			m.PreUpgradeSnapshotID = prior.PreUpgradeSnapshotID
		}
	}
	finish := func(e api.Engine, a *lastAttempt) convergeResult {
		// last_attempt first: fillEngine turns a still-unknown value into null.
		if a != nil {
			m.LastAttempt = a.object()
		} else if m.LastAttempt.IsUnknown() {
			if prior != nil {
				m.LastAttempt = prior.LastAttempt
			} else {
				m.LastAttempt = types.ObjectNull(lastAttemptAttrTypes)
			}
		}
		m.fillEngine(e)
		m.Version = types.StringValue(e.EngineVersion)
		m.resolvePlanned(cat, e.EngineVersion)
		r.rememberSnapshot(ctx, m, priv)
		return out
	}

	// began: this apply has sent a POST that starts work. An interrupt after it keeps the release
	// in state with the attempt in progress; before it, nothing is left anywhere.
	began := false
	stop := func(e api.Engine, op *api.Operation, key string, cause error) convergeResult {
		return r.interrupted(ctx, m, prior, priv, e, op, key, began, attempt, cause)
	}

	// 1. Attach to our own operation left running by an interrupted apply, or wait out another.
	pending, hasPending, diags := r.pendingOperation(ctx, priv, userID)
	out.diags.Append(diags...)
	attach := func(op api.Operation) bool {
		if hasPending && op.ID == pending.ID {
			return true
		}
		return (op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == target
	}
	e, attached, err := d.Idle(ctx, userID, attach)
	if err != nil && ctx.Err() != nil {
		began = attached != nil
		return stop(e, attached, "", err)
	}
	if client.IsNotFound(err) {
		out.diags.Append(engineNotFoundDiag(userID))
		return out
	}
	if err != nil && attached == nil {
		out.diags.Append(clientErrorDiag("Engine Read Failed", err))
		return out
	}
	if res, resumed := r.resumeWatch(ctx, m, prior, priv, e, attached, finish); resumed {
		return res
	}
	if attached == nil && hasPending {
		// Our operation from an interrupted apply ended between the refresh and now: record
		// how it ended rather than leaving the attempt "in progress".
		if op, gerr := r.data.Client.GetOperation(ctx, pending.ID); gerr == nil && op.Done() {
			attached = &op
		}
	}
	recovered := false
	if prior == nil && attached == nil {
		// A create killed or interrupted before it could save state left its operation on the
		// control plane: take the rollback target from it, not from the engine as it is now.
		if op, ok := r.interruptedCreate(ctx, userID, target, r.releaseOwner(ctx, priv, userID).Token); ok {
			attached, recovered = &op, true
		}
	}
	if prior == nil {
		m.EngineID = types.StringValue(e.EngineID)
		m.PreviousVersion = types.StringValue(e.EngineVersion)
		if attached != nil {
			m.PreviousVersion = types.StringValue(attached.FromVersion)
		}
	}
	if attached != nil {
		out.started = true
		attempt.applyOperation(*attached)
		attempt.SnapshotID = attached.SnapshotID
		out.diags.Append(priv.SetKey(ctx, privateReleaseOp, nil)...)
		if attached.SnapshotID != "" {
			m.PreUpgradeSnapshotID = types.StringValue(attached.SnapshotID)
		}
		if recovered {
			tflog.Info(ctx, "resuming an interrupted create", map[string]any{"operation_id": attached.ID, "from": attached.FromVersion, "status": attached.Status})
			out.diags.AddWarning("Interrupted Create Resumed", fmt.Sprintf("An earlier create of this release started operation %s (%s %s -> %s, %s) and stopped before it could save state. "+
				"This create takes its rollback target from that operation: previous_version = %q, pre_upgrade_snapshot_id = %q.",
				attached.ID, attached.Kind, attached.FromVersion, attached.ToVersion, attached.Status, attached.FromVersion, attached.SnapshotID))
			if attached.Status == api.OpFailed {
				if e.EngineVersion == target && e.Status == api.StatusRunning {
					return finish(e, &attempt)
				}
				began = true
				var rerr error
				if e, rerr = r.recoverEngine(ctx, m, e, *attached); rerr != nil {
					if ctx.Err() != nil {
						return stop(e, nil, "", rerr)
					}
					out.diags.AddError("Engine Recovery Failed", fmt.Sprintf("User %s's engine is %s on %s after an interrupted create (operation %s failed: %s), and returning it to %s failed: %s. "+
						"Restore it by hand from snapshot %s (engine-controlplane restore), then run terraform apply again.",
						userID, e.Status, e.EngineVersion, attached.ID, opErrorText(*attached), attached.FromVersion, errText(rerr), orUnknown(attached.SnapshotID)))
					return finish(e, &attempt)
				}
				attempt = lastAttempt{Version: target, StartedAt: rfc3339(time.Now())}
				attached = nil
			}
		}
	}
	if attached != nil {
		if attached.Status == api.OpSucceeded && e.EngineVersion == target {
			return finish(e, &attempt)
		}
		if attached.Status == api.OpFailed {
			out.diags.AddError("Engine Upgrade Failed", fmt.Sprintf("The upgrade of user %s's engine to %s that an earlier apply left running (operation %s) failed: %s. "+
				"The engine runs %s (%s). Run terraform plan to see what a retry would do.", userID, target, attached.ID, opErrorText(*attached), e.EngineVersion, e.Status))
			return finish(e, &attempt)
		}
	}
	if e.EngineVersion == target && e.Status == api.StatusRunning {
		if from := plannedFrom(m.PlannedUpgrade); prior != nil && from != "" && from != target {
			// The plan moves the engine, but someone else got it there first.
			a, migrated := r.reachedElsewhere(ctx, cat, e, from, m.SnapshotID.ValueString(), &out.diags)
			if migrated && plannedSnapshotUnknown(m.PlannedUpgrade) {
				m.PreUpgradeSnapshotID = types.StringValue(a.SnapshotID)
			}
			return finish(e, &a)
		}
		return finish(e, nil)
	}
	if from := plannedFrom(m.PlannedUpgrade); from != "" && from != e.EngineVersion {
		out.diags.AddError("Engine Changed Since Plan",
			fmt.Sprintf("User %s's engine ran %s when this plan was made but runs %s now (status %s): someone else changed it. Nothing was started. Run terraform plan again and review the new plan.",
				userID, from, e.EngineVersion, e.Status))
		return finish(e, nil)
	}

	// 2. The plan's rules again, on fresh reads (the snapshot may have expired or been tampered).
	timeout := 30 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	intent := upgrade.ReleaseIntent{Engine: e, Target: target, AutoSnapshot: m.AutoSnapshot.ValueBool(),
		AllowMajor: m.AllowMajorUpgrade.ValueBool(), AllowDowngrade: m.AllowDowngrade.ValueBool(), Deadline: time.Now().Add(timeout)}
	if diags := r.loadSnapshots(ctx, m, &intent); diags.HasError() {
		out.diags.Append(diags...)
		return finish(e, nil)
	}
	dec := upgrade.PlanRelease(cat, intent)
	if len(dec.Errors) > 0 {
		out.diags.Append(problemDiags(dec.Errors, true)...)
		return finish(e, nil)
	}
	if w, _ := m.window(); w != nil && !w.Contains(time.Now()) {
		out.diags.AddAttributeError(path.Root("rollout_window"), "Outside The Rollout Window",
			fmt.Sprintf("It is %s; upgrades of user %s's engine may start only in %s. Nothing was started. The window next opens at %s: apply again then, or change rollout_window.",
				time.Now().UTC().Format(time.RFC3339), userID, w.String(), w.NextOpening(time.Now()).Format(time.RFC3339)))
		return finish(e, nil)
	}

	// 3. Snapshot, baseline, operation.
	from := e.EngineVersion
	snapshotID := m.SnapshotID.ValueString()
	if dec.Action == upgrade.ActionRestore && snapshotID == "" && intent.RestoreSnapshot != nil {
		snapshotID = intent.RestoreSnapshot.ID
	}
	if dec.TakeSnapshot {
		tflog.Info(ctx, "taking the pre-upgrade snapshot", map[string]any{"phase": api.StepSnapshot})
		began = true
		snap, _, err := d.PreUpgradeSnapshot(ctx, "engine_release", e, target, api.CreateSnapshotRequest{
			Description: fmt.Sprintf("pre-upgrade %s -> %s (engine_release auto_snapshot)", from, target), RetentionDays: defaultRetentionDays})
		if err != nil && ctx.Err() != nil {
			return stop(e, nil, "", err)
		}
		if err != nil {
			out.diags.Append(operationErrorDiag("Pre-Upgrade Snapshot Failed", err))
			return finish(e, nil)
		}
		snapshotID = snap.ID
	}
	if dec.Action == upgrade.ActionUpgrade && dec.Path.RequiresSnapshot {
		m.PreUpgradeSnapshotID = types.StringValue(snapshotID)
		attempt.SnapshotID = snapshotID
	}
	gate := m.evalGate()
	if gate != nil {
		began = true
		score, err := d.Eval(ctx, userID, gate.Suite.ValueString())
		if err != nil && ctx.Err() != nil {
			return stop(e, nil, "", err)
		}
		if err != nil {
			out.diags.Append(operationErrorDiag("Baseline Eval Failed", err))
			return finish(e, nil)
		}
		attempt.Baseline = &score
	}
	watch, err := r.watchBefore(ctx, m)
	if err != nil {
		out.diags.Append(clientErrorDiag("Baseline Metrics Read Failed", err))
		return finish(e, nil)
	}
	drain, health := m.durations()
	// The snapshot and the baseline eval were operations too (each moves the generation): read
	// the engine again, so If-Match guards exactly the gap between this read and the start.
	if fresh, err := r.data.Client.GetEngine(ctx, userID); err != nil {
		if ctx.Err() != nil {
			return stop(e, nil, "", err)
		}
		out.diags.Append(clientErrorDiag("Engine Read Failed", err))
		return finish(e, nil)
	} else {
		e = fresh
	}
	if e.EngineVersion != from || e.CurrentOperationID != "" {
		out.diags.AddError("Engine Changed Since Plan", fmt.Sprintf("User %s's engine moved from %s to %s (operation %q) while the upgrade was being prepared. Nothing was started. Run terraform plan again.",
			userID, from, e.EngineVersion, e.CurrentOperationID))
		return finish(e, nil)
	}
	key := r.operationKey(ctx, priv, userID, prior == nil)
	began = true
	var op api.Operation
	if dec.Action == upgrade.ActionRestore {
		op, err = d.StartRestore(ctx, userID, key, e.Generation, api.RestoreRequest{SnapshotID: snapshotID, Version: target,
			DrainTimeoutSeconds: rollout.Seconds(drain), HealthTimeoutSeconds: rollout.Seconds(health)})
	} else {
		op, err = d.StartUpgrade(ctx, userID, key, e.Generation, api.UpgradeRequest{Version: target, SnapshotID: snapshotID,
			AllowDowngrade: dec.Action == upgrade.ActionDowngrade, DrainTimeoutSeconds: rollout.Seconds(drain), HealthTimeoutSeconds: rollout.Seconds(health)})
	}
	if err != nil && ctx.Err() != nil {
		// The POST may have started the upgrade though its answer never came: record its key,
		// by which the next plan finds the operation.
		return stop(e, nil, key, err)
	}
	if err != nil {
		if client.HasCode(err, api.CodePreconditionFailed) {
			out.diags.AddError("Engine Changed Since Plan", fmt.Sprintf("User %s's engine changed between the read and the upgrade (%s). Nothing was started. Run terraform plan again.", userID, errText(err)))
		} else {
			out.diags.Append(clientErrorDiag("Engine Upgrade Not Started", err))
		}
		return finish(e, nil)
	}
	out.started = true
	out.diags.Append(setPendingOperation(ctx, priv, privateReleaseOp, op)...)
	attempt.OperationID = op.ID
	tflog.Info(ctx, "upgrade started", map[string]any{"operation_id": op.ID, "from": from, "to": target})
	op, err = d.Wait(ctx, op)
	if err != nil && ctx.Err() != nil {
		return stop(e, &op, "", err)
	}
	out.diags.Append(priv.SetKey(ctx, privateReleaseOp, nil)...)
	attempt.applyOperation(op)

	// 4. Gates.
	var failure string
	var oe *rollout.OperationError
	switch {
	case errors.As(err, &oe):
		failure = fmt.Sprintf("the %s step failed: %s", oe.Step(), opErrorText(oe.Op))
	case err != nil:
		out.diags.Append(clientErrorDiag("Engine Upgrade Wait Failed", err))
		return finish(e, &attempt)
	case gate != nil:
		score, err := d.Eval(ctx, userID, gate.Suite.ValueString())
		if err != nil && ctx.Err() != nil {
			return stop(e, &op, "", err)
		}
		if err != nil {
			failure = "the post-upgrade eval did not run: " + errText(err)
			break
		}
		attempt.Score = &score
		if reg := *attempt.Baseline - score; reg > gate.MaxRegression.ValueFloat64() {
			failure = fmt.Sprintf("the eval gate failed: suite %q scored %.3f on %s against a baseline of %.3f on %s, a regression of %.3f, above max_regression %.3f",
				gate.Suite.ValueString(), score, target, *attempt.Baseline, from, reg, gate.MaxRegression.ValueFloat64())
		}
	}
	if failure == "" && watch != nil {
		watch.From, watch.To, watch.SnapshotID, watch.OperationID, watch.StartedAt = from, target, snapshotID, op.ID, attempt.StartedAt
		var stopped bool
		if failure, stopped = r.watchUpgrade(ctx, m, prior == nil, priv, watch, &attempt, &out); stopped {
			return r.finishFresh(context.WithoutCancel(ctx), m, finish, e, &attempt, &out)
		}
	}
	if failure == "" {
		attempt.Status, attempt.Error = attemptSucceeded, ""
		return r.finishFresh(ctx, m, finish, e, &attempt, &out)
	}

	// 5. Failure: roll back when asked.
	attempt.Status, attempt.Error = attemptFailed, failure
	return r.rollBackFailed(ctx, m, prior == nil, dec.Action == upgrade.ActionRestore, finish, e, &attempt, &out, from, target, snapshotID,
		func(err error) convergeResult { return stop(e, &op, "", err) })
}

// rollbackFailedAfterUpgradeDiag is the error of an upgrade whose automatic rollback failed too,
// saying what state holds: an update records what runs (now); a create keeps the release,
// tainted, only when the engine no longer runs from (see Create).
func rollbackFailedAfterUpgradeDiag(userID, from, target, failure, rbErr, snapshotID, now string, create bool) diag.Diagnostic {
	recorded := fmt.Sprintf("State records that the engine runs %s.", now)
	switch {
	case create && now == from:
		recorded = fmt.Sprintf("The engine still reports %s, so this create saved nothing to state.", from)
	case create:
		recorded = fmt.Sprintf("The engine runs %s, so this create keeps the release in state, tainted: its destroy (or the replacement the next apply plans) tries the rollback to %s again.", now, from)
	}
	return diag.NewErrorDiagnostic("Engine Upgrade Failed And Rollback Failed", fmt.Sprintf("Upgrading user %s's engine from %s to %s failed (%s), and the automatic rollback to %s failed too: %s. "+
		"%s Restore it by hand from snapshot %s (engine-controlplane restore), then run terraform plan.", userID, from, target, failure, from, rbErr, recorded, orUnknown(snapshotID)))
}

// rolledBackDiag says what an automatic rollback did (a snapshot restore, or a redeploy on the
// same brain), what the engine runs after it (now), and what state holds.
func rolledBackDiag(userID, from, target, failure string, rb upgrade.RollbackPlan, now string, create bool) diag.Diagnostic {
	how := fmt.Sprintf("%s was redeployed on the same brain (its schema had not moved, so no write was lost)", from)
	switch {
	case rb.To == "":
		how = fmt.Sprintf("the engine already ran %s again, healthy, so no rollback was started", from)
	case rb.Restore:
		how = fmt.Sprintf("the brain was restored from snapshot %s at %s (writes made after that snapshot are lost)", rb.SnapshotID, from)
	}
	where := fmt.Sprintf("The engine runs %s and is healthy.", now)
	if now != from {
		where = fmt.Sprintf("Yet the engine runs %s now, not %s: check it with data \"engine_instance\".", now, from)
	}
	recorded := fmt.Sprintf("State records that it runs %s and last_attempt.status = \"rolled_back\"; the next plan shows the upgrade as still pending.", now)
	switch {
	case create && now == from:
		recorded = "This create saved nothing to state, so the next plan shows the create again."
	case create:
		recorded = fmt.Sprintf("This create keeps the release in state, tainted: the next apply replaces it, and its destroy first returns the engine to %s.", from)
	}
	return diag.NewErrorDiagnostic("Engine Upgrade Rolled Back", fmt.Sprintf("Upgrading user %s's engine from %s to %s failed: %s.\n\nIt was rolled back automatically: %s. %s %s "+
		"Fix the cause (or pick another version) before applying again.", userID, from, target, failure, how, where, recorded))
}

// finishFresh re-reads the engine so state holds what really runs, whatever happened above.
func (r *releaseResource) finishFresh(ctx context.Context, m *releaseModel, finish func(api.Engine, *lastAttempt) convergeResult, e api.Engine, a *lastAttempt, out *convergeResult) convergeResult {
	if a.FinishedAt == "" && a.Status != attemptInProgress {
		a.FinishedAt = rfc3339(time.Now())
	}
	if fresh, err := r.data.Client.GetEngine(ctx, m.UserID.ValueString()); err == nil {
		e = fresh
	} else {
		out.diags.Append(clientErrorDiag("Engine Read Failed", err))
	}
	finish(e, a)
	return *out
}

// loadSnapshots reads the snapshots the rules need: the configured one, and for a downgrade the
// one a restore would use (snapshot_id, else the pre-upgrade snapshot in state).
func (r *releaseResource) loadSnapshots(ctx context.Context, m *releaseModel, in *upgrade.ReleaseIntent) diag.Diagnostics {
	var diags diag.Diagnostics
	get := func(id string) *api.Snapshot {
		s, err := r.data.Client.GetSnapshot(ctx, id)
		if client.IsNotFound(err) {
			diags.AddAttributeError(path.Root("snapshot_id"), "Snapshot Not Found",
				fmt.Sprintf("Snapshot %s does not exist on the control plane (deleted, or never taken). Reference an existing engine_brain_snapshot of user %s, or set auto_snapshot = true.", id, in.Engine.UserID))
			return nil
		}
		if err != nil {
			diags.Append(clientErrorAttrDiag(path.Root("snapshot_id"), "Snapshot Read Failed", err))
			return nil
		}
		return &s
	}
	switch {
	case m.SnapshotID.IsUnknown():
		in.SnapshotUnknown = true
	case m.SnapshotID.ValueString() != "":
		in.SnapshotID = m.SnapshotID.ValueString()
		in.Snapshot = get(in.SnapshotID)
		in.RestoreSnapshot = in.Snapshot
	case !m.PreUpgradeSnapshotID.IsUnknown() && m.PreUpgradeSnapshotID.ValueString() != "":
		if s, err := r.data.Client.GetSnapshot(ctx, m.PreUpgradeSnapshotID.ValueString()); err == nil {
			in.RestoreSnapshot = &s
		}
	}
	return diags
}

// problemDiags turns upgrade.Problems into diagnostics on their attributes.
func problemDiags(ps []upgrade.Problem, asErrors bool) diag.Diagnostics {
	var diags diag.Diagnostics
	for _, p := range ps {
		switch {
		case asErrors && p.Attribute != "":
			diags.AddAttributeError(path.Root(p.Attribute), p.Summary, p.Detail)
		case asErrors:
			diags.AddError(p.Summary, p.Detail)
		case p.Attribute != "":
			diags.AddAttributeWarning(path.Root(p.Attribute), p.Summary, p.Detail)
		default:
			diags.AddWarning(p.Summary, p.Detail)
		}
	}
	return diags
}

// plannedFrom is planned_upgrade.from, or "" when unknown or null.
func plannedFrom(o types.Object) string {
	if o.IsNull() || o.IsUnknown() {
		return ""
	}
	if v, ok := o.Attributes()["from"].(types.String); ok && !v.IsUnknown() {
		return v.ValueString()
	}
	return ""
}

// resolvePlanned makes planned_upgrade fully known after apply: a value planned with unknown
// parts (the snapshot auto_snapshot takes) gets them filled from what apply did.
func (m *releaseModel) resolvePlanned(cat *upgrade.Catalog, from string) {
	if !m.PlannedUpgrade.IsNull() && !m.PlannedUpgrade.IsUnknown() {
		attrs := m.PlannedUpgrade.Attributes()
		snap, ok := attrs["snapshot_id"].(types.String)
		if !ok || !snap.IsUnknown() {
			return
		}
		vals := map[string]attr.Value{}
		for k, v := range attrs {
			vals[k] = v
		}
		vals["snapshot_id"] = types.StringValue(m.PreUpgradeSnapshotID.ValueString())
		m.PlannedUpgrade = types.ObjectValueMust(plannedUpgradeAttrTypes, vals)
		return
	}
	if from == "" {
		from = m.Version.ValueString()
	}
	p, err := cat.Path(from, m.Version.ValueString())
	action := upgrade.ActionNone
	if err == nil && p.Kind != upgrade.KindNone {
		action = upgrade.ActionUpgrade
	}
	m.PlannedUpgrade = plannedUpgradeObject(action, p, types.StringValue(m.PreUpgradeSnapshotID.ValueString()))
}
