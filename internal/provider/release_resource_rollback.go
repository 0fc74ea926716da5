package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// reachedElsewhere is the apply of a plan whose target someone else reached first (a saved plan
// applied after an out-of-band upgrade to the same version). There is nothing left to start, but
// the move must not erase the rollback: the attempt it returns names the operation that moved the
// engine (from the engine's operation history) and the snapshot that protected the move, or says
// in its error that none did, and a warning says the same. migrated reports whether the move
// crossed a brain schema change, so that snapshot is the one destroy must restore.
func (r *releaseResource) reachedElsewhere(ctx context.Context, cat *upgrade.Catalog, e api.Engine, from, named string,
	diags *diag.Diagnostics) (a lastAttempt, migrated bool) {
	a = lastAttempt{Version: e.EngineVersion, Status: attemptSucceeded, StartedAt: rfc3339(time.Now())}
	op := r.lastMoveTo(ctx, e)
	by := "an operation this apply did not start (the control plane no longer lists it)"
	if op != nil {
		a.applyOperation(*op)
		by = fmt.Sprintf("operation %s, which this apply did not start", op.ID)
	}
	if a.FinishedAt == "" {
		a.FinishedAt = rfc3339(time.Now())
	}
	moved := fmt.Sprintf("User %s's engine ran %s when this plan was made; it already runs %s, the planned version, moved there by %s. "+
		"Nothing was started; last_attempt records that move.",
		e.UserID, from, e.EngineVersion, by)
	p, err := cat.Path(from, e.EngineVersion)
	if err != nil || !p.RequiresSnapshot || p.Kind == upgrade.KindDowngrade {
		diags.AddWarning("Engine Already Moved By Someone Else", moved)
		return a, false
	}
	fromVersion, _ := cat.Get(from)
	if s := r.protectingSnapshot(ctx, e, fromVersion, named, op); s != nil {
		a.SnapshotID = s.ID
		diags.AddWarning("Engine Already Moved By Someone Else", fmt.Sprintf("%s\n\nSnapshot %s, taken %s at %s (schema %d), protected that "+
			"move: it is recorded as pre_upgrade_snapshot_id, so destroy can still roll back by restoring it (losing the brain writes made since).",
			moved, s.ID, s.CreatedAt.UTC().Format(time.RFC3339), s.EngineVersion, s.SchemaVersion))
		return a, true
	}
	opName := "the out-of-band move"
	if op != nil {
		opName = "operation " + op.ID
	}
	a.Error = fmt.Sprintf("no rollback exists: %s moved user %s's brain from schema %d to %d and no verified snapshot of it at %s (schema "+
		"%d) remains, so destroy cannot restore it",
		opName, e.UserID, p.FromSchema, p.ToSchema, from, p.FromSchema)
	diags.AddWarning("Engine Moved By Someone Else Without A Rollback", fmt.Sprintf("%s\n\nThat move migrated the brain (schema %d → %d) "+
		"and no verified snapshot of user %s's brain at %s remains to undo it: "+
		"no rollback exists. last_attempt.error says so, and a destroy plan will refuse (Engine Rollback Impossible). To drop the release and "+
		"keep the engine on %s, set on_destroy = \"keep\".",
		moved, p.FromSchema, p.ToSchema, e.UserID, from, e.EngineVersion))
	return a, true
}

// lastMoveTo is the newest succeeded operation that brought e to the version it runs, or nil.
func (r *releaseResource) lastMoveTo(ctx context.Context, e api.Engine) *api.Operation {
	ops, err := r.data.Client.ListOperations(ctx, e.UserID)
	if err != nil {
		tflog.Warn(ctx, "operation history unreadable", map[string]any{"user_id": e.UserID, "error": err.Error()})
		return nil
	}
	for i, o := range ops { // newest first
		if (o.Kind == api.OpUpgrade || o.Kind == api.OpRestore) && o.Status == api.OpSucceeded && o.ToVersion == e.EngineVersion {
			return &ops[i]
		}
	}
	return nil
}

// protectingSnapshot finds a snapshot that can undo a move of e from version from: a verified
// snapshot of this engine's brain at from's schema, taken before the move. It tries the
// configured snapshot_id, then the one the moving operation named, then the engine's snapshots,
// newest first.
func (r *releaseResource) protectingSnapshot(ctx context.Context, e api.Engine, from api.Version, named string,
	op *api.Operation) *api.Snapshot {
	fits := func(s api.Snapshot) bool {
		return s.UserID == e.UserID && (s.EngineID == "" || s.EngineID == e.EngineID) && s.Status == api.SnapshotVerified &&
			s.SchemaVersion == from.SchemaVersion && (op == nil || !s.CreatedAt.After(op.CreatedAt))
	}
	for _, id := range []string{named, opSnapshot(op)} {
		if id == "" {
			continue
		}
		if s, err := r.data.Client.GetSnapshot(ctx, id); err == nil && fits(s) {
			return &s
		} else if err != nil && !client.IsNotFound(err) {
			tflog.Warn(ctx, "snapshot unreadable", map[string]any{"snapshot_id": id, "error": err.Error()})
		}
	}
	all, err := r.data.Client.ListSnapshots(ctx, e.UserID, client.ListSnapshotsOptions{})
	if err != nil {
		tflog.Warn(ctx, "snapshots unreadable", map[string]any{"user_id": e.UserID, "error": err.Error()})
		return nil
	}
	for i := range all {
		if fits(all[i]) {
			return &all[i]
		}
	}
	return nil
}

func opSnapshot(op *api.Operation) string {
	if op == nil {
		return ""
	}
	return op.SnapshotID
}

// plannedSnapshotUnknown reports whether the plan left planned_upgrade.snapshot_id (and so
// pre_upgrade_snapshot_id) for the apply to decide.
func plannedSnapshotUnknown(o types.Object) bool {
	if o.IsNull() || o.IsUnknown() {
		return false
	}
	v, ok := o.Attributes()["snapshot_id"].(types.String)
	return ok && v.IsUnknown()
}

// privateReleaseSnapshot is the private-state key of the figures of pre_upgrade_snapshot_id that
// rollback_writes_lost needs. The apply that records a snapshot keeps them (apply persists private
// state, a plan's refresh does not), so refresh computes the figure from its own engine read.
const privateReleaseSnapshot = "release_snapshot"

type snapshotFacts struct {
	ID            string `json:"id"`
	BrainWrites   int64  `json:"brain_writes"`
	SchemaVersion int    `json:"schema_version"`
}

// snapshotFactsOf returns the kept figures of snapshot id, reading the snapshot (and keeping its
// figures) only when they are not kept yet; ok is false when it cannot be read.
func (r *releaseResource) snapshotFactsOf(ctx context.Context, id string, priv privateState) (f snapshotFacts, ok bool) {
	if b, diags := priv.GetKey(ctx, privateReleaseSnapshot); !diags.HasError() && len(b) > 0 && json.Unmarshal(b, &f) == nil && f.ID == id {
		return f, true
	}
	s, err := r.data.Client.GetSnapshot(ctx, id)
	if err != nil {
		tflog.Warn(ctx, "pre-upgrade snapshot unreadable", map[string]any{"snapshot_id": id, "error": err.Error()})
		return f, false
	}
	f = snapshotFacts{ID: s.ID, BrainWrites: s.BrainWrites, SchemaVersion: s.SchemaVersion}
	if b, err := json.Marshal(f); err == nil {
		priv.SetKey(ctx, privateReleaseSnapshot, b)
	}
	return f, true
}

// rememberSnapshot keeps the figures of the snapshot an apply recorded (see privateReleaseSnapshot).
func (r *releaseResource) rememberSnapshot(ctx context.Context, m *releaseModel, priv privateState) {
	if id := m.PreUpgradeSnapshotID; !id.IsUnknown() && id.ValueString() != "" {
		r.snapshotFactsOf(ctx, id.ValueString(), priv)
	}
}

// rollbackWritesLost is how many brain writes destroying the release would lose now, from the
// engine refresh just read: the writes since pre_upgrade_snapshot_id when destroy must restore it.
// Null when that snapshot cannot be read (the destroy plan then says what is wrong with it).
func (r *releaseResource) rollbackWritesLost(ctx context.Context, m *releaseModel, e api.Engine, priv privateState) types.Int64 {
	id := m.PreUpgradeSnapshotID.ValueString()
	back := e.EngineVersion == m.PreviousVersion.ValueString() && e.Status == api.StatusRunning
	if m.OnDestroy.ValueString() == onDestroyKeep || id == "" || back {
		return types.Int64Value(0)
	}
	f, ok := r.snapshotFactsOf(ctx, id, priv)
	if !ok {
		return types.Int64Null()
	}
	return types.Int64Value(upgrade.RollbackLoss(e, api.Snapshot{ID: f.ID, BrainWrites: f.BrainWrites, SchemaVersion: f.SchemaVersion}))
}
