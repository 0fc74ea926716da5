// Package rollout drives engine operations through the control API client: waiting out or
// attaching to running operations, snapshot-before-migrate, upgrades with health and eval gates,
// and rollbacks (a same-schema redeploy, or a snapshot restore where the schema moved). The
// engine_release and engine_canary resources share it. It imports nothing from Terraform.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Logger receives progress lines with structured fields (user_id, operation_id, phase).
type Logger func(ctx context.Context, msg string, fields map[string]any)

// Driver runs operations against one control plane.
type Driver struct {
	Client *client.Client
	Log    Logger
}

func (d *Driver) log(ctx context.Context, msg string, fields map[string]any) {
	if d.Log != nil {
		d.Log(ctx, msg, fields)
	}
}

// OperationError is an operation that ended failed: the step it failed in and the control
// plane's error.
type OperationError struct {
	Op api.Operation
}

func (e *OperationError) Error() string {
	step := failedStep(e.Op)
	msg := "no error detail"
	if e.Op.Error != nil {
		msg = e.Op.Error.Code + ": " + e.Op.Error.Message
	}
	return fmt.Sprintf("%s operation %s on user %s failed at step %q: %s", e.Op.Kind, e.Op.ID, e.Op.UserID, step, msg)
}

// Step is the name of the step the operation failed in.
func (e *OperationError) Step() string { return failedStep(e.Op) }

func failedStep(op api.Operation) string {
	for _, s := range op.Steps {
		if s.Status == api.OpFailed {
			return s.Name
		}
	}
	return "unknown"
}

// Wait long-polls an operation to its end and turns a failed one into an *OperationError.
func (d *Driver) Wait(ctx context.Context, op api.Operation) (api.Operation, error) {
	fields := map[string]any{"user_id": op.UserID, "operation_id": op.ID, "kind": op.Kind}
	d.log(ctx, "waiting for operation", fields)
	done, err := d.Client.WaitOperation(ctx, op.ID, func(o api.Operation) {
		for _, s := range o.Steps {
			if s.Status == api.OpRunning {
				d.log(ctx, "operation progress", map[string]any{"user_id": o.UserID, "operation_id": o.ID, "phase": s.Name})
			}
		}
	})
	if err != nil {
		return op, err
	}
	if done.Status == api.OpFailed {
		return done, &OperationError{Op: done}
	}
	return done, nil
}

// Attach decides, for an engine busy with an operation, whether that operation is the one the
// caller wants (true: wait for it and use its result) or someone else's (false: wait it out).
type Attach func(op api.Operation) bool

// Idle returns the engine once no operation runs on it. A running operation that attach accepts
// is waited for and returned as attached; any other is waited out first.
func (d *Driver) Idle(ctx context.Context, userID string, attach Attach) (api.Engine, *api.Operation, error) {
	for {
		e, err := d.Client.GetEngine(ctx, userID)
		if err != nil {
			return e, nil, err
		}
		if e.CurrentOperationID == "" {
			return e, nil, nil
		}
		op, err := d.Client.GetOperation(ctx, e.CurrentOperationID)
		if err != nil {
			if client.IsNotFound(err) {
				continue
			}
			return e, nil, err
		}
		if attach != nil && attach(op) {
			d.log(ctx, "attaching to running operation", map[string]any{"user_id": userID, "operation_id": op.ID})
			done, err := d.Wait(ctx, op)
			if ctx.Err() != nil {
				return e, &done, err
			}
			e, gerr := d.Client.GetEngine(ctx, userID)
			if gerr != nil {
				return e, &done, gerr
			}
			return e, &done, err
		}
		d.log(ctx, "engine busy: waiting for its operation to finish", map[string]any{"user_id": userID, "operation_id": op.ID, "kind": op.Kind})
		if _, err := d.Wait(ctx, op); err != nil {
			var oe *OperationError
			if !errors.As(err, &oe) {
				return e, nil, err
			}
		}
	}
}

// start runs a POST that starts an operation, treating OPERATION_IN_PROGRESS by waiting the
// running operation out and trying again (the same idempotency key, so never twice).
func (d *Driver) start(ctx context.Context, userID string, post func() (api.Operation, error)) (api.Operation, error) {
	for {
		op, err := post()
		if err == nil {
			return op, nil
		}
		running, busy := client.OperationInProgress(err)
		if !busy {
			return op, err
		}
		d.log(ctx, "engine busy: waiting before starting", map[string]any{"user_id": userID, "operation_id": running})
		other, gerr := d.Client.GetOperation(ctx, running)
		if gerr != nil && !client.IsNotFound(gerr) {
			return op, gerr
		}
		if gerr == nil {
			if _, werr := d.Wait(ctx, other); werr != nil && ctx.Err() != nil {
				return op, werr
			}
		}
	}
}

// Snapshot takes a verified snapshot of an engine and returns it.
func (d *Driver) Snapshot(ctx context.Context, userID, key string, req api.CreateSnapshotRequest) (api.Snapshot, api.Operation, error) {
	op, err := d.StartSnapshot(ctx, userID, key, req)
	if err != nil {
		return api.Snapshot{}, op, err
	}
	return d.FinishSnapshot(ctx, op)
}

// StartSnapshot starts a snapshot operation (waiting out another operation on the engine first).
// The returned operation names the snapshot it will produce.
func (d *Driver) StartSnapshot(ctx context.Context, userID, key string, req api.CreateSnapshotRequest) (api.Operation, error) {
	return d.start(ctx, userID, func() (api.Operation, error) { return d.Client.CreateSnapshot(ctx, userID, key, req) })
}

// FinishSnapshot waits for a snapshot operation and returns the snapshot, which must be verified.
func (d *Driver) FinishSnapshot(ctx context.Context, op api.Operation) (api.Snapshot, api.Operation, error) {
	op, err := d.Wait(ctx, op)
	if err != nil {
		return api.Snapshot{}, op, err
	}
	id := op.Result.SnapshotID
	if id == "" {
		id = op.SnapshotID
	}
	s, err := d.Client.GetSnapshot(ctx, id)
	if err != nil {
		return s, op, err
	}
	if s.Status != api.SnapshotVerified {
		return s, op, fmt.Errorf("snapshot %s of user %s finished with status %q, not verified", s.ID, op.UserID, s.Status)
	}
	return s, op, nil
}

// Upgrade moves an engine to req.Version and waits; a failed operation returns *OperationError.
func (d *Driver) Upgrade(ctx context.Context, userID, key string, ifMatch int64, req api.UpgradeRequest) (api.Operation, error) {
	op, err := d.StartUpgrade(ctx, userID, key, ifMatch, req)
	if err != nil {
		return op, err
	}
	return d.Wait(ctx, op)
}

// StartUpgrade starts an upgrade (waiting out another operation on the engine first) without
// waiting for it, so the caller can record the operation before it waits.
func (d *Driver) StartUpgrade(ctx context.Context, userID, key string, ifMatch int64, req api.UpgradeRequest) (api.Operation, error) {
	return d.start(ctx, userID, func() (api.Operation, error) { return d.Client.Upgrade(ctx, userID, key, ifMatch, req) })
}

// Restore swaps in a snapshot's brain at a version and waits.
func (d *Driver) Restore(ctx context.Context, userID, key string, ifMatch int64, req api.RestoreRequest) (api.Operation, error) {
	op, err := d.StartRestore(ctx, userID, key, ifMatch, req)
	if err != nil {
		return op, err
	}
	return d.Wait(ctx, op)
}

// StartRestore starts a restore without waiting for it.
func (d *Driver) StartRestore(ctx context.Context, userID, key string, ifMatch int64, req api.RestoreRequest) (api.Operation, error) {
	return d.start(ctx, userID, func() (api.Operation, error) { return d.Client.Restore(ctx, userID, key, ifMatch, req) })
}

// Eval runs an eval suite on the engine's current version and returns its score.
func (d *Driver) Eval(ctx context.Context, userID, suite string) (float64, error) {
	op, err := d.start(ctx, userID, func() (api.Operation, error) {
		return d.Client.RunEval(ctx, userID, client.NewIdempotencyKey(), api.EvalRequest{Suite: suite})
	})
	if err != nil {
		return 0, err
	}
	op, err = d.Wait(ctx, op)
	if err != nil {
		return 0, err
	}
	return op.Result.EvalScore, nil
}

// Rollback returns an engine to p.To and waits until it is healthy.
func (d *Driver) Rollback(ctx context.Context, userID, key string, p upgrade.RollbackPlan, drain, health time.Duration) (api.Operation, error) {
	d.log(ctx, "rolling back", map[string]any{"user_id": userID, "phase": "rollback", "to_version": p.To, "snapshot_id": p.SnapshotID, "restore": p.Restore})
	if p.Restore {
		return d.Restore(ctx, userID, key, 0, api.RestoreRequest{SnapshotID: p.SnapshotID, Version: p.To,
			DrainTimeoutSeconds: seconds(drain), HealthTimeoutSeconds: seconds(health)})
	}
	return d.Upgrade(ctx, userID, key, 0, api.UpgradeRequest{Version: p.To, AllowDowngrade: true,
		DrainTimeoutSeconds: seconds(drain), HealthTimeoutSeconds: seconds(health)})
}

// RollbackOptions are the control plane's limits for a rollback's drain and health check, and
// whether a rollback already running towards the target is resumed.
type RollbackOptions struct {
	Drain, Health time.Duration
	// Resume attaches to an upgrade or restore already taking the engine to the target (a
	// rollback an interrupted run left going) and uses its result, instead of waiting it out.
	Resume bool
}

// RolledBack is what RollBackTo did: the engine as it runs afterwards and the way back it took
// (Plan.To is "" when the engine already ran the target, healthy, and nothing was started).
type RolledBack struct {
	Engine api.Engine
	Plan   upgrade.RollbackPlan
}

// RollBackTo is the one rollback sequence: it waits until no operation runs on user's engine,
// and unless the engine already runs version to, plans the way back (upgrade.PlanRollback: a
// restore of snapshotID where the schema moved, else a redeploy), runs it and waits; then it
// verifies the engine runs to, healthy. A user the control plane does not know returns the
// client's not-found error (client.IsNotFound).
func (d *Driver) RollBackTo(ctx context.Context, cat *upgrade.Catalog, userID, to, snapshotID string, o RollbackOptions) (RolledBack, error) {
	var attach Attach
	if o.Resume {
		attach = func(op api.Operation) bool {
			return (op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == to
		}
	}
	var out RolledBack
	e, _, err := d.Idle(ctx, userID, attach)
	out.Engine = e
	if err != nil {
		return out, err
	}
	if e.EngineVersion != to || e.Status != api.StatusRunning {
		rb, err := upgrade.PlanRollback(cat, e, to, snapshotID)
		if err != nil {
			return out, err
		}
		out.Plan = rb
		if _, err := d.Rollback(ctx, userID, client.NewIdempotencyKey(), rb, o.Drain, o.Health); err != nil {
			return out, err
		}
		if e, err = d.Client.GetEngine(ctx, userID); err != nil {
			return out, err
		}
		out.Engine = e
	}
	if e.EngineVersion != to || e.Status != api.StatusRunning || (e.Health.Status != "" && e.Health.Status != "ok") {
		return out, fmt.Errorf("after the rollback user %s's engine runs %s with status %s and health %q, not %s running healthy",
			userID, e.EngineVersion, e.Status, e.Health.Status, to)
	}
	return out, nil
}

func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	s := int(d / time.Second)
	if s == 0 {
		s = 1
	}
	return s
}

// Seconds converts a duration to the API's whole seconds (at least 1 for a positive duration).
func Seconds(d time.Duration) int { return seconds(d) }
