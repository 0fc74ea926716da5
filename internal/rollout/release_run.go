package rollout

import (
	"context"
	"errors"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// The order of one engine_release upgrade once the plan's rules passed: the pre-upgrade
// snapshot, the eval baseline, the metrics baseline, the move, the eval gate, the bake and its
// analysis, and on failure the rollback. The caller keeps the mapping: it records each moment
// through ReleaseHooks and turns the ReleaseResult into its messages.

// The steps a release run can stop in before a verdict.
const (
	RunSnapshot = "snapshot" // the pre-upgrade snapshot failed
	RunBaseline = "baseline" // the eval baseline failed
	RunMetrics  = "metrics"  // reading the figures before the upgrade failed
	RunMove     = "move"     // the move failed before its operation ran (Err is a *MoveError)
	RunWait     = "wait"     // waiting for the operation failed, or ctx ended during it
	RunEval     = "eval"     // ctx ended during the eval after the upgrade
	RunBake     = "bake"     // ctx ended during the bake: Bake says how far it got
)

// ReleaseRun is one engine's upgrade after its checks.
type ReleaseRun struct {
	// Engine is the engine as last read; Move.SnapshotID is replaced by the snapshot taken
	// when TakeSnapshot.
	Engine       api.Engine
	Move         ReleaseMove
	TakeSnapshot bool
	Snapshot     api.CreateSnapshotRequest
	// EvalSuite, when set, is run before and after the move; a drop of more than MaxRegression
	// fails the upgrade.
	EvalSuite     string
	MaxRegression float64
	// Watch, when set, is the analysis: its baseline is read before the move, and after a
	// healthy move the engine bakes and is judged.
	Watch *Watch
	// RollBack, when set, is the failure path: an upgrade that fails goes back to the version
	// the engine ran (Driver.RollBackTo on Catalog, restoring the snapshot where the schema moved).
	RollBack *RollbackOptions
	Catalog  *upgrade.Catalog
	Hooks    ReleaseHooks
}

// ReleaseHooks are the moments the caller records; each may be nil.
type ReleaseHooks struct {
	// Begin is called before a request that starts work (the snapshot, the eval baseline).
	Begin func(step string)
	// Snapshot is called once the snapshot the move uses is known (taken or given).
	Snapshot func(id string)
	// Baseline is called with the eval baseline's score.
	Baseline func(score float64)
	// Moved is called once the operation ended (failed or not), unless ctx ended first. The
	// move's own Started hook says when the operation was named.
	Moved func(op api.Operation)
	// Score is called with the eval's score after the upgrade.
	Score func(score float64)
	// Baking is Bake's: the watch, once its start is known and before the wait.
	Baking func(*Watch)
}

// ReleaseResult is how a release run ended. Step is where it stopped before a verdict ("" when
// it reached one), with Err. Otherwise the upgrade failed when OpErr (the operation failed),
// EvalErr (the eval after it did not run) or Regressed is set, or Bake's verdict failed.
type ReleaseResult struct {
	Step string
	Err  error
	// Interrupted: ctx had ended when the run stopped.
	Interrupted     bool
	Engine          api.Engine
	Op              api.Operation
	SnapshotID      string
	OpErr           *OperationError
	EvalErr         error
	Baseline, Score float64
	Regressed       bool
	Bake            *BakeResult
	// RolledBack and RollBackErr are the rollback's outcome, when the upgrade failed and
	// ReleaseRun.RollBack asked for one.
	RolledBack  *RolledBack
	RollBackErr error
}

// Failed reports whether the run reached a verdict that fails the upgrade: the operation, the
// eval gate, or the analysis (its figures unread, or judged failing).
func (r *ReleaseResult) Failed() bool {
	return r.OpErr != nil || r.EvalErr != nil || r.Regressed || (r.Bake != nil && (r.Bake.Err != nil || !r.Bake.Verdict.Pass()))
}

// Release runs rr in its order and stops at the first step that fails.
func (d *Driver) Release(ctx context.Context, rr ReleaseRun) ReleaseResult {
	h, userID := rr.Hooks, rr.Move.UserID
	res := ReleaseResult{Engine: rr.Engine, SnapshotID: rr.Move.SnapshotID}
	stop := func(step string, err error) ReleaseResult {
		res.Step, res.Err, res.Interrupted = step, err, ctx.Err() != nil
		return res
	}
	if rr.TakeSnapshot {
		call(h.Begin, RunSnapshot)
		snap, _, err := d.PreUpgradeSnapshot(ctx, "engine_release", rr.Engine, rr.Move.Version, rr.Snapshot)
		if err != nil {
			return stop(RunSnapshot, err)
		}
		res.SnapshotID = snap.ID
	}
	call(h.Snapshot, res.SnapshotID)
	if rr.EvalSuite != "" {
		call(h.Begin, RunBaseline)
		score, err := d.Eval(ctx, userID, rr.EvalSuite)
		if err != nil {
			return stop(RunBaseline, err)
		}
		res.Baseline = score
		call(h.Baseline, score)
	}
	if rr.Watch != nil {
		if err := d.WatchBefore(ctx, userID, rr.Watch); err != nil {
			return stop(RunMetrics, err)
		}
	}
	mv := rr.Move
	mv.SnapshotID = res.SnapshotID
	var err error
	res.Engine, res.Op, err = d.Move(ctx, rr.Engine, mv)
	var me *MoveError
	if errors.As(err, &me) {
		return stop(RunMove, err)
	}
	if err != nil && ctx.Err() != nil {
		return stop(RunWait, err)
	}
	call(h.Moved, res.Op)
	switch {
	case errors.As(err, &res.OpErr):
	case err != nil:
		res.Step, res.Err = RunWait, err // a wait that failed with ctx still live
		return res
	case rr.EvalSuite != "":
		score, err := d.Eval(ctx, userID, rr.EvalSuite)
		if err != nil && ctx.Err() != nil {
			return stop(RunEval, err)
		}
		if err != nil {
			res.EvalErr = err
			break
		}
		res.Score = score
		call(h.Score, score)
		res.Regressed = res.Baseline-score > rr.MaxRegression
	}
	if !res.Failed() && rr.Watch != nil {
		rr.Watch.SnapshotID, rr.Watch.OperationID = res.SnapshotID, res.Op.ID
		b := d.Bake(ctx, userID, rr.Watch, h.Baking)
		res.Bake = &b
		if b.Interrupted {
			return stop(RunBake, b.Err)
		}
	}
	d.rollBackFailed(ctx, &res, userID, rr.Engine.EngineVersion, rr.RollBack, rr.Catalog)
	return res
}

// ResumeRelease judges an upgrade of userID's engine (last read as e) whose analysis an
// interrupted run left unjudged (w): the bake goes on for what is left of it, then the analysis runs once, and a failing one
// rolls back to w.From when rollBack asks.
func (d *Driver) ResumeRelease(ctx context.Context, userID string, e api.Engine, w *Watch, baking func(*Watch), rollBack *RollbackOptions,
	cat *upgrade.Catalog) ReleaseResult {
	res := ReleaseResult{Engine: e, SnapshotID: w.SnapshotID}
	b := d.Bake(ctx, userID, w, baking)
	res.Bake = &b
	if b.Interrupted {
		res.Step, res.Err, res.Interrupted = RunBake, b.Err, true
		return res
	}
	d.rollBackFailed(ctx, &res, userID, w.From, rollBack, cat)
	return res
}

// rollBackFailed is the failure path: a failed upgrade goes back to from when o asks.
func (d *Driver) rollBackFailed(ctx context.Context, res *ReleaseResult, userID, from string, o *RollbackOptions, cat *upgrade.Catalog) {
	if res.Failed() && o != nil {
		rolled, err := d.RollBackTo(ctx, cat, userID, from, res.SnapshotID, *o)
		res.RolledBack, res.RollBackErr = &rolled, err
	}
}

// RollBack is the rollback's way back and error, for a caller that maps the two.
func (r *ReleaseResult) RollBack() (upgrade.RollbackPlan, error) {
	if r.RolledBack == nil {
		return upgrade.RollbackPlan{}, r.RollBackErr
	}
	return r.RolledBack.Plan, r.RollBackErr
}

func call[T any](f func(T), v T) {
	if f != nil {
		f(v)
	}
}
