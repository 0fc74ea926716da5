package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
)

// This file holds how engine_release survives an apply cut short (Ctrl-C, a timeout, SIGKILL,
// a control-plane restart): what an interrupted apply records, and how the next plan or apply
// finds the operation it started on the control plane.

// interrupted records an apply stopped (cancel or timeout) part-way. A create that had begun
// work, and every update, keeps the release in state with the attempt in progress, and private
// state the operation (or, when the answer to the POST that starts it never came, the POST's
// idempotency key), so the next plan attaches to it. A create that had begun nothing fails and
// leaves nothing, on the control plane or in state.
func (r *releaseResource) interrupted(ctx context.Context, m *releaseModel, prior *releaseModel, priv privateState, e api.Engine,
	op *api.Operation, key string, began bool, a lastAttempt, cause error) convergeResult {
	var out convergeResult
	userID := m.UserID.ValueString()
	if prior == nil && !began {
		out.diags.AddError("Create Interrupted", fmt.Sprintf("The apply stopped (%v) before it started anything on user %s's engine: nothing "+
			"was changed and nothing is recorded. Run terraform apply again to create the release.", cause, userID))
		return out
	}
	out.interrupted = true
	// Something began, so state records the attempt (a refusal, with nothing begun, would not).
	out.started = began || (op != nil && op.ID != "") || key != ""
	wctx := context.WithoutCancel(ctx)
	switch {
	case op != nil && op.ID != "":
		a.applyOperation(*op)
		out.diags.Append(setPendingOperation(wctx, priv, privateReleaseOp, *op)...)
	case key != "":
		out.diags.Append(setPendingKey(wctx, priv, userID, key)...)
	}
	a.Status = attemptInProgress
	m.LastAttempt = a.object()
	// A create interrupted early has computed values still unknown: fill them from what is
	// known, since Terraform refuses unknown values after an apply.
	if m.ID.IsUnknown() {
		m.ID = types.StringValue(userID)
	}
	if m.EngineID.IsUnknown() {
		m.EngineID = types.StringValue(e.EngineID)
	}
	if m.PreviousVersion.IsUnknown() {
		switch {
		case prior != nil:
			m.PreviousVersion = prior.PreviousVersion
		case op != nil && op.FromVersion != "" && op.Kind != api.OpSnapshot:
			m.PreviousVersion = types.StringValue(op.FromVersion)
		default:
			m.PreviousVersion = types.StringValue(e.EngineVersion)
		}
	}
	if m.PreUpgradeSnapshotID.IsUnknown() {
		m.PreUpgradeSnapshotID = optionalString(a.SnapshotID)
	}
	if m.SchemaVersion.IsUnknown() {
		m.SchemaVersion = types.Int64Value(int64(e.SchemaVersion))
	}
	if cat, err := r.data.Catalog(wctx); err == nil {
		m.resolvePlanned(cat, plannedFrom(m.PlannedUpgrade))
	}
	msg := fmt.Sprintf("The apply stopped (%v) while user %s's engine was moving to %s", cause, userID, m.Version.ValueString())
	switch {
	case op != nil && op.ID != "":
		msg += fmt.Sprintf(" in operation %s. The control plane keeps running it; the next terraform plan/apply attaches to it and records how "+
			"it ended. Nothing will run twice.", op.ID)
	case key != "":
		msg += ". The request that starts the upgrade was sent but its answer never came; the next terraform plan/apply finds the operation by " +
			"its idempotency key and records how it ended. Nothing will run twice."
	default:
		msg += ". The upgrade itself had not started; the next apply starts it (a pre-upgrade snapshot already taken is reused)."
	}
	if prior == nil {
		out.diags.AddWarning("Engine Upgrade Still Running", msg)
	} else {
		out.diags.AddError("Engine Upgrade Still Running", msg)
	}
	return out
}

// createKeyPrefix begins the idempotency key of every operation an engine_release create starts,
// followed by the instance's owner token (operationKey): a later create finds its own interrupted
// attempt by it in the engine's operation history, and never another workspace's.
const createKeyPrefix = "engine-release-create-"

// updateKeyPrefix begins the idempotency key of the operation an engine_release update starts.
const updateKeyPrefix = "engine-release-update-"

// adoptKilledUpdate runs when refresh finds the engine on another version than state records.
// When the move was this release's own update, killed before it could save state, it records the
// snapshot that protected the move as pre_upgrade_snapshot_id (a destroy restores it) and how the
// update ended. It reports whether m changed; a move made by anyone else changes nothing here.
// With an analysis set, an update that reached its version was never judged (the apply that would
// have watched it was killed): unjudged is then the watch the next apply resumes, from the
// operation's end and without the figures from before, and last_attempt stays in progress.
func (r *releaseResource) adoptKilledUpdate(ctx context.Context, m *releaseModel, e api.Engine, token string) (adopted bool,
	unjudged *releaseWatch) {
	ops, err := r.data.Client.ListOperations(ctx, e.UserID)
	if err != nil {
		tflog.Warn(ctx, "could not read the engine's operations to look for a killed update", map[string]any{"error": err.Error()})
		return false, nil
	}
	for _, op := range ops {
		if op.Kind != api.OpUpgrade && op.Kind != api.OpRestore {
			continue
		}
		if !op.Done() || !strings.HasPrefix(op.IdempotencyKey, updateKeyPrefix+token+"-") ||
			op.FromVersion != m.Version.ValueString() || op.ToVersion != e.EngineVersion {
			return false, nil
		}
		tflog.Info(ctx, "recording the update a killed apply made",
			map[string]any{"operation_id": op.ID, "from": op.FromVersion, "to": op.ToVersion})
		if op.SnapshotID != "" {
			m.PreUpgradeSnapshotID = types.StringValue(op.SnapshotID)
		}
		a := lastAttempt{Version: op.ToVersion, SnapshotID: op.SnapshotID}
		a.applyOperation(op)
		if w, ok := m.watchSettings(); ok && op.Status == api.OpSucceeded {
			w.From, w.To, w.SnapshotID, w.OperationID, w.StartedAt = op.FromVersion, op.ToVersion, op.SnapshotID, op.ID, a.StartedAt
			w.Before, w.NoBefore, w.BakeStartedAt = api.Metrics{UserID: e.UserID}, true, op.UpdatedAt
			if op.FinishedAt != nil {
				w.BakeStartedAt = *op.FinishedAt
			}
			a.Status, a.Error = attemptInProgress, "not judged yet: the apply that upgraded the engine was killed before its analysis; the next "+
				"apply judges it"
			unjudged = &w
		}
		m.LastAttempt = a.object()
		return true, unjudged
	}
	return false, nil
}

// interruptedCreate finds the operation of an earlier create that stopped before it could save
// state: the engine's latest version change, when an engine_release create to target made it.
func (r *releaseResource) interruptedCreate(ctx context.Context, userID, target, token string) (api.Operation, bool) {
	ops, err := r.data.Client.ListOperations(ctx, userID)
	if err != nil {
		tflog.Warn(ctx, "could not read the engine's operations to look for an interrupted create", map[string]any{"error": err.Error()})
		return api.Operation{}, false
	}
	for _, op := range ops {
		if op.Kind == api.OpUpgrade || op.Kind == api.OpRestore {
			return op, op.Done() && op.ToVersion == target && strings.HasPrefix(op.IdempotencyKey, createKeyPrefix+token+"-")
		}
	}
	return api.Operation{}, false
}

// recoverEngine returns an engine an interrupted create's failed operation left behind to the
// version it ran before (restoring the operation's snapshot where the brain moved), so the create
// can start over from there. An engine already running that version is left as it is.
func (r *releaseResource) recoverEngine(ctx context.Context, m *releaseModel, e api.Engine, op api.Operation) (api.Engine, error) {
	if e.EngineVersion == op.FromVersion && e.Status == api.StatusRunning {
		return e, nil
	}
	if !m.AutoRollback.ValueBool() {
		return e, fmt.Errorf("auto_rollback is off")
	}
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		return e, err
	}
	drain, health := m.durations()
	rolled, err := r.data.driver().RollBackTo(ctx, cat, e.UserID, op.FromVersion, op.SnapshotID, rollout.RollbackOptions{Drain: drain,
		Health: health})
	if err != nil {
		return e, err
	}
	return rolled.Engine, nil
}

// pendingOperation is the operation an interrupted apply left in private state: recorded by id,
// or by the idempotency key of a POST whose answer never came (looked up here; not found means
// the POST never arrived and nothing started, and the record is dropped).
func (r *releaseResource) pendingOperation(ctx context.Context, priv privateState, userID string) (api.Operation, bool, diag.Diagnostics) {
	b, diags := priv.GetKey(ctx, privateReleaseOp)
	if diags.HasError() || len(b) == 0 || string(b) == "null" {
		return api.Operation{}, false, diags
	}
	var po pendingOperation
	if err := json.Unmarshal(b, &po); err != nil || (po.ID == "" && po.Key == "") {
		return api.Operation{}, false, diags
	}
	if po.ID != "" {
		return api.Operation{ID: po.ID, UserID: po.UserID, Kind: po.Kind, Status: api.OpRunning}, true, diags
	}
	ops, err := r.data.Client.OperationsByKey(ctx, userID, po.Key)
	if err != nil {
		tflog.Warn(ctx, "could not look up the operation an interrupted apply started", map[string]any{"error": err.Error()})
		return api.Operation{}, false, diags
	}
	if len(ops) == 0 {
		diags.Append(priv.SetKey(ctx, privateReleaseOp, nil)...)
		return api.Operation{}, false, diags
	}
	// Found: from now on it is recorded by id, like any other.
	diags.Append(setPendingOperation(ctx, priv, privateReleaseOp, ops[0])...)
	return ops[0], true, diags
}
