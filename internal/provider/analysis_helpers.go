package provider

import (
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// analysisWords are the words an analysis's schema uses for what it judges: engine_canary judges
// a cohort against the engines not moved, engine_release one engine against itself before.
type analysisWords struct {
	who        string // "an engine of the cohort": who may show a threshold's figure
	newKinds   string // the description of max_new_warning_kinds
	worseThan  string // "How much worse than the baseline the cohort may be"
	comparedTo string // "the baseline's"
}

// analysisAttributes are the analysis settings engine_canary and engine_release share: a
// threshold per row of the analysis table, the warning kinds, the baseline tolerance and the
// metrics window. extra adds a resource's own.
func analysisAttributes(w analysisWords, extra map[string]schema.Attribute) map[string]schema.Attribute {
	attrs := map[string]schema.Attribute{
		"max_new_warning_kinds": schema.Int64Attribute{MarkdownDescription: w.newKinds + " Defaults to `0`.",
			Optional: true, Computed: true, Default: int64default.StaticInt64(0), Validators: []validator.Int64{int64validator.Between(0, 1000)}},
		"baseline_tolerance": schema.Float64Attribute{
			MarkdownDescription: w.worseThan + ": error rate and P99 up to (1 + tolerance) × " + w.comparedTo + ", cache-hit ratio down to " +
				"baseline ÷ (1 + tolerance). 0–10, defaults to `0.5`.",
			Optional: true, Computed: true, Default: float64default.StaticFloat64(defaultBaselineTolerance),
			Validators: []validator.Float64{float64validator.Between(0, 10)}},
		"window": schema.StringAttribute{MarkdownDescription: "The metrics window, a Go duration from `1s` to `24h`. Defaults to `5m`.",
			Optional: true, Computed: true, Default: stringdefault.StaticString(defaultAnalysisWindow),
			Validators: []validator.String{durationValidator{min: time.Second, max: 24 * time.Hour}}},
	}
	for _, row := range upgrade.Metrics {
		attrs[row.Limit] = schema.Float64Attribute{MarkdownDescription: fmt.Sprintf(row.Describe, w.who), Optional: true,
			Validators: []validator.Float64{float64validator.Between(row.Min, row.Max)}}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return attrs
}

// readAnalysis fills cfg from an analysis object's shared settings (those of analysisAttributes)
// and returns its metrics window; unset or unknown values keep cfg's and window's defaults.
func readAnalysis(o types.Object, cfg *upgrade.AnalysisConfig, window time.Duration) time.Duration {
	if o.IsNull() || o.IsUnknown() {
		return window
	}
	attrs := o.Attributes()
	float := func(k string) *float64 {
		if f, ok := attrs[k].(types.Float64); ok && !f.IsNull() && !f.IsUnknown() {
			v := f.ValueFloat64()
			return &v
		}
		return nil
	}
	for _, row := range upgrade.Metrics {
		row.SetThreshold(cfg, float(row.Limit))
	}
	if n, ok := attrs["max_new_warning_kinds"].(types.Int64); ok && !n.IsNull() && !n.IsUnknown() {
		cfg.MaxNewWarningKinds = int(n.ValueInt64())
	}
	if v := float("baseline_tolerance"); v != nil {
		cfg.BaselineTolerance = *v
	}
	if s, ok := attrs["window"].(types.String); ok {
		if d, err := time.ParseDuration(s.ValueString()); err == nil && d > 0 {
			window = d
		}
	}
	return window
}
