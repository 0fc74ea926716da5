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
	ctx = tflog.SetField(ctx, "user_id", m.UserID.ValueString())
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		var out convergeResult
		out.diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return out
	}
	ap := &releaseApply{r: r, ctx: ctx, m: m, prior: prior, priv: priv, cat: cat, d: r.data.driver(),
		userID: m.UserID.ValueString(), target: m.Version.ValueString()}
	ap.attempt = lastAttempt{Version: ap.target, StartedAt: rfc3339(time.Now())}
	if prior != nil {
		m.EngineID, m.PreviousVersion = prior.EngineID, prior.PreviousVersion
		if m.PreUpgradeSnapshotID.IsUnknown() {
			m.PreUpgradeSnapshotID = prior.PreUpgradeSnapshotID
		}
	}
	// 1. Attach to our own operation left running by an interrupted apply, or wait out another.
	e, res, done := ap.attach()
	if done {
		return res
	}
	// 2. The plan's rules again, on fresh reads.
	dec, intent, res, done := ap.recheck(e)
	if done {
		return res
	}
	// 3. Snapshot, baseline, operation; 4. gates; 5. roll back on failure.
	return ap.upgrade(e, dec, intent)
}

// releaseApply is one converge of an engine_release: the model it fills and what the steps
// share (the attempt so far, whether a POST that starts work was sent).
type releaseApply struct {
	r              *releaseResource
	ctx            context.Context
	m, prior       *releaseModel
	priv           privateState
	cat            *upgrade.Catalog
	d              *rollout.Driver
	userID, target string
	attempt        lastAttempt
	// began: this apply has sent a POST that starts work. An interrupt after it keeps the release
	// in state with the attempt in progress; before it, nothing is left anywhere.
	began bool
	out   convergeResult
}

// finish fills the model from e and a (last_attempt; nil keeps the prior one) and returns the
// result.
func (ap *releaseApply) finish(e api.Engine, a *lastAttempt) convergeResult {
	m := ap.m
	// last_attempt first: fillEngine turns a still-unknown value into null.
	if a != nil {
		m.LastAttempt = a.object()
	} else if m.LastAttempt.IsUnknown() {
		if ap.prior != nil {
			m.LastAttempt = ap.prior.LastAttempt
		} else {
			m.LastAttempt = types.ObjectNull(lastAttemptAttrTypes)
		}
	}
	m.fillEngine(e)
	m.Version = types.StringValue(e.EngineVersion)
	m.resolvePlanned(ap.cat, e.EngineVersion)
	ap.r.rememberSnapshot(ap.ctx, m, ap.priv)
	return ap.out
}

// stop is the result of an apply interrupted (cancel or timeout) at e, with op running or key
// sent.
func (ap *releaseApply) stop(e api.Engine, op *api.Operation, key string, cause error) convergeResult {
	return ap.r.interrupted(ap.ctx, ap.m, ap.prior, ap.priv, e, op, key, ap.began, ap.attempt, cause)
}

// attach waits until no operation runs on the engine, attaching to ours (one an interrupted apply
// left running, or a create's found on the control plane), and ends the converge (done) when
// that settles it, the engine already runs the target, or it changed since the plan.
func (ap *releaseApply) attach() (e api.Engine, res convergeResult, done bool) {
	ctx, m, prior, userID, target := ap.ctx, ap.m, ap.prior, ap.userID, ap.target
	pending, hasPending, diags := ap.r.pendingOperation(ctx, ap.priv, userID)
	ap.out.diags.Append(diags...)
	attach := func(op api.Operation) bool {
		if hasPending && op.ID == pending.ID {
			return true
		}
		return (op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == target
	}
	e, attached, err := ap.d.Idle(ctx, userID, attach)
	if err != nil && ctx.Err() != nil {
		ap.began = attached != nil
		return e, ap.stop(e, attached, "", err), true
	}
	if client.IsNotFound(err) {
		ap.out.diags.Append(engineNotFoundDiag(userID))
		return e, ap.out, true
	}
	if err != nil && attached == nil {
		ap.out.diags.Append(clientErrorDiag("Engine Read Failed", err))
		return e, ap.out, true
	}
	if res, resumed := ap.r.resumeWatch(ctx, m, prior, ap.priv, e, attached, ap.cat, ap.finish); resumed {
		return e, res, true
	}
	if attached == nil && hasPending {
		// Our operation from an interrupted apply ended between the refresh and now: record
		// how it ended rather than leaving the attempt "in progress".
		if op, gerr := ap.r.data.Client.GetOperation(ctx, pending.ID); gerr == nil && op.Done() {
			attached = &op
		}
	}
	recovered := false
	if prior == nil && attached == nil {
		// A create killed or interrupted before it could save state left its operation on the
		// control plane: take the rollback target from it, not from the engine as it is now.
		if op, ok := ap.r.interruptedCreate(ctx, userID, target, ap.r.releaseOwner(ctx, ap.priv, userID).Token); ok {
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
		if e, res, done = ap.attached(e, attached, recovered); done {
			return e, res, true
		}
	}
	return ap.atTarget(e)
}

// attached takes over an operation an earlier apply started: its outcome ends the converge
// (done), except a recovered create whose failed operation was undone, which starts over.
func (ap *releaseApply) attached(e api.Engine, attached *api.Operation, recovered bool) (api.Engine, convergeResult, bool) {
	ctx, m, userID, target := ap.ctx, ap.m, ap.userID, ap.target
	ap.out.started = true
	ap.attempt.applyOperation(*attached)
	ap.attempt.SnapshotID = attached.SnapshotID
	ap.out.diags.Append(ap.priv.SetKey(ctx, privateReleaseOp, nil)...)
	if attached.SnapshotID != "" {
		m.PreUpgradeSnapshotID = types.StringValue(attached.SnapshotID)
	}
	if recovered {
		tflog.Info(ctx, "resuming an interrupted create",
			map[string]any{"operation_id": attached.ID, "from": attached.FromVersion, "status": attached.Status})
		ap.out.diags.AddWarning("Interrupted Create Resumed", fmt.Sprintf("An earlier create of this release started "+
			"operation %s (%s %s -> %s, %s) and stopped before it could save state. This create takes its rollback target from that operation: "+
			"previous_version = %q, pre_upgrade_snapshot_id = %q.",
			attached.ID, attached.Kind, attached.FromVersion, attached.ToVersion, attached.Status, attached.FromVersion, attached.SnapshotID))
		if attached.Status == api.OpFailed {
			if e.EngineVersion == target && e.Status == api.StatusRunning {
				return e, ap.finish(e, &ap.attempt), true
			}
			ap.began = true
			var rerr error
			if e, rerr = ap.r.recoverEngine(ctx, m, e, *attached); rerr != nil {
				if ctx.Err() != nil {
					return e, ap.stop(e, nil, "", rerr), true
				}
				ap.out.diags.AddError("Engine Recovery Failed", fmt.Sprintf("User %s's engine is %s on %s after an interrupted create "+
					"(operation %s failed: %s), and returning it to %s failed: %s. "+
					"Restore it by hand from snapshot %s (engine-controlplane restore), then run terraform apply again.",
					userID, e.Status, e.EngineVersion, attached.ID, opErrorText(*attached), attached.FromVersion, errText(rerr),
					orUnknown(attached.SnapshotID)))
				return e, ap.finish(e, &ap.attempt), true
			}
			ap.attempt = lastAttempt{Version: target, StartedAt: rfc3339(time.Now())}
			return e, ap.out, false
		}
	}
	if attached.Status == api.OpSucceeded && e.EngineVersion == target {
		return e, ap.finish(e, &ap.attempt), true
	}
	if attached.Status == api.OpFailed {
		ap.out.diags.AddError("Engine Upgrade Failed", fmt.Sprintf("The upgrade of user %s's engine to %s that an earlier apply left running "+
			"(operation %s) failed: %s. The engine runs %s (%s). Run terraform plan to see what a retry would do.",
			userID, target, attached.ID, opErrorText(*attached), e.EngineVersion, e.Status))
		return e, ap.finish(e, &ap.attempt), true
	}
	return e, ap.out, false
}

// atTarget ends the converge (done) when the engine already runs the target, or no longer runs
// what the plan was made from.
func (ap *releaseApply) atTarget(e api.Engine) (api.Engine, convergeResult, bool) {
	m, target := ap.m, ap.target
	if e.EngineVersion == target && e.Status == api.StatusRunning {
		if from := plannedFrom(m.PlannedUpgrade); ap.prior != nil && from != "" && from != target {
			// The plan moves the engine, but someone else got it there first.
			a, migrated := ap.r.reachedElsewhere(ap.ctx, ap.cat, e, from, m.SnapshotID.ValueString(), &ap.out.diags)
			if migrated && plannedSnapshotUnknown(m.PlannedUpgrade) {
				m.PreUpgradeSnapshotID = types.StringValue(a.SnapshotID)
			}
			return e, ap.finish(e, &a), true
		}
		return e, ap.finish(e, nil), true
	}
	if from := plannedFrom(m.PlannedUpgrade); from != "" && from != e.EngineVersion {
		ap.out.diags.AddError("Engine Changed Since Plan",
			fmt.Sprintf("User %s's engine ran %s when this plan was made but runs %s now (status %s): someone else changed it. "+
				"Nothing was started. Run terraform plan again and review the new plan.",
				ap.userID, from, e.EngineVersion, e.Status))
		return e, ap.finish(e, nil), true
	}
	return e, ap.out, false
}

// recheck applies the plan's rules again on fresh reads (the snapshot may have expired or been
// tampered with) and the rollout window; done when they refuse.
func (ap *releaseApply) recheck(e api.Engine) (upgrade.ReleaseDecision, upgrade.ReleaseIntent, convergeResult, bool) {
	ctx, m := ap.ctx, ap.m
	timeout := 30 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	intent := upgrade.ReleaseIntent{Engine: e, Target: ap.target, AutoSnapshot: m.AutoSnapshot.ValueBool(),
		AllowMajor: m.AllowMajorUpgrade.ValueBool(), AllowDowngrade: m.AllowDowngrade.ValueBool(), Deadline: time.Now().Add(timeout)}
	if diags := ap.r.loadSnapshots(ctx, m, &intent); diags.HasError() {
		ap.out.diags.Append(diags...)
		return upgrade.ReleaseDecision{}, intent, ap.finish(e, nil), true
	}
	dec := upgrade.PlanRelease(ap.cat, intent)
	if len(dec.Errors) > 0 {
		ap.out.diags.Append(problemDiags(dec.Errors, true)...)
		return dec, intent, ap.finish(e, nil), true
	}
	if w, _ := m.window(); w != nil && !w.Contains(time.Now()) {
		ap.out.diags.AddAttributeError(path.Root("rollout_window"), "Outside The Rollout Window",
			fmt.Sprintf("It is %s; upgrades of user %s's engine may start only in %s. Nothing was started. "+
				"The window next opens at %s: apply again then, or change rollout_window.",
				time.Now().UTC().Format(time.RFC3339), ap.userID, w.String(), w.NextOpening(time.Now()).Format(time.RFC3339)))
		return dec, intent, ap.finish(e, nil), true
	}
	return dec, intent, ap.out, false
}

// upgrade runs the decided move in rollout's order (Driver.Release: the snapshot and the
// baselines, the operation, the gates, the bake, and the rollback when they fail) and maps how it
// ended: a stop, the verdict, or the rollback.
func (ap *releaseApply) upgrade(e api.Engine, dec upgrade.ReleaseDecision, intent upgrade.ReleaseIntent) convergeResult {
	from := e.EngineVersion
	rr, gate := ap.releaseRun(e, dec, intent)
	run := ap.d.Release(ap.ctx, rr)
	if res, done := ap.stopped(run, from, rr.Move.Key); done {
		return res
	}
	e = run.Engine
	failure, res, done := ap.failure(run, gate, rr.Watch, from)
	if done {
		return res
	}
	if failure == "" {
		ap.attempt.Status, ap.attempt.Error = attemptSucceeded, ""
		return ap.r.finishFresh(ap.ctx, ap.m, ap.finish, e, &ap.attempt, &ap.out)
	}
	// Failure: roll back when asked.
	ap.attempt.Status, ap.attempt.Error = attemptFailed, failure
	return ap.r.rollBackFailed(ap.ctx, ap.m, ap.prior == nil, dec.Action == upgrade.ActionRestore, ap.finish, e, &ap.attempt, &ap.out,
		from, ap.target, run.SnapshotID, run.RollBack, func(err error) convergeResult { return ap.stop(e, &run.Op, "", err) })
}

// releaseRun maps the decision and the model to rollout's run (with auto_rollback, and unless
// it restores, its rollback), with the hooks that record each moment: began, the snapshot, the
// baseline, the pending operation, the score, the watch.
func (ap *releaseApply) releaseRun(e api.Engine, dec upgrade.ReleaseDecision, intent upgrade.ReleaseIntent) (
	rollout.ReleaseRun, *evalGateModel) {
	ctx, m, userID, from, target := ap.ctx, ap.m, ap.userID, e.EngineVersion, ap.target
	snapshotID := m.SnapshotID.ValueString()
	if dec.Action == upgrade.ActionRestore && snapshotID == "" && intent.RestoreSnapshot != nil {
		snapshotID = intent.RestoreSnapshot.ID
	}
	drain, health := m.durations()
	rr := rollout.ReleaseRun{Engine: e, TakeSnapshot: dec.TakeSnapshot, Snapshot: api.CreateSnapshotRequest{
		Description: fmt.Sprintf("pre-upgrade %s -> %s (engine_release auto_snapshot)", from, target), RetentionDays: defaultRetentionDays},
		Move: rollout.ReleaseMove{UserID: userID, Version: target, SnapshotID: snapshotID,
			Key:     ap.r.operationKey(ctx, ap.priv, userID, ap.prior == nil),
			Restore: dec.Action == upgrade.ActionRestore, Downgrade: dec.Action == upgrade.ActionDowngrade, Drain: drain, Health: health,
			Started: func(op api.Operation) {
				ap.began, ap.out.started = true, true
				ap.out.diags.Append(setPendingOperation(ctx, ap.priv, privateReleaseOp, op)...)
				ap.attempt.OperationID = op.ID
				tflog.Info(ctx, "upgrade started", map[string]any{"operation_id": op.ID, "from": from, "to": target})
			}}}
	gate := m.evalGate()
	if gate != nil {
		rr.EvalSuite, rr.MaxRegression = gate.Suite.ValueString(), gate.MaxRegression.ValueFloat64()
	}
	if dec.Action != upgrade.ActionRestore {
		rr.RollBack, rr.Catalog = m.rollBackOptions(), ap.cat
	}
	if w, ok := m.watchSettings(); ok {
		w.From, w.To, w.StartedAt = from, target, ap.attempt.StartedAt
		rr.Watch = &w
	}
	rr.Hooks = rollout.ReleaseHooks{
		Begin: func(step string) {
			if step == rollout.RunSnapshot {
				tflog.Info(ctx, "taking the pre-upgrade snapshot", map[string]any{"phase": api.StepSnapshot})
			}
			ap.began = true
		},
		Snapshot: func(id string) {
			if dec.Action == upgrade.ActionUpgrade && dec.Path.RequiresSnapshot {
				m.PreUpgradeSnapshotID = types.StringValue(id)
				ap.attempt.SnapshotID = id
			}
		},
		Baseline: func(score float64) { ap.attempt.Baseline = &score },
		Moved: func(op api.Operation) {
			ap.out.diags.Append(ap.priv.SetKey(ctx, privateReleaseOp, nil)...)
			ap.attempt.applyOperation(op)
		},
		Score:  func(score float64) { ap.attempt.Score = &score },
		Baking: ap.r.baking(ctx, ap.priv, &ap.out),
	}
	return rr, gate
}

// stopped ends the converge (done) for a run that stopped before its verdict: interrupted, or a
// step before the gates failed.
func (ap *releaseApply) stopped(run rollout.ReleaseResult, from, key string) (convergeResult, bool) {
	e := run.Engine
	switch run.Step {
	case rollout.RunSnapshot, rollout.RunBaseline:
		if run.Interrupted {
			return ap.stop(e, nil, "", run.Err), true
		}
		summary := "Pre-Upgrade Snapshot Failed"
		if run.Step == rollout.RunBaseline {
			summary = "Baseline Eval Failed"
		}
		ap.out.diags.Append(operationErrorDiag(summary, run.Err))
		return ap.finish(e, nil), true
	case rollout.RunMetrics:
		ap.out.diags.Append(clientErrorDiag("Baseline Metrics Read Failed", run.Err))
		return ap.finish(e, nil), true
	case rollout.RunMove:
		var me *rollout.MoveError
		errors.As(run.Err, &me)
		return ap.moveFailed(me, from, key), true
	case rollout.RunWait:
		if run.Interrupted {
			return ap.stop(e, &run.Op, "", run.Err), true
		}
		ap.out.diags.Append(clientErrorDiag("Engine Upgrade Wait Failed", run.Err))
		return ap.finish(e, &ap.attempt), true
	case rollout.RunEval:
		return ap.stop(e, &run.Op, "", run.Err), true
	}
	return ap.out, false
}

// moveFailed ends the converge for a move that failed before its operation ran.
func (ap *releaseApply) moveFailed(me *rollout.MoveError, from, key string) convergeResult {
	ctx, e, userID := ap.ctx, me.Engine, ap.userID
	if me.Step == rollout.MoveStart {
		ap.began = true
	}
	switch {
	case me.Step == rollout.MoveChanged:
		ap.out.diags.AddError("Engine Changed Since Plan", fmt.Sprintf("User %s's engine moved from %s to %s (operation %q) while "+
			"the upgrade was being prepared. Nothing was started. Run terraform plan again.", userID, from, e.EngineVersion, e.CurrentOperationID))
	case ctx.Err() != nil && me.Step == rollout.MoveStart:
		// The POST may have started the upgrade though its answer never came: record its key,
		// by which the next plan finds the operation.
		return ap.stop(e, nil, key, me.Err)
	case ctx.Err() != nil:
		return ap.stop(e, nil, "", me.Err)
	case me.Step == rollout.MoveRead:
		ap.out.diags.Append(clientErrorDiag("Engine Read Failed", me.Err))
	case client.HasCode(me.Err, api.CodePreconditionFailed):
		ap.out.diags.AddError("Engine Changed Since Plan", fmt.Sprintf("User %s's engine changed between the read and the upgrade (%s). "+
			"Nothing was started. Run terraform plan again.", userID, errText(me.Err)))
	default:
		ap.out.diags.Append(clientErrorDiag("Engine Upgrade Not Started", me.Err))
	}
	return ap.finish(e, nil)
}

// failure says why the upgrade failed ("" when it passed): the operation, the eval gate or the
// analysis; done when the apply was interrupted during the bake.
func (ap *releaseApply) failure(run rollout.ReleaseResult, gate *evalGateModel, w *releaseWatch, from string) (
	string, convergeResult, bool) {
	switch {
	case run.OpErr != nil:
		return fmt.Sprintf("the %s step failed: %s", run.OpErr.Step(), opErrorText(run.OpErr.Op)), ap.out, false
	case run.EvalErr != nil:
		return "the post-upgrade eval did not run: " + errText(run.EvalErr), ap.out, false
	case run.Regressed:
		return fmt.Sprintf("the eval gate failed: suite %q scored %.3f on %s against a baseline of %.3f on %s, a regression of "+
				"%.3f, above max_regression %.3f",
				gate.Suite.ValueString(), run.Score, ap.target, run.Baseline, from, run.Baseline-run.Score, gate.MaxRegression.ValueFloat64()),
			ap.out, false
	case run.Bake != nil:
		failure, stopped := ap.r.judgeBake(ap.ctx, ap.m, ap.prior == nil, ap.priv, w, *run.Bake, &ap.attempt, &ap.out)
		if stopped {
			return "", ap.r.finishFresh(context.WithoutCancel(ap.ctx), ap.m, ap.finish, run.Engine, &ap.attempt, &ap.out), true
		}
		return failure, ap.out, false
	}
	return "", ap.out, false
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
		recorded = fmt.Sprintf("The engine runs %s, so this create keeps the release in state, tainted: its destroy (or the replacement the "+
			"next apply plans) tries the rollback to %s again.", now, from)
	}
	return diag.NewErrorDiagnostic("Engine Upgrade Failed And Rollback Failed", fmt.Sprintf("Upgrading user %s's engine from %s to %s "+
		"failed (%s), and the automatic rollback to %s failed too: %s. %s Restore it by hand from snapshot %s (engine-controlplane "+
		"restore), then run terraform plan.", userID, from, target, failure, from, rbErr, recorded, orUnknown(snapshotID)))
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
	recorded := fmt.Sprintf("State records that it runs %s and last_attempt.status = \"rolled_back\"; the next plan "+
		"shows the upgrade as still pending.", now)
	switch {
	case create && now == from:
		recorded = "This create saved nothing to state, so the next plan shows the create again."
	case create:
		recorded = fmt.Sprintf("This create keeps the release in state, tainted: the next apply replaces it, and its destroy "+
			"first returns the engine to %s.", from)
	}
	return diag.NewErrorDiagnostic("Engine Upgrade Rolled Back", fmt.Sprintf("Upgrading user %s's engine from %s to %s failed: %s.\n\nIt "+
		"was rolled back automatically: %s. %s %s Fix the cause (or pick another version) before applying again.",
		userID, from, target, failure, how, where, recorded))
}

// finishFresh re-reads the engine so state holds what really runs, whatever happened above.
func (r *releaseResource) finishFresh(ctx context.Context, m *releaseModel, finish func(api.Engine, *lastAttempt) convergeResult,
	e api.Engine, a *lastAttempt, out *convergeResult) convergeResult {
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
				fmt.Sprintf("Snapshot %s does not exist on the control plane (deleted, or never taken). Reference an existing engine_brain_snapshot "+
					"of user %s, or set auto_snapshot = true.", id, in.Engine.UserID))
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
