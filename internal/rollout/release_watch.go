package rollout

import (
	"context"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// The watch of one engine_release upgrade: the engine's figures before the drain, then once the
// new version is healthy a bake, the figures after it, and the analysis of the two.

// Watch is one upgrade's analysis: the settings, the engine's figures before the upgrade, and
// once the upgrade is healthy, when the bake started. It is what the caller keeps of an analysis
// an interrupted run left unjudged (its JSON is the engine_release private state).
type Watch struct {
	Config        upgrade.AnalysisConfig `json:"config"`
	Bake          time.Duration          `json:"bake"`
	Window        time.Duration          `json:"window"`
	Before        api.Metrics            `json:"before"`
	From          string                 `json:"from"`
	To            string                 `json:"to"`
	SnapshotID    string                 `json:"snapshot_id"`
	OperationID   string                 `json:"operation_id"`
	StartedAt     string                 `json:"started_at"` // the attempt's
	BakeStartedAt time.Time              `json:"bake_started_at"`
	// NoBefore: the figures from before the upgrade were lost with a killed run, so only the
	// absolute thresholds can judge it.
	NoBefore bool `json:"no_before,omitempty"`
}

// WatchBefore reads userID's figures over w.Window before the upgrade (before the drain): the
// analysis's baseline.
func (d *Driver) WatchBefore(ctx context.Context, userID string, w *Watch) error {
	before, err := d.Client.Metrics(ctx, userID, w.Window)
	if err != nil {
		return err
	}
	w.Before = before
	return nil
}

// Left is what is left of w's bake (negative once it is over).
func (w *Watch) Left() time.Duration { return w.Bake - time.Since(w.BakeStartedAt) }

// Resumable reports whether an unjudged w can be judged now: the engine e still runs, on what it
// was upgraded to, and the configuration still asks for that version.
func (w *Watch) Resumable(e api.Engine, version string) bool {
	return e.EngineVersion == w.To && e.Status == api.StatusRunning && version == w.To
}

// BakeResult is a bake's outcome. Interrupted: ctx ended first, the upgrade is not judged and
// the watch is to be kept for a later run. Err: the figures after the upgrade could not be read.
// Otherwise Verdict is the analysis of After.
type BakeResult struct {
	Interrupted bool
	Err         error
	After       api.Metrics
	Verdict     upgrade.Verdict
}

// Bake watches userID's upgraded engine for what is left of w's bake (starting it now if it has
// not started), reads its figures over the window and judges them against w.Before (or the
// thresholds alone with NoBefore). baking, when set, is called with w once the bake's start is
// known and before the wait, so the caller can record the watch for an interrupted run.
func (d *Driver) Bake(ctx context.Context, userID string, w *Watch, baking func(*Watch)) BakeResult {
	if w.BakeStartedAt.IsZero() {
		w.BakeStartedAt = time.Now()
	}
	if baking != nil {
		baking(w)
	}
	err := client.Sleep(ctx, w.Left())
	var res BakeResult
	if err == nil {
		res.After, err = d.Client.Metrics(ctx, userID, w.Window)
	}
	if err != nil {
		res.Interrupted, res.Err = ctx.Err() != nil, err
		return res
	}
	res.Verdict = upgrade.AnalyzeRelease(w.Config, w.Before, res.After)
	if w.NoBefore {
		res.Verdict = upgrade.AnalyzeReleaseThresholds(w.Config, res.After)
	}
	return res
}
