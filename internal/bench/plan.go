package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// PlanPoint is measurement 1 at one N: a no-change plan of N engine_release against N
// terraform_data, run alternately so both see the same machine load.
type PlanPoint struct {
	N                       int              `json:"n"`
	Runs                    int              `json:"runs"`
	EngineMS                []float64        `json:"engine_plan_ms"`
	FloorMS                 []float64        `json:"floor_plan_ms"`
	EngineMedianMS          float64          `json:"engine_plan_median_ms"`
	FloorMedianMS           float64          `json:"floor_plan_median_ms"`
	Ratio                   float64          `json:"ratio"` // median engine / median floor
	PairRatioMedian         float64          `json:"pair_ratio_median"`
	OverheadPerResourceMS   float64          `json:"overhead_per_resource_ms"`
	ProviderPeakRSSMB       float64          `json:"provider_peak_rss_mb"` // highest over the runs
	StateBytesPerEngine     float64          `json:"state_bytes_per_engine"`
	StateBytesMaxEngine     int              `json:"state_bytes_max_engine"`
	StateFileBytesPerEngine float64          `json:"state_file_bytes_per_engine"`
	FloorStateFileBytesPer  float64          `json:"floor_state_file_bytes_per_resource"`
	RequestsPerResource     float64          `json:"requests_per_resource_per_plan"`
	GetEnginePerResource    float64          `json:"get_engine_per_resource_per_plan"`
	RequestsByRoute         map[string]int64 `json:"requests_by_route_last_plan"`
	SetupApplySeconds       float64          `json:"setup_apply_seconds"`
	// CPU medians: terraform with the provider, the provider alone, and terraform_data's plan.
	EngineCPUMS   float64 `json:"engine_plan_cpu_ms"`
	ProviderCPUMS float64 `json:"provider_cpu_ms"`
	FloorCPUMS    float64 `json:"floor_plan_cpu_ms"`
	// Two plugin floors, planned in the same rounds: N of the smallest framework resource
	// (floorprovider: what any plugin provider costs Terraform), and the same applied
	// engine_release state planned by schemafloor (engine_release's schema, methods that do
	// nothing: what the framework spends on this schema whatever the resource's code does).
	PluginFloorMS          []float64 `json:"plugin_floor_plan_ms"`
	SchemaFloorMS          []float64 `json:"schema_floor_plan_ms"`
	PluginFloorMedianMS    float64   `json:"plugin_floor_plan_median_ms"`
	SchemaFloorMedianMS    float64   `json:"schema_floor_plan_median_ms"`
	PluginFloorCPUMS       float64   `json:"plugin_floor_plan_cpu_ms"`
	SchemaFloorCPUMS       float64   `json:"schema_floor_plan_cpu_ms"`
	RatioVsPluginFloor     float64   `json:"ratio_vs_plugin_floor"`        // engine / plugin floor
	RatioVsSchemaFloor     float64   `json:"ratio_vs_schema_floor"`        // engine / schema floor
	PluginFloorRatio       float64   `json:"plugin_floor_ratio"`           // plugin floor / terraform_data
	PluginFloorProviderCPU float64   `json:"plugin_floor_provider_cpu_ms"` // the floor provider's own CPU
}

// PlanFigures is measurement 1.
type PlanFigures struct {
	Points []PlanPoint `json:"points"`
}

const getEngineRoute = "GET /v1/engines/{user_id}"

func runPlan(ctx context.Context, cfg Config, tf *terraform, work string) (*PlanFigures, error) {
	ns, runs := []int{100, 500, 1000}, 5
	if cfg.Quick {
		ns, runs = []int{100}, 3
	}
	if len(cfg.PlanNs) > 0 {
		ns = cfg.PlanNs
	}
	if cfg.Runs > 0 {
		runs = cfg.Runs
	}
	p, err := startPlane(controlplane.Options{DataDir: filepath.Join(work, "plan-cp"), SeedEngines: ns[len(ns)-1], TimeScale: 0.001})
	if err != nil {
		return nil, err
	}
	defer p.close()
	cfg.logf("control plane with %d engines seeded in %s", ns[len(ns)-1], p.Seeded.Round(time.Millisecond))
	out := &PlanFigures{}
	for _, n := range ns {
		pt, err := planPoint(ctx, cfg, tf, p, filepath.Join(work, fmt.Sprintf("plan-%d", n)), n, runs)
		if err != nil {
			return out, fmt.Errorf("plan of %d resources: %w", n, err)
		}
		out.Points = append(out.Points, pt)
	}
	return out, nil
}

func planPoint(ctx context.Context, cfg Config, tf *terraform, p *plane, dir string, n, runs int) (PlanPoint, error) {
	pt := PlanPoint{N: n, Runs: runs}
	engDir, err := writeConfig(filepath.Join(dir, "engine"), requiredProviders+releases("engine", n))
	if err != nil {
		return pt, err
	}
	pluginDir, err := writeConfig(filepath.Join(dir, "plugin-floor"), `
terraform {
  required_providers {
    benchfloor = { source = "septemberai/benchfloor" }
  }
}
`+releases("benchfloor", n))
	if err != nil {
		return pt, err
	}
	floorDir, err := writeConfig(filepath.Join(dir, "floor"), fmt.Sprintf(`
resource "terraform_data" "e" {
  count = %d
  input = format("user-%%04d", count.index + 1)
}
`, n))
	if err != nil {
		return pt, err
	}
	apply := []string{"apply", "-auto-approve", "-input=false", "-parallelism=64"}
	start := time.Now()
	if _, err := tf.run(ctx, engDir, p.env(), apply...); err != nil {
		return pt, err
	}
	pt.SetupApplySeconds = round(time.Since(start).Seconds())
	if _, err := tf.run(ctx, floorDir, nil, apply...); err != nil {
		return pt, err
	}
	if _, err := tf.run(ctx, pluginDir, nil, apply...); err != nil {
		return pt, err
	}
	// A refresh settles what the first refresh after an apply changes (planned_upgrade goes back
	// to null), so the measured plans and the schema floor see the state a fleet's plans see.
	if _, err := tf.run(ctx, engDir, p.env(), "apply", "-refresh-only", "-auto-approve", "-input=false"); err != nil {
		return pt, err
	}
	cfg.logf("N=%d applied in %.1fs; planning %d× each, alternately", n, pt.SetupApplySeconds, runs)

	// -detailed-exitcode makes a plan with changes exit 2, which run reports as an error: a
	// benchmark of a plan that is not empty would measure the wrong thing.
	plan := []string{"plan", "-input=false", "-detailed-exitcode"}
	// One unmeasured plan each warms the page cache and terraform's plugin discovery.
	if _, err := tf.run(ctx, engDir, p.env(), plan...); err != nil {
		return pt, err
	}
	if _, err := tf.run(ctx, floorDir, nil, plan...); err != nil {
		return pt, err
	}
	if _, err := tf.run(ctx, pluginDir, nil, plan...); err != nil {
		return pt, err
	}
	if _, err := tf.schemaFloor.run(ctx, engDir, p.env(), plan...); err != nil {
		return pt, err
	}
	var reqs, gets []float64
	var pairs, ecpu, pcpu, fcpu, plcpu, plpcpu, sfcpu []float64
	for i := 0; i < runs; i++ {
		before, err := p.requests(ctx)
		if err != nil {
			return pt, err
		}
		er, err := tf.run(ctx, engDir, p.env(), plan...)
		if err != nil {
			return pt, err
		}
		after, err := p.requests(ctx)
		if err != nil {
			return pt, err
		}
		fr, err := tf.run(ctx, floorDir, nil, plan...)
		if err != nil {
			return pt, err
		}
		pr, err := tf.run(ctx, pluginDir, nil, plan...)
		if err != nil {
			return pt, err
		}
		sr, err := tf.schemaFloor.run(ctx, engDir, p.env(), plan...)
		if err != nil {
			return pt, err
		}
		pt.PluginFloorMS = append(pt.PluginFloorMS, round(ms(pr.Wall)))
		pt.SchemaFloorMS = append(pt.SchemaFloorMS, round(ms(sr.Wall)))
		plcpu, plpcpu, sfcpu = append(plcpu, ms(pr.TotalCPU)), append(plpcpu, ms(pr.ProviderCPU)), append(sfcpu, ms(sr.TotalCPU))
		if er.ProviderKB == 0 {
			return pt, fmt.Errorf("no %s process was seen during the plan: the RSS figure would be made up", providerComm)
		}
		d := requestDelta(before, after)
		pt.RequestsByRoute = d
		reqs = append(reqs, float64(sum(d))/float64(n))
		gets = append(gets, float64(d[getEngineRoute])/float64(n))
		pt.EngineMS = append(pt.EngineMS, round(ms(er.Wall)))
		pt.FloorMS = append(pt.FloorMS, round(ms(fr.Wall)))
		pairs = append(pairs, ms(er.Wall)/ms(fr.Wall))
		ecpu, pcpu, fcpu = append(ecpu, ms(er.TotalCPU)), append(pcpu, ms(er.ProviderCPU)), append(fcpu, ms(fr.TotalCPU))
		pt.ProviderPeakRSSMB = max(pt.ProviderPeakRSSMB, round(float64(er.ProviderKB)/1024))
		cfg.logf("N=%d run %d: engine_release %s (CPU %s, provider %s), schema floor %s, plugin floor %s, terraform_data %s (CPU %s), provider peak RSS %.1f MB, %d requests",
			n, i+1, er.Wall.Round(time.Millisecond), er.TotalCPU.Round(time.Millisecond), er.ProviderCPU, sr.Wall.Round(time.Millisecond),
			pr.Wall.Round(time.Millisecond), fr.Wall.Round(time.Millisecond), fr.TotalCPU.Round(time.Millisecond), float64(er.ProviderKB)/1024, sum(d))
	}
	pt.EngineMedianMS, pt.FloorMedianMS = round(median(pt.EngineMS)), round(median(pt.FloorMS))
	pt.Ratio = round(pt.EngineMedianMS / pt.FloorMedianMS)
	pt.PairRatioMedian = round(median(pairs))
	pt.OverheadPerResourceMS = round((pt.EngineMedianMS - pt.FloorMedianMS) / float64(n))
	pt.EngineCPUMS, pt.ProviderCPUMS, pt.FloorCPUMS = round(median(ecpu)), round(median(pcpu)), round(median(fcpu))
	pt.PluginFloorMedianMS, pt.SchemaFloorMedianMS = round(median(pt.PluginFloorMS)), round(median(pt.SchemaFloorMS))
	pt.PluginFloorCPUMS, pt.SchemaFloorCPUMS, pt.PluginFloorProviderCPU = round(median(plcpu)), round(median(sfcpu)), round(median(plpcpu))
	pt.RatioVsPluginFloor = round(pt.EngineMedianMS / pt.PluginFloorMedianMS)
	pt.RatioVsSchemaFloor = round(pt.EngineMedianMS / pt.SchemaFloorMedianMS)
	pt.PluginFloorRatio = round(pt.PluginFloorMedianMS / pt.FloorMedianMS)
	pt.RequestsPerResource = round(median(reqs))
	pt.GetEnginePerResource = round(median(gets))

	es, err := stateSizes(filepath.Join(engDir, "terraform.tfstate"), "engine_release")
	if err != nil {
		return pt, err
	}
	if len(es.instances) != n {
		return pt, fmt.Errorf("state holds %d engine_release instances, want %d", len(es.instances), n)
	}
	fs, err := stateSizes(filepath.Join(floorDir, "terraform.tfstate"), "terraform_data")
	if err != nil {
		return pt, err
	}
	total := 0
	for _, b := range es.instances {
		total += b
		pt.StateBytesMaxEngine = max(pt.StateBytesMaxEngine, b)
	}
	pt.StateBytesPerEngine = round(float64(total) / float64(n))
	pt.StateFileBytesPerEngine = round(float64(es.file) / float64(n))
	pt.FloorStateFileBytesPer = round(float64(fs.file) / float64(n))
	return pt, nil
}

// releases is n resources PROVIDER_release, one per seeded user, all at 2.3.0.
func releases(provider string, n int) string {
	return fmt.Sprintf(`
resource "%s_release" "e" {
  count   = %d
  user_id = format("user-%%04d", count.index + 1)
  version = "2.3.0"
}
`, provider, n)
}

type stateSize struct {
	file      int   // the state file's bytes as terraform wrote it (indented JSON)
	instances []int // each instance of the resource type, as compact JSON
}

// stateSizes measures what each resource instance of typ costs in a state file. Compact JSON is
// the fair per-engine figure: the indentation terraform adds is the same for every provider.
func stateSizes(path, typ string) (stateSize, error) {
	file, byType, err := stateByType(path)
	return stateSize{file: file, instances: byType[typ]}, err
}

// stateByType reads a state file: its size and each resource type's instances as compact JSON
// sizes (a data source's type is its name, as for a resource).
func stateByType(path string) (int, map[string][]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var st struct {
		Resources []struct {
			Type      string            `json:"type"`
			Instances []json.RawMessage `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string][]int{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			var c bytes.Buffer
			if err := json.Compact(&c, in); err != nil {
				return 0, nil, err
			}
			out[r.Type] = append(out[r.Type], c.Len())
		}
	}
	return len(b), out, nil
}
