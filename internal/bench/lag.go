package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// LagFigures is measurement 2: how long after an operation's end an apply notices it.
type LagFigures struct {
	TimeScale float64 `json:"time_scale"`
	Runs      int     `json:"runs"`
	// Per run: the upgrade apply's wall time W, the operation's own time T (created_at to
	// finished_at on the control plane) and the same configuration's no-op apply B.
	ApplyMS     []float64 `json:"upgrade_apply_ms"`
	OperationMS []float64 `json:"operation_ms"`
	NoopApplyMS []float64 `json:"noop_apply_ms"`
	LagMS       []float64 `json:"lag_ms"` // W − T − B
	MedianLagMS float64   `json:"median_lag_ms"`
	// ChangeApplyMS is an apply of the same resource that changes an attribute (drain_timeout)
	// without starting an operation: terraform's apply phase and the provider's update, with
	// nothing to wait for. W − T − it is the lag net of what any changing apply costs.
	ChangeApplyMS  []float64 `json:"change_apply_ms"`
	NetLagMS       []float64 `json:"net_lag_ms"`
	MedianNetLagMS float64   `json:"median_net_lag_ms"`
	// ClientNoticeMS is the client's long-poll alone (no terraform): wall clock at the
	// moment WaitOperation returns minus the operation's finished_at.
	ClientNoticeMS       []float64 `json:"client_notice_ms"`
	MedianClientNoticeMS float64   `json:"median_client_notice_ms"`
	// A waiter that polls every 10 s from the operation's start notices it at the first poll
	// after T: ceil(T/10s)×10s − T for these T, and 5 s on average over uniformly spread T.
	FixedPoll10sLagMS       []float64 `json:"fixed_poll_10s_lag_ms"`
	FixedPoll10sExpectedMS  float64   `json:"fixed_poll_10s_expected_lag_ms"`
	MedianFixedPoll10sLagMS float64   `json:"median_fixed_poll_10s_lag_ms"`
}

func runLag(ctx context.Context, cfg Config, tf *terraform, work string) (*LagFigures, error) {
	// Single terraform runs on a shared two-core machine vary by a few hundred ms, more than
	// the lag itself: the median needs many runs.
	runs := 11
	if cfg.Quick {
		runs = 3
	}
	// Scale 0.5 makes the 2.3.0 → 2.3.1 patch (drain 2 s, stop 1 s, boot 2 s, health 1 s
	// nominal) take about 3 s: long enough that polling would show, short enough to repeat.
	const scale = 0.5
	p, err := startPlane(controlplane.Options{DataDir: filepath.Join(work, "lag-cp"), SeedEngines: 2 * runs, TimeScale: scale})
	if err != nil {
		return nil, err
	}
	defer p.close()
	f := &LagFigures{TimeScale: scale, Runs: runs, FixedPoll10sExpectedMS: 5000}
	release := func(user, version, drain string) string {
		return requiredProviders + fmt.Sprintf(`
resource "engine_release" "e" {
  user_id       = %q
  version       = %q
  drain_timeout = %q
}
`, user, version, drain)
	}
	apply := []string{"apply", "-auto-approve", "-input=false"}
	for i := 1; i <= runs; i++ {
		user := userID(i)
		dir := filepath.Join(work, "lag", user)
		if _, err := writeConfig(dir, release(user, "2.3.0", "30s")); err != nil {
			return f, err
		}
		if _, err := tf.run(ctx, dir, p.env(), apply...); err != nil {
			return f, err
		}
		if _, err := writeConfig(dir, release(user, "2.3.0", "31s")); err != nil {
			return f, err
		}
		opsBefore, err := p.Client.ListOperations(ctx, user)
		if err != nil {
			return f, err
		}
		change, err := tf.run(ctx, dir, p.env(), apply...)
		if err != nil {
			return f, err
		}
		opsAfter, err := p.Client.ListOperations(ctx, user)
		if err != nil {
			return f, err
		}
		if len(opsAfter) != len(opsBefore) {
			return f, fmt.Errorf("user %s: the drain_timeout-only apply must start no operation (before %d, after %d)", user, len(opsBefore), len(opsAfter))
		}
		if _, err := writeConfig(dir, release(user, "2.3.1", "31s")); err != nil {
			return f, err
		}
		up, err := tf.run(ctx, dir, p.env(), apply...)
		if err != nil {
			return f, err
		}
		op, err := p.lastOperation(ctx, user)
		if err != nil {
			return f, err
		}
		if op.Kind != api.OpUpgrade || op.Status != api.OpSucceeded || op.ToVersion != "2.3.1" {
			return f, fmt.Errorf("user %s: newest operation is %s %s to %s, want a succeeded upgrade to 2.3.1", user, op.Kind, op.Status, op.ToVersion)
		}
		e, err := p.Client.GetEngine(ctx, user)
		if err != nil {
			return f, err
		}
		if e.EngineVersion != "2.3.1" {
			return f, fmt.Errorf("user %s runs %s after the apply, want 2.3.1", user, e.EngineVersion)
		}
		t, err := opDuration(op)
		if err != nil {
			return f, err
		}
		noop, err := tf.run(ctx, dir, p.env(), apply...)
		if err != nil {
			return f, err
		}
		if after, _ := p.lastOperation(ctx, user); after.ID != op.ID {
			return f, fmt.Errorf("user %s: the no-op apply started operation %s", user, after.ID)
		}
		lag := up.Wall - t - noop.Wall
		f.ApplyMS = append(f.ApplyMS, round(ms(up.Wall)))
		f.OperationMS = append(f.OperationMS, round(ms(t)))
		f.NoopApplyMS = append(f.NoopApplyMS, round(ms(noop.Wall)))
		f.LagMS = append(f.LagMS, round(ms(lag)))
		f.ChangeApplyMS = append(f.ChangeApplyMS, round(ms(change.Wall)))
		f.NetLagMS = append(f.NetLagMS, round(ms(up.Wall-t-change.Wall)))
		f.FixedPoll10sLagMS = append(f.FixedPoll10sLagMS, round(ms(fixedPollLag(t, 10*time.Second))))
		cfg.logf("lag run %d: apply %s, operation %s, no-op apply %s, change-only apply %s → lag %s (net of a changing apply %s)",
			i, up.Wall.Round(time.Millisecond), t.Round(time.Millisecond), noop.Wall.Round(time.Millisecond), change.Wall.Round(time.Millisecond),
			lag.Round(time.Millisecond), (up.Wall - t - change.Wall).Round(time.Millisecond))

		// The same upgrade through the client alone, on a twin engine: what the long-poll
		// costs without terraform around it.
		notice, err := clientNotice(ctx, p.Client, userID(runs+i))
		if err != nil {
			return f, err
		}
		f.ClientNoticeMS = append(f.ClientNoticeMS, round(ms(notice)))
	}
	f.MedianLagMS = round(median(f.LagMS))
	f.MedianNetLagMS = round(median(f.NetLagMS))
	f.MedianClientNoticeMS = round(median(f.ClientNoticeMS))
	f.MedianFixedPoll10sLagMS = round(median(f.FixedPoll10sLagMS))
	return f, nil
}

// clientNotice upgrades user's engine to 2.3.1 with the client and returns how long after the
// operation's finished_at WaitOperation returned.
func clientNotice(ctx context.Context, c *client.Client, user string) (time.Duration, error) {
	op, err := c.Upgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.3.1"})
	if err != nil {
		return 0, err
	}
	done, err := c.WaitOperation(ctx, op.ID, nil)
	now := time.Now()
	if err != nil {
		return 0, err
	}
	if done.Status != api.OpSucceeded || done.FinishedAt == nil {
		return 0, fmt.Errorf("user %s: client upgrade ended %s", user, done.Status)
	}
	return now.Sub(*done.FinishedAt), nil
}
