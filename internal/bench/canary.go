package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// CanaryFigures is measurement 3: a fleet canary against the ideal schedule.
type CanaryFigures struct {
	Engines     int     `json:"engines"`
	MaxParallel int     `json:"max_parallel"`
	Steps       []int   `json:"steps"`
	TimeScale   float64 `json:"time_scale"`
	// TEngineMS is the median upgrade operation's own time (created_at to finished_at).
	TEngineMS   float64 `json:"t_engine_median_ms"`
	TEngineP99  float64 `json:"t_engine_p99_ms"`
	TEngineMean float64 `json:"t_engine_mean_ms"`
	// Utilisation is the sum of every upgrade's own time over max_parallel × span: 1 means the
	// provider kept every slot busy the whole time, whatever the control plane's speed.
	Utilisation float64 `json:"slot_utilisation"`
	Batches     int     `json:"ideal_batches"`      // ceil(engines/max_parallel)
	StepBatches int     `json:"step_batches"`       // the same, counted step by step
	IdealMS     float64 `json:"ideal_ms"`           // Batches × TEngineMS
	ApplyMS     float64 `json:"apply_ms"`           // the canary's create, all steps in one apply (mode auto)
	NoopApplyMS float64 `json:"noop_apply_ms"`      // the same configuration applied again: terraform's own cost
	SpanMS      float64 `json:"operations_span_ms"` // first upgrade created to last finished
	Ratio       float64 `json:"ratio"`              // (ApplyMS − NoopApplyMS) / IdealMS
	SpanRatio   float64 `json:"span_ratio"`         // SpanMS / IdealMS
	Upgrades    int64   `json:"upgrade_operations"`
	Runtime     string  `json:"runtime,omitempty"` // the control plane's runtime: sim, docker
}

func runCanary(ctx context.Context, cfg Config, tf *terraform, work string) (*CanaryFigures, error) {
	// At scale 0.5 one patch upgrade takes about 3 s (6 s nominal) and the ideal is about a
	// minute; quick runs use 0.1 (0.6 s, 12 s), where fixed per-engine costs weigh more.
	scale := 0.5
	if cfg.Quick {
		scale = 0.1
	}
	return runCanaryOn(ctx, cfg, tf, work, 1000, 50, controlplane.Options{DataDir: filepath.Join(work, "canary-cp"), TimeScale: scale})
}

// runCanaryOn measures a canary over n engines of a control plane started with opts (seeded with
// n engines on 2.3.0) moving them to 2.3.1 with max_parallel parallel, against the ideal.
func runCanaryOn(ctx context.Context, cfg Config, tf *terraform, work string, n, parallel int, opts controlplane.Options) (*CanaryFigures, error) {
	steps := []int{5, 25, 100}
	opts.SeedEngines = n
	p, err := startPlane(opts)
	if err != nil {
		return nil, err
	}
	defer p.close()
	f := &CanaryFigures{Engines: n, MaxParallel: parallel, Steps: steps, TimeScale: opts.TimeScale, Runtime: p.srv.Runtime(),
		Batches: (n + parallel - 1) / parallel, StepBatches: stepBatches(n, parallel, steps)}

	stepsHCL := make([]string, len(steps))
	for i, s := range steps {
		stepsHCL[i] = fmt.Sprint(s)
	}
	dir, err := writeConfig(filepath.Join(work, "canary-"+f.Runtime), requiredProviders+fmt.Sprintf(`
resource "engine_canary" "fleet" {
  version      = "2.3.1"
  user_ids     = [for i in range(1, %d) : format("user-%%04d", i)]
  steps        = [%s]
  bake_time    = "0s"
  max_parallel = %d
  mode         = "auto"
}
`, n+1, strings.Join(stepsHCL, ", "), parallel))
	if err != nil {
		return nil, err
	}
	before, err := p.Client.Stats(ctx)
	if err != nil {
		return nil, err
	}
	apply := []string{"apply", "-auto-approve", "-input=false"}
	r, err := tf.run(ctx, dir, p.env(), apply...)
	if err != nil {
		return f, err
	}
	f.ApplyMS = round(ms(r.Wall))
	after, err := p.Client.Stats(ctx)
	if err != nil {
		return f, err
	}
	f.Upgrades = after.Operations[api.OpUpgrade] - before.Operations[api.OpUpgrade]
	if f.Upgrades != int64(n) {
		return f, fmt.Errorf("the canary started %d upgrade operations, want exactly %d (one per engine)", f.Upgrades, n)
	}
	noop, err := tf.run(ctx, dir, p.env(), apply...)
	if err != nil {
		return f, err
	}
	f.NoopApplyMS = round(ms(noop.Wall))

	durs, first, last, err := upgradeTimes(ctx, p, n)
	if err != nil {
		return f, err
	}
	f.TEngineMS = round(median(durs))
	f.TEngineP99 = round(percentile(durs, 99))
	f.SpanMS = round(ms(last.Sub(first)))
	var total float64
	for _, d := range durs {
		total += d
	}
	f.TEngineMean = round(total / float64(len(durs)))
	f.Utilisation = round(total / (float64(parallel) * f.SpanMS))
	f.IdealMS = round(float64(f.Batches) * f.TEngineMS)
	f.Ratio = round((f.ApplyMS - f.NoopApplyMS) / f.IdealMS)
	f.SpanRatio = round(f.SpanMS / f.IdealMS)
	cfg.logf("canary: apply %.0f ms, no-op apply %.0f ms, t_engine %.0f ms (mean %.0f, p99 %.0f), ideal %.0f ms → ratio %.3f (operations span %.0f ms, slot utilisation %.2f)",
		f.ApplyMS, f.NoopApplyMS, f.TEngineMS, f.TEngineMean, f.TEngineP99, f.IdealMS, f.Ratio, f.SpanMS, f.Utilisation)
	return f, nil
}

// upgradeTimes reads every engine's upgrade operation: each one's own duration, and the first
// start and last end over the fleet. It also checks the outcome: every engine runs 2.3.1.
func upgradeTimes(ctx context.Context, p *plane, n int) (durs []float64, first, last time.Time, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var firstErr error
	for i := 1; i <= n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(user string) {
			defer wg.Done()
			defer func() { <-sem }()
			e, err := p.Client.GetEngine(ctx, user)
			var op api.Operation
			var d time.Duration
			if err == nil && e.EngineVersion != "2.3.1" {
				err = fmt.Errorf("user %s runs %s after the canary, want 2.3.1", user, e.EngineVersion)
			}
			if err == nil {
				op, err = p.lastOperation(ctx, user)
			}
			if err == nil && (op.Kind != api.OpUpgrade || op.Status != api.OpSucceeded) {
				err = fmt.Errorf("user %s: newest operation is %s %s, want a succeeded upgrade", user, op.Kind, op.Status)
			}
			if err == nil {
				d, err = opDuration(op)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			durs = append(durs, ms(d))
			if first.IsZero() || op.CreatedAt.Before(first) {
				first = op.CreatedAt
			}
			if op.FinishedAt.After(last) {
				last = *op.FinishedAt
			}
		}(userID(i))
	}
	wg.Wait()
	return durs, first, last, firstErr
}
