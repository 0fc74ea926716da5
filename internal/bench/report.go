package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Figures is everything a run measured; figures.json is this struct.
type Figures struct {
	Quick        bool                 `json:"quick"`
	Started      time.Time            `json:"started"`
	Finished     time.Time            `json:"finished"`
	Machine      Machine              `json:"machine"`
	Plan         *PlanFigures         `json:"plan,omitempty"`
	Lag          *LagFigures          `json:"lag,omitempty"`
	Canary       *CanaryFigures       `json:"canary,omitempty"`
	Snapshot     *SnapshotFigures     `json:"snapshot,omitempty"`
	ControlPlane *ControlPlaneFigures `json:"controlplane,omitempty"`
	// The same canary and snapshot on the docker runtime's containers.
	DockerCanary   *CanaryFigures   `json:"docker_canary,omitempty"`
	DockerSnapshot *SnapshotFigures `json:"docker_snapshot,omitempty"`
	Fleet          *FleetFigures    `json:"fleet,omitempty"`
	Bars           []Bar            `json:"bars"`
	Errors         []string         `json:"errors,omitempty"`
}

// Bar is one quality bar of DESIGN.md §5 held against a measured figure.
type Bar struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
}

func atMost(name string, measured, limit float64, unit string) Bar {
	return Bar{Name: name, Measured: measured, Limit: limit, Unit: unit, Met: measured <= limit}
}

// bars evaluates every bar the run has a figure for. The plan bars are held at the largest N
// measured (1,000 in a full run; a quick run says it measured less).
func (f *Figures) bars() []Bar {
	var out []Bar
	if f.Plan != nil && len(f.Plan.Points) > 0 {
		pt := f.Plan.Points[len(f.Plan.Points)-1]
		n := fmt.Sprintf(" (N=%d)", pt.N)
		out = append(out,
			atMost("plan time vs terraform_data"+n, pt.Ratio, 1.5, "×"),
			atMost("API requests per resource per plan"+n, pt.RequestsPerResource, 1, "requests"),
			atMost("state per engine"+n, float64(pt.StateBytesMaxEngine), 2048, "bytes (largest instance)"),
			atMost("provider peak RSS"+n, pt.ProviderPeakRSSMB, 150, "MB"),
		)
	}
	if f.Lag != nil && len(f.Lag.LagMS) > 0 {
		out = append(out, atMost("apply notices an operation's end", f.Lag.MedianLagMS, 150, "ms (median lag)"))
	}
	if f.Canary != nil && f.Canary.IdealMS > 0 {
		out = append(out, atMost(fmt.Sprintf("%d-engine canary vs ideal", f.Canary.Engines), f.Canary.Ratio, 1.25, "×"))
	}
	if f.Snapshot != nil && f.Snapshot.CopyMedianMS > 0 {
		out = append(out, atMost(fmt.Sprintf("snapshot of a %.0f MB brain under writes vs plain copy", f.Snapshot.SnapshotSizeMB), f.Snapshot.Ratio, 3, "×"))
	}
	if c := f.DockerCanary; c != nil && c.IdealMS > 0 {
		out = append(out, atMost(fmt.Sprintf("docker: %d-container canary (max_parallel %d) vs ideal", c.Engines, c.MaxParallel), c.Ratio, 1.25, "×"))
	}
	if sn := f.DockerSnapshot; sn != nil && sn.CopyMedianMS > 0 {
		out = append(out, atMost(fmt.Sprintf("docker: snapshot of a container's %.0f MB brain under writes vs plain copy", sn.SnapshotSizeMB), sn.Ratio, 3, "×"))
	}
	return append(out, f.Fleet.bars()...)
}

// Render re-reads a run's figures.json and rewrites its report.md, so a report can be regenerated
// after the renderer changes without measuring again.
func Render(dir string) (*Figures, error) {
	b, err := os.ReadFile(filepath.Join(dir, "figures.json"))
	if err != nil {
		return nil, err
	}
	var f Figures
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "figures.json"), err)
	}
	return &f, f.write(dir)
}

func (f *Figures) write(dir string) error {
	f.Bars = f.bars()
	j, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "figures.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(f.Markdown()), 0o644)
}

// Markdown renders the report: the bars first (missed ones said plainly), then each
// measurement's table, then the machine.
func (f *Figures) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	kind := "full run"
	if f.Quick {
		kind = "quick run (BENCH_QUICK=1: N=100 only, fewer repeats, 64 MB brain — not the bars' sizes)"
	}
	w("# Benchmark report")
	w("")
	w("%s, %s → %s (%s). Commit `%s`%s.", kind, f.Started.Format(time.RFC3339), f.Finished.Format("15:04:05Z"),
		f.Finished.Sub(f.Started).Round(time.Second), f.Machine.Commit, map[bool]string{true: " with uncommitted changes", false: ""}[f.Machine.Dirty])
	w("")
	w("## Bars (DESIGN.md §5)")
	w("")
	w("| bar | measured | limit | |")
	w("|---|---:|---:|---|")
	missed := 0
	for _, br := range f.Bars {
		verdict := "met"
		if !br.Met {
			verdict = "**MISSED**"
			missed++
		}
		w("| %s | %s | ≤ %s %s | %s |", br.Name, num(br.Measured), num(br.Limit), br.Unit, verdict)
	}
	w("")
	switch {
	case len(f.Bars) == 0:
		w("No bar was measured.")
	case missed == 0:
		w("Every measured bar is met.")
	default:
		w("**%d bar(s) missed** — see the notes under the measurement.", missed)
	}
	for _, e := range f.Errors {
		w("")
		w("**Measurement failed:** %s", strings.ReplaceAll(e, "\n", " "))
	}
	if p := f.Plan; p != nil {
		w("")
		w("## 1. Plan cost at scale (no changes, refresh on)")
		w("")
		w("`terraform plan` of N `engine_release` (already applied, nothing to change) and of N `terraform_data`, alternately, %d runs each; medians.", firstRuns(p))
		w("")
		w("| N | engine_release | terraform_data | ratio | overhead / resource | CPU: engine_release (provider) / terraform_data | CPU ratio | provider peak RSS | state / engine | requests / resource | GET engine / resource |")
		w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, pt := range p.Points {
			cpuRatio := 0.0
			if pt.FloorCPUMS > 0 {
				cpuRatio = round(pt.EngineCPUMS / pt.FloorCPUMS)
			}
			w("| %d | %s ms | %s ms | %s× | %s ms | %s (%s) / %s ms | %s× | %s MB | %s B (max %d; file %s B vs %s B) | %s | %s |", pt.N, num(pt.EngineMedianMS), num(pt.FloorMedianMS), num(pt.Ratio),
				num(pt.OverheadPerResourceMS), num(pt.EngineCPUMS), num(pt.ProviderCPUMS), num(pt.FloorCPUMS), num(cpuRatio), num(pt.ProviderPeakRSSMB), num(pt.StateBytesPerEngine), pt.StateBytesMaxEngine,
				num(pt.StateFileBytesPerEngine), num(pt.FloorStateFileBytesPer), num(pt.RequestsPerResource), num(pt.GetEnginePerResource))
		}
		w("")
		w("State per engine is the instance's compact JSON; the file figures are terraform's indented state file divided by N, for `engine_release` and `terraform_data`. CPU is user+system time of terraform and its children (the provider's own share in brackets): on a shared machine it moves less than wall time.")
		if p.Points[0].PluginFloorMedianMS > 0 {
			w("")
			w("Where the time goes: the same rounds also planned N of the smallest terraform-plugin-framework resource (*plugin floor*: `internal/bench/floorprovider`, two string attributes and an id, no request) and the applied `engine_release` state with `internal/bench/schemafloor` serving the provider's schemas with resource methods that do nothing (*schema floor*: what the framework spends on `engine_release`'s schema and state whatever the resource's code does).")
			w("")
			w("| N | engine_release | schema floor | plugin floor | terraform_data | engine / schema floor | engine / plugin floor | plugin floor / terraform_data | CPU: engine / schema floor / plugin floor / terraform_data |")
			w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
			for _, pt := range p.Points {
				w("| %d | %s ms | %s ms | %s ms | %s ms | %s× | %s× | %s× | %s / %s / %s / %s ms |", pt.N, num(pt.EngineMedianMS), num(pt.SchemaFloorMedianMS), num(pt.PluginFloorMedianMS), num(pt.FloorMedianMS),
					num(pt.RatioVsSchemaFloor), num(pt.RatioVsPluginFloor), num(pt.PluginFloorRatio), num(pt.EngineCPUMS), num(pt.SchemaFloorCPUMS), num(pt.PluginFloorCPUMS), num(pt.FloorCPUMS))
			}
			if last := p.Points[len(p.Points)-1]; last.Ratio > 1.5 && last.SchemaFloorCPUMS > 0 {
				cpuVsSchema := round(last.EngineCPUMS / last.SchemaFloorCPUMS)
				w("")
				w("The bar (≤ 1.5× terraform_data at N=%d) is missed at %s×. The smallest framework resource is already %s× terraform_data: Terraform calls a plugin provider over gRPC four times per resource and instance (validate, upgrade state, read, plan), where terraform_data costs no process and no call. In CPU, `engine_release` is %s× its own schema floor, so its Read and ModifyPlan (one GET each refresh, nothing re-encoded when nothing changes) add %s%%; the rest is the framework's per-value work on a schema of about sixty attributes, which grows with the number of attributes (docs/guides/benchmarks.md).",
					last.N, num(last.Ratio), num(last.PluginFloorRatio), num(cpuVsSchema), num(round((cpuVsSchema-1)*100)))
			}
		}
	}
	if l := f.Lag; l != nil {
		w("")
		w("## 2. Waiting lag")
		w("")
		w("One `engine_release` patch upgrade (2.3.0 → 2.3.1) at time scale %s; lag = apply wall − operation time T (created_at → finished_at) − the same configuration's no-op apply. %d runs.", num(l.TimeScale), l.Runs)
		w("")
		w("| run | upgrade apply W | T | no-op apply B | lag W−T−B | change-only apply C | W−T−C | client long-poll notice | fixed 10 s poll lag |")
		w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for i := range l.LagMS {
			w("| %d | %s ms | %s ms | %s ms | %s ms | %s ms | %s ms | %s ms | %s ms |", i+1, num(l.ApplyMS[i]), num(l.OperationMS[i]), num(l.NoopApplyMS[i]), num(l.LagMS[i]),
				num(at(l.ChangeApplyMS, i)), num(at(l.NetLagMS, i)), num(at(l.ClientNoticeMS, i)), num(l.FixedPoll10sLagMS[i]))
		}
		w("")
		w("Median lag **%s ms** (W−T−B, the bar's definition). Net of what any changing apply costs (C: the same resource with only `drain_timeout` changed, so terraform runs its apply phase and the provider its update, with no operation to wait for) the median is %s ms. The client's long-poll alone notices the end %s ms after finished_at (median). A fixed 10 s poll would have noticed these operations %s ms late (median), and %s ms late on average over operations of any length.",
			num(l.MedianLagMS), num(l.MedianNetLagMS), num(l.MedianClientNoticeMS), num(l.MedianFixedPoll10sLagMS), num(l.FixedPoll10sExpectedMS))
	}
	if c := f.Canary; c != nil {
		canarySection(w, "## 3. Fleet rollout", c)
	}
	if sn := f.Snapshot; sn != nil {
		snapshotSection(w, "## 4. Snapshot under writes", sn)
	}
	if c := f.DockerCanary; c != nil {
		canarySection(w, "## 4a. Fleet rollout on containers (docker runtime)", c)
	}
	if sn := f.DockerSnapshot; sn != nil {
		snapshotSection(w, "## 4b. Snapshot of a container's brain under writes (docker runtime)", sn)
	}
	if c := f.ControlPlane; c != nil {
		w("")
		w("## 5. Control plane")
		w("")
		w("| seed %d engines | engine reads (%d workers, %s s) | read p50 / p99 | %d long-polls held %s s | requests served while held |", c.SeedEngines, c.ReadConcurrency, num(c.ReadSeconds), c.LongPolls, num(c.HeldSeconds))
		w("|---:|---:|---:|---:|---:|")
		w("| %s s | %s /s | %s / %s ms | %s %% of one core, %d goroutines | %d |", num(c.SeedSeconds), num(c.ReadsPerSecond), num(c.ReadP50MS), num(c.ReadP99MS), num(c.HeldCPUPercent), c.HeldGoroutines, c.HeldRequestsServed)
		w("")
		w("Reads and long-polls come from the same process as the server, so client and server share the cores. CPU while held counts the whole process.")
	}
	f.Fleet.markdown(w)
	m := f.Machine
	w("")
	w("## Machine")
	w("")
	w("%s/%s, %d cores (%s), %d MB memory; %s; %s.", m.OS, m.Arch, m.Cores, m.CPU, m.MemoryMB, m.Go, m.Terraform)
	return b.String()
}

func firstRuns(p *PlanFigures) int {
	if len(p.Points) == 0 {
		return 0
	}
	return p.Points[0].Runs
}

func at(xs []float64, i int) float64 {
	if i < len(xs) {
		return xs[i]
	}
	return 0
}

// num prints a figure without trailing zeros: 1.5, 12, 0.042.
func num(x float64) string {
	s := fmt.Sprintf("%.3f", x)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// canarySection renders a canary measurement under title.
func canarySection(w func(string, ...any), title string, c *CanaryFigures) {
	w("")
	w(title)
	w("")
	w("`engine_canary` over %d engines, `max_parallel = %d`, steps %v, `bake_time = \"0s\"`, `mode = \"auto\"` (one apply walks every step), patch 2.3.0 → 2.3.1 at time scale %s.", c.Engines, c.MaxParallel, c.Steps, num(c.TimeScale))
	w("")
	w("| t_engine (median / mean / p99) | ideal = %d × median | canary apply | no-op apply | (apply − no-op) / ideal | operations span / ideal | slot utilisation |", c.Batches)
	w("|---:|---:|---:|---:|---:|---:|---:|")
	w("| %s / %s / %s ms | %s ms | %s ms | %s ms | **%s×** | %s× | %s |", num(c.TEngineMS), num(c.TEngineMean), num(c.TEngineP99), num(c.IdealMS), num(c.ApplyMS), num(c.NoopApplyMS), num(c.Ratio), num(c.SpanRatio), num(c.Utilisation))
	w("")
	w("The steps need %d batches of %d counted step by step (%d with ceil(n/parallel)); %d upgrade operations ran, one per engine. t_engine is each upgrade operation's own time on the control plane (created_at → finished_at); slot utilisation is the sum of those times over max_parallel × the span from the first upgrade's start to the last one's end.", c.StepBatches, c.MaxParallel, c.Batches, c.Upgrades)
}

// snapshotSection renders a snapshot measurement under title.
func snapshotSection(w func(string, ...any), title string, s *SnapshotFigures) {
	w("")
	w(title)
	w("")
	w("A %s MB brain (grown with real conversation rows through the API in %s s), snapshotted %d times while one-turn writes keep arriving, against a plain copy of the file, alternately.", num(s.SnapshotSizeMB), num(s.GrowSeconds), s.Runs)
	w("")
	w("| plain copy | copy + fsync | snapshot operation | of which copy step | ratio | copy-step ratio | ratio vs copy + fsync | pinned copies | turns during | turn write p50 / p99 / max |")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	w("| %s ms | %s ms | %s ms | %s ms | **%s×** | %s× | %s× | %d of %d | %d | %s / %s / %s ms |", num(s.CopyMedianMS), num(s.SyncCopyMedianMS), num(s.SnapshotMedianMS), num(s.BackupMedianMS), num(s.Ratio), num(s.BackupRatio), num(s.RatioVsSynced), s.PinnedCopies, s.Runs, s.TurnsDuring, num(s.TurnP50MS), num(s.TurnP99MS), num(s.TurnMaxMS))
	w("")
	w("The snapshot operation is the copy step, then the verify step. The copy step copies the database file while a read transaction pins the brain at a commit whose WAL frames are all checkpointed into the file, and takes its sha256 on the way (pinned copies counts the runs that did); where the brain cannot be pinned it is SQLite's online backup instead. The verify step runs `PRAGMA integrity_check` and an fsync (and, after an online backup, the sha256) side by side. The bar is held against the plain copy; the copy + fsync column is as durable as the snapshot file.")
}
