package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// PreUpgradeSnapshotKey is the idempotency key of the snapshot that protects upgrading engine e
// to target. It is derived from what the snapshot would capture (the engine, its version, schema
// and write counter) instead of drawn at random: an apply killed after it asked for the snapshot
// and run again asks with the same key, so the control plane replays the first snapshot
// operation instead of taking a second one. Any write to the brain in between changes the key,
// because the first snapshot would miss that write. purpose separates the resources that take
// such snapshots (their request bodies differ).
func PreUpgradeSnapshotKey(purpose string, e api.Engine, target string) string {
	// A restore brings back an older brain with its older write counter, so the counter alone
	// can repeat; the time the schema last moved (restores move it) cannot.
	migrated := ""
	if e.LastMigrationAt != nil {
		migrated = e.LastMigrationAt.UTC().Format(time.RFC3339Nano)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00%s\x00%s", purpose, e.UserID, e.EngineID, e.EngineVersion, e.SchemaVersion, e.BrainWrites, migrated, target)))
	return "pre-upgrade-" + hex.EncodeToString(sum[:16])
}

// PreUpgradeSnapshot takes (or, after an interrupted apply, finds again) the verified snapshot
// protecting the upgrade of e to target. When the replayed snapshot is no longer usable (deleted
// since, or its operation failed), it takes a new one under a fresh key.
func (d *Driver) PreUpgradeSnapshot(ctx context.Context, purpose string, e api.Engine, target string, req api.CreateSnapshotRequest) (api.Snapshot, api.Operation, error) {
	s, op, err := d.Snapshot(ctx, e.UserID, PreUpgradeSnapshotKey(purpose, e, target), req)
	if err == nil && upgrade.CheckSnapshot(e, s, time.Time{}) != nil {
		// A replay of a snapshot that can no longer protect this engine (it predates a restore).
		err = fmt.Errorf("replayed snapshot %s no longer fits user %s's engine", s.ID, e.UserID)
		op.Status = api.OpFailed
	}
	if err != nil && op.ID != "" && (client.IsNotFound(err) || op.Status == api.OpFailed) && ctx.Err() == nil {
		d.log(ctx, "the replayed pre-upgrade snapshot is unusable; taking a new one", map[string]any{"user_id": e.UserID, "operation_id": op.ID})
		return d.Snapshot(ctx, e.UserID, client.NewIdempotencyKey(), req)
	}
	return s, op, err
}
