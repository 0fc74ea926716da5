package rollout

import (
	"context"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// The move of one engine_release: read the engine again, check nobody moved it, start the
// upgrade (or restore) guarded by If-Match, and wait.

// ReleaseMove is one engine's move to Version: an upgrade (a downgrade with Downgrade), or with
// Restore a restore of SnapshotID at Version.
type ReleaseMove struct {
	UserID     string
	Version    string
	SnapshotID string
	// Key is the operation's idempotency key.
	Key                string
	Restore, Downgrade bool
	Drain, Health      time.Duration
	// Started is called with the operation as soon as the control plane names it, before the
	// wait, so the caller can record it for an interrupted run to find.
	Started func(api.Operation)
}

// The steps a move can fail in before its operation runs.
const (
	MoveRead    = "read"    // reading the engine again failed
	MoveChanged = "changed" // the engine moved, or runs an operation, since it was read
	MoveStart   = "start"   // the POST that starts the operation failed
)

// MoveError is a move that failed before its operation ran: the step, the engine as last read,
// and the cause (nil for MoveChanged).
type MoveError struct {
	Step   string
	Engine api.Engine
	Err    error
}

func (e *MoveError) Error() string {
	if e.Err == nil {
		return "user " + e.Engine.UserID + "'s engine changed before the move started"
	}
	return e.Err.Error()
}

func (e *MoveError) Unwrap() error { return e.Err }

// Move runs mv on the engine last read as e, which must still run the version it ran then with
// no operation: the snapshot and evals before a move are operations too (each moves the
// generation), so the engine is read again and If-Match guards exactly the gap between that
// read and the start. It returns the engine as read before the start, the operation and the
// wait's error (a failed operation is an *OperationError); a *MoveError when no operation ran.
func (d *Driver) Move(ctx context.Context, e api.Engine, mv ReleaseMove) (api.Engine, api.Operation, error) {
	var op api.Operation
	fresh, err := d.Client.GetEngine(ctx, mv.UserID)
	if err != nil {
		return e, op, &MoveError{Step: MoveRead, Engine: e, Err: err}
	}
	if fresh.EngineVersion != e.EngineVersion || fresh.CurrentOperationID != "" {
		return fresh, op, &MoveError{Step: MoveChanged, Engine: fresh}
	}
	if mv.Restore {
		op, err = d.StartRestore(ctx, mv.UserID, mv.Key, fresh.Generation, api.RestoreRequest{SnapshotID: mv.SnapshotID, Version: mv.Version,
			DrainTimeoutSeconds: seconds(mv.Drain), HealthTimeoutSeconds: seconds(mv.Health)})
	} else {
		op, err = d.StartUpgrade(ctx, mv.UserID, mv.Key, fresh.Generation, api.UpgradeRequest{Version: mv.Version, SnapshotID: mv.SnapshotID,
			AllowDowngrade: mv.Downgrade, DrainTimeoutSeconds: seconds(mv.Drain), HealthTimeoutSeconds: seconds(mv.Health)})
	}
	if err != nil {
		return fresh, op, &MoveError{Step: MoveStart, Engine: fresh, Err: err}
	}
	if mv.Started != nil {
		mv.Started(op)
	}
	op, err = d.Wait(ctx, op)
	return fresh, op, err
}
