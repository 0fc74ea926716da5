package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// FleetFigures is the fleet-scale measurement (#18): examples/fleet-scale as users run it, at
// each fleet size.
type FleetFigures struct {
	Points []FleetPoint `json:"points"`
}

// FleetPoint is examples/fleet-scale over one fleet: steps [10, 100], stepwise, bake 0s.
type FleetPoint struct {
	Engines     int     `json:"engines"`
	MaxParallel int     `json:"max_parallel"`
	TimeScale   float64 `json:"time_scale"`
	SeedSeconds float64 `json:"seed_seconds"`

	// The first apply: the plan and the 10 % step. CreatePlanMS is a plan of the same
	// configuration just before it: what the apply costs besides moving engines.
	CreatePlanMS float64 `json:"create_plan_ms"`
	StepEngines  int     `json:"step_engines"`
	StepApplyMS  float64 `json:"step_apply_ms"`
	TEngineMS    float64 `json:"t_engine_median_ms"` // the step's upgrades, each one's own time
	StepIdealMS  float64 `json:"step_ideal_ms"`      // ceil(step_engines / max_parallel) × t_engine
	StepSpanMS   float64 `json:"step_operations_span_ms"`
	StepRatio    float64 `json:"step_ratio"`      // (step apply − create plan) / ideal
	StepRawRatio float64 `json:"step_raw_ratio"`  // step apply / ideal
	StepSpanRat  float64 `json:"step_span_ratio"` // operations span / ideal
	// FastStepRatio is the same ratio at fastScale, where an upgrade takes about 0.4 s and the
	// provider's fixed cost per engine (its reads and the long-poll) weighs more.
	FastStepRatio float64 `json:"fast_step_ratio"`
	PromoteMS     float64 `json:"promote_apply_ms"`

	// After promotion (every engine moved): a plan with nothing to change.
	NoopPlanMS          float64        `json:"noop_plan_ms"`
	TerraformPeakMB     float64        `json:"terraform_peak_rss_mb"`
	ProviderPeakMB      float64        `json:"provider_peak_rss_mb"`
	StateFileBytes      int            `json:"state_file_bytes"`
	StateBytesByType    map[string]int `json:"state_bytes_by_type"`    // compact JSON of each resource type's instances
	StateBytesPerEngine float64        `json:"state_bytes_per_engine"` // the canary and its data source, compact, over engines
}

// fleetSizes are the fleets measured; a quick run measures the smaller only.
func fleetSizes(quick bool) []int {
	if quick {
		return []int{1000}
	}
	return []int{1000, 10000}
}

func runFleet(ctx context.Context, cfg Config, tf *terraform, work string) (*FleetFigures, error) {
	out := &FleetFigures{}
	for _, n := range fleetSizes(cfg.Quick) {
		pt, err := fleetPoint(ctx, cfg, tf, filepath.Join(work, fmt.Sprintf("fleet-%d", n)), n)
		out.Points = append(out.Points, pt)
		if err != nil {
			return out, fmt.Errorf("fleet of %d engines: %w", n, err)
		}
	}
	return out, nil
}

// Time scales: the 10 % step runs at stepScale, where one patch upgrade takes about 3 s as in the
// canary measurement (what an engine costs dominates, as with real engines); promotion and the
// no-op plan run at fastScale (about 0.4 s an upgrade), so 9,000 more engines move in a minute.
const stepScale, fastScale = 0.5, 0.05

// fleetStep is the 10 % step's figures from one control plane.
type fleetStep struct {
	createPlanMS, applyMS, tEngineMS, idealMS, spanMS float64
}

func fleetPoint(ctx context.Context, cfg Config, tf *terraform, dir string, n int) (FleetPoint, error) {
	const parallel = 50
	pt := FleetPoint{Engines: n, MaxParallel: parallel, TimeScale: stepScale, StepEngines: (n*10 + 99) / 100}
	example, err := os.ReadFile(filepath.Join(cfg.RepoRoot, "examples", "fleet-scale", "main.tf"))
	if err != nil {
		return pt, err
	}
	st, sp, err := fleetFirstStep(ctx, cfg, tf, filepath.Join(dir, "step"), example, n, parallel, stepScale, &pt)
	if sp != nil {
		sp.close()
	}
	if err != nil {
		return pt, err
	}
	pt.CreatePlanMS, pt.StepApplyMS, pt.TEngineMS = st.createPlanMS, st.applyMS, st.tEngineMS
	pt.StepIdealMS, pt.StepSpanMS = st.idealMS, st.spanMS
	pt.StepRatio = round((st.applyMS - st.createPlanMS) / st.idealMS)
	pt.StepRawRatio = round(st.applyMS / st.idealMS)
	pt.StepSpanRat = round(st.spanMS / st.idealMS)
	cfg.logf("fleet %d: 10%% step (%d engines) at scale %g applied in %.0f ms (plan %.0f ms), ideal %.0f ms: ratio %.2f",
		n, pt.StepEngines, stepScale, st.applyMS, st.createPlanMS, st.idealMS, pt.StepRatio)

	fast, p, err := fleetFirstStep(ctx, cfg, tf, filepath.Join(dir, "fast"), example, n, parallel, fastScale, &pt)
	if p != nil {
		defer p.close()
	}
	if err != nil {
		return pt, err
	}
	pt.FastStepRatio = round((fast.applyMS - fast.createPlanMS) / fast.idealMS)
	tfDir := filepath.Join(dir, "fast", "tf")
	env := fleetEnv(p, parallel)
	r, err := tf.run(ctx, tfDir, env, "apply", "-auto-approve", "-input=false")
	if err != nil {
		return pt, err
	}
	pt.PromoteMS = round(ms(r.Wall))
	plan, err := tf.run(ctx, tfDir, env, "plan", "-input=false", "-detailed-exitcode")
	if err != nil {
		return pt, fmt.Errorf("the plan after promotion is not a no-op: %w", err)
	}
	pt.NoopPlanMS = round(ms(plan.Wall))
	pt.TerraformPeakMB = round(float64(plan.TerraformKB) / 1024)
	pt.ProviderPeakMB = round(float64(plan.ProviderKB) / 1024)
	if err := fleetState(filepath.Join(tfDir, "terraform.tfstate"), &pt); err != nil {
		return pt, err
	}
	cfg.logf("fleet %d: no-op plan %.0f ms, terraform %.0f MB, provider %.0f MB, %.1f state bytes per engine (10%% step at scale "+
		"%g: ratio %.2f)",
		n, pt.NoopPlanMS, pt.TerraformPeakMB, pt.ProviderPeakMB, pt.StateBytesPerEngine, fastScale, pt.FastStepRatio)
	return pt, nil
}

func fleetEnv(p *plane, parallel int) []string {
	return append(p.env(), "TF_VAR_canary_version=2.3.1", "TF_VAR_steps=[10, 100]", "TF_VAR_bake_time=0s",
		fmt.Sprintf("TF_VAR_max_parallel=%d", parallel))
}

// fleetFirstStep seeds a control plane of n engines at scale, plans the example and applies its
// first (10 %) step. The caller closes the plane (nil when it did not start).
func fleetFirstStep(ctx context.Context, cfg Config, tf *terraform, dir string, example []byte, n, parallel int, scale float64,
	pt *FleetPoint) (fleetStep, *plane, error) {
	var st fleetStep
	p, err := startPlane(controlplane.Options{DataDir: filepath.Join(dir, "cp"), SeedEngines: n, SeedBrainRows: 1, TimeScale: scale})
	if err != nil {
		return st, nil, err
	}
	pt.SeedSeconds = round(p.Seeded.Seconds())
	cfg.logf("fleet %d: seeded in %.1fs (time scale %g)", n, pt.SeedSeconds, scale)
	tfDir, err := writeConfig(filepath.Join(dir, "tf"), string(example))
	if err != nil {
		return st, p, err
	}
	env := fleetEnv(p, parallel)
	cp, err := tf.run(ctx, tfDir, env, "plan", "-input=false")
	if err != nil {
		return st, p, err
	}
	r, err := tf.run(ctx, tfDir, env, "apply", "-auto-approve", "-input=false")
	if err != nil {
		return st, p, err
	}
	durs, first, last, err := stepTimes(ctx, p)
	if err != nil {
		return st, p, err
	}
	if len(durs) != pt.StepEngines {
		return st, p, fmt.Errorf("the 10%% step moved %d engines, want %d", len(durs), pt.StepEngines)
	}
	st = fleetStep{createPlanMS: round(ms(cp.Wall)), applyMS: round(ms(r.Wall)), tEngineMS: round(median(durs)),
		spanMS: round(ms(last.Sub(first)))}
	st.idealMS = round(float64((pt.StepEngines+parallel-1)/parallel) * st.tEngineMS)
	return st, p, nil
}

// stepTimes reads the upgrade operations of the engines that run 2.3.1: each one's own time, and
// the first start and last end.
func stepTimes(ctx context.Context, p *plane) (durs []float64, first, last time.Time, err error) {
	ids, err := p.Client.AllEngineIDs(ctx, client.ListEnginesOptions{Version: "2.3.1"})
	if err != nil {
		return nil, first, last, err
	}
	for _, u := range ids {
		op, err := p.lastOperation(ctx, u)
		if err != nil {
			return nil, first, last, err
		}
		if op.Kind != api.OpUpgrade || op.Status != api.OpSucceeded {
			return nil, first, last, fmt.Errorf("user %s: newest operation is %s %s, want a succeeded upgrade", u, op.Kind, op.Status)
		}
		d, err := opDuration(op)
		if err != nil {
			return nil, first, last, err
		}
		durs = append(durs, ms(d))
		if first.IsZero() || op.CreatedAt.Before(first) {
			first = op.CreatedAt
		}
		if op.FinishedAt.After(last) {
			last = *op.FinishedAt
		}
	}
	sort.Float64s(durs)
	return durs, first, last, nil
}

// fleetState measures the state file: its size, each resource type's instances as compact JSON,
// and the canary's and data source's bytes per engine.
func fleetState(path string, pt *FleetPoint) error {
	file, byType, err := stateByType(path)
	if err != nil {
		return err
	}
	pt.StateFileBytes = file
	pt.StateBytesByType = map[string]int{}
	for typ, sizes := range byType {
		for _, c := range sizes {
			pt.StateBytesByType[typ] += c
		}
	}
	pt.StateBytesPerEngine = round(float64(pt.StateBytesByType["engine_canary"]+pt.StateBytesByType["engine_instances"]) / float64(pt.Engines))
	return nil
}

// bars holds the fleet-scale targets of #18 at the largest fleet measured.
func (f *FleetFigures) bars() []Bar {
	if f == nil || len(f.Points) == 0 || f.Points[len(f.Points)-1].NoopPlanMS == 0 {
		return nil
	}
	pt := f.Points[len(f.Points)-1]
	n := fmt.Sprintf(" (fleet-scale, N=%d)", pt.Engines)
	return []Bar{
		atMost("no-op plan"+n, pt.NoopPlanMS, 3000, "ms"),
		atMost("terraform peak RSS"+n, pt.TerraformPeakMB, 300, "MB"),
		atMost("canary + data source state per engine"+n, pt.StateBytesPerEngine, 40, "bytes"),
		atMost(fmt.Sprintf("10%% step (%d engines) vs ideal%s", pt.StepEngines, n), pt.StepRatio, 1.25, "×"),
	}
}

func (f *FleetFigures) markdown(w func(format string, args ...any)) {
	if f == nil {
		return
	}
	w("")
	w("## 6. Fleet scale (examples/fleet-scale)")
	w("")
	w("`examples/fleet-scale` as a user runs it: one `engine_canary` scoped by a `selector`, steps [10, 100], stepwise, "+
		"`bake_time = \"0s\"`, `max_parallel = 50`, patch 2.3.0 → 2.3.1. The 10 %% step: a plan, then the first apply, on a control "+
		"plane at time scale %s (one upgrade about 3 s, as in the fleet rollout measurement). Then, on a second control plane at "+
		"time scale %s: the first apply, the second (promotion), and a plan with nothing to change.", num(stepScale), num(fastScale))
	w("")
	w("| engines | seed | create plan | 10 %% step: engines / apply / ideal | (apply − create plan) / ideal | raw / span ratio | " +
		"same at scale 0.05 | promote apply | no-op plan | terraform peak RSS | provider peak RSS | state file | canary + data source / engine |")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, pt := range f.Points {
		w("| %d | %s s | %s ms | %d / %s ms / %s ms | **%s×** | %s× / %s× | %s× | %s ms | **%s ms** | **%s MB** | %s MB | %d B | "+
			"**%s B** |", pt.Engines, num(pt.SeedSeconds), num(pt.CreatePlanMS), pt.StepEngines, num(pt.StepApplyMS), num(pt.StepIdealMS),
			num(pt.StepRatio), num(pt.StepRawRatio), num(pt.StepSpanRat), num(pt.FastStepRatio), num(pt.PromoteMS), num(pt.NoopPlanMS), num(pt.TerraformPeakMB), num(pt.ProviderPeakMB), pt.StateFileBytes, num(pt.StateBytesPerEngine))
	}
	w("")
	w("The ideal is ceil(step engines / max_parallel) × the median upgrade's own time on the control plane; the ratio takes the " +
		"create plan off the apply (terraform's and the provider's cost of reading and planning the fleet), the raw ratio does not, " +
		"and the span ratio is the upgrades' first start to last end over the ideal. State per engine is the compact JSON of the " +
		"canary and the data source over the engines.")
}
