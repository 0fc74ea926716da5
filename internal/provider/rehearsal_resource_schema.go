package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const defaultReplayTurns = 20

// Object types of the rehearsal's computed values, shared by the resource and the data source.
var (
	rehearsalFiguresType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"version": types.StringType, "requests": types.Int64Type, "error_rate": types.Float64Type, "p99_latency_ms": types.Float64Type,
		"cache_hit_ratio": types.Float64Type, "warning_kinds": types.ListType{ElemType: types.StringType}, "eval_score": types.Float64Type,
	}}
	rehearsalCheckType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"metric": types.StringType, "staging": types.Float64Type, "production": types.Float64Type, "threshold": types.Float64Type,
		"detail": types.StringType,
	}}
	rehearsalMigrationType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"id": types.StringType, "from_schema": types.Int64Type, "to_schema": types.Int64Type, "destructive": types.BoolType,
		"duration_ms": types.Float64Type,
	}}
)

// rehearsalValues are what a rehearsal is, as the resource records it and the data source reads it.
type rehearsalValues struct {
	ID            types.String `tfsdk:"id"`
	UserID        types.String `tfsdk:"user_id"`
	Version       types.String `tfsdk:"version"`
	SnapshotID    types.String `tfsdk:"snapshot_id"`
	Status        types.String `tfsdk:"status"`
	Verdict       types.String `tfsdk:"verdict"`
	FailedChecks  types.List   `tfsdk:"failed_checks"`
	Staging       types.Object `tfsdk:"staging"`
	Production    types.Object `tfsdk:"production"`
	Migrations    types.List   `tfsdk:"migrations"`
	UpgradePath   types.List   `tfsdk:"upgrade_path"`
	FromVersion   types.String `tfsdk:"from_version"`
	StagingUserID types.String `tfsdk:"staging_user_id"`
	StagingURL    types.String `tfsdk:"staging_url"`
	OperationID   types.String `tfsdk:"operation_id"`
	FinishedAt    types.String `tfsdk:"finished_at"`
}

// rehearsalModel is engine_rehearsal's state.
type rehearsalModel struct {
	rehearsalValues
	ReplayTurns types.Int64    `tfsdk:"replay_turns"`
	EvalSuite   types.String   `tfsdk:"eval_suite"`
	Analysis    types.Object   `tfsdk:"analysis"`
	KeepEngine  types.Bool     `tfsdk:"keep_engine"`
	Timeouts    timeouts.Value `tfsdk:"timeouts"`
}

// verdictOf is a rehearsal's verdict: pass, fail, or "" when it has none (running, errored).
func verdictOf(status string) string {
	switch status {
	case api.RehearsalPassed:
		return "pass"
	case api.RehearsalFailed:
		return "fail"
	}
	return ""
}

func (v *rehearsalValues) fill(r api.Rehearsal) {
	v.ID, v.UserID, v.Version = types.StringValue(r.ID), types.StringValue(r.UserID), types.StringValue(r.ToVersion)
	v.SnapshotID, v.Status, v.Verdict = types.StringValue(r.SnapshotID), types.StringValue(r.Status), types.StringValue(verdictOf(r.Status))
	v.FromVersion, v.StagingUserID = types.StringValue(r.FromVersion), types.StringValue(r.StagingUserID)
	v.StagingURL = types.StringValue(r.StagingURL)
	v.OperationID, v.FinishedAt = types.StringValue(r.OperationID), types.StringValue("")
	if r.FinishedAt != nil {
		v.FinishedAt = types.StringValue(rfc3339(*r.FinishedAt))
	}
	checks := make([]attr.Value, 0, len(r.FailedChecks))
	for _, c := range r.FailedChecks {
		checks = append(checks, types.ObjectValueMust(rehearsalCheckType.AttrTypes, map[string]attr.Value{
			"metric": types.StringValue(c.Metric), "staging": types.Float64Value(c.Staging), "production": types.Float64Value(c.Production),
			"threshold": types.Float64Value(c.Threshold), "detail": types.StringValue(c.Detail)}))
	}
	v.FailedChecks = types.ListValueMust(rehearsalCheckType, checks)
	migs := make([]attr.Value, 0, len(r.Migrations))
	for _, m := range r.Migrations {
		migs = append(migs, types.ObjectValueMust(rehearsalMigrationType.AttrTypes, map[string]attr.Value{
			"id": types.StringValue(m.ID), "from_schema": types.Int64Value(int64(m.FromSchema)), "to_schema": types.Int64Value(int64(m.ToSchema)),
			"destructive": types.BoolValue(m.Destructive), "duration_ms": types.Float64Value(m.DurationMS)}))
	}
	v.Migrations = types.ListValueMust(rehearsalMigrationType, migs)
	path := make([]attr.Value, 0, len(r.Path))
	for _, p := range r.Path {
		path = append(path, types.StringValue(p))
	}
	v.UpgradePath = types.ListValueMust(types.StringType, path)
	v.Staging, v.Production = figuresValue(r.Staging), figuresValue(r.Production)
}

func figuresValue(f *api.RehearsalFigures) types.Object {
	if f == nil {
		return types.ObjectNull(rehearsalFiguresType.AttrTypes)
	}
	kinds := make([]attr.Value, 0, len(f.WarningKinds))
	for _, k := range f.WarningKinds {
		kinds = append(kinds, types.StringValue(k))
	}
	eval := types.Float64Null()
	if f.EvalScore != nil {
		eval = types.Float64Value(*f.EvalScore)
	}
	return types.ObjectValueMust(rehearsalFiguresType.AttrTypes, map[string]attr.Value{
		"version": types.StringValue(f.Version), "requests": types.Int64Value(f.Requests), "error_rate": types.Float64Value(f.ErrorRate),
		"p99_latency_ms": types.Float64Value(f.P99LatencyMS), "cache_hit_ratio": types.Float64Value(f.CacheHitRatio),
		"warning_kinds": types.ListValueMust(types.StringType, kinds), "eval_score": eval})
}

// unknownComputed leaves every value the rehearsal computes unknown: a create, or an attach.
func (v *rehearsalValues) unknownComputed() {
	for _, s := range []*types.String{&v.ID, &v.Status, &v.Verdict, &v.FromVersion, &v.StagingUserID, &v.StagingURL, &v.OperationID,
		&v.FinishedAt} {
		*s = types.StringUnknown()
	}
	if v.SnapshotID.IsNull() {
		v.SnapshotID = types.StringUnknown()
	}
	v.FailedChecks, v.Migrations = types.ListUnknown(rehearsalCheckType), types.ListUnknown(rehearsalMigrationType)
	v.UpgradePath = types.ListUnknown(types.StringType)
	v.Staging, v.Production = types.ObjectUnknown(rehearsalFiguresType.AttrTypes), types.ObjectUnknown(rehearsalFiguresType.AttrTypes)
}

// rehearsalComputedAttributes are the values a rehearsal computes, for the resource's schema.
func rehearsalComputedAttributes() map[string]schema.Attribute {
	figures := func(who string) schema.SingleNestedAttribute {
		return schema.SingleNestedAttribute{Computed: true, MarkdownDescription: who + "'s figures over the metrics window; null when it " +
			"served " +
			"no requests in the window " +
			"(then only the thresholds are checked, not the baseline).",
			Attributes: map[string]schema.Attribute{
				"version":         schema.StringAttribute{Computed: true, MarkdownDescription: "The version it ran."},
				"requests":        schema.Int64Attribute{Computed: true, MarkdownDescription: "Requests in the window."},
				"error_rate":      schema.Float64Attribute{Computed: true, MarkdownDescription: "Errors ÷ requests."},
				"p99_latency_ms":  schema.Float64Attribute{Computed: true, MarkdownDescription: "P99 latency (ms)."},
				"cache_hit_ratio": schema.Float64Attribute{Computed: true, MarkdownDescription: "Cache-hit tokens ÷ input tokens."},
				"warning_kinds":   schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Warning kinds logged."},
				"eval_score":      schema.Float64Attribute{Computed: true, MarkdownDescription: "The eval suite's score (with `eval_suite`)."},
			}}
	}
	return map[string]schema.Attribute{
		"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The rehearsal id (`reh-…`): what `engine_release.rehearsal_id` " +
			"names. Import with it.",
			PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		"status": schema.StringAttribute{Computed: true, MarkdownDescription: "`running` (an interrupted apply left it running: the next apply " +
			"attaches), `passed`, `failed` (the verdict failed) or " +
			"`errored` (a step could not run: no verdict)."},
		"verdict": schema.StringAttribute{Computed: true, MarkdownDescription: "`pass` or `fail`; empty without a verdict."},
		"failed_checks": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Each failed check: the metric, the staging and " +
			"production figures, the limit it broke, in words.",
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"metric": schema.StringAttribute{Computed: true, MarkdownDescription: "`error_rate`, `p99_latency_ms`, `cache_hit_ratio`, " +
					"`new_warning_kinds`, `eval_score` or `replay`."},
				"staging":    schema.Float64Attribute{Computed: true, MarkdownDescription: "The staging engine's figure."},
				"production": schema.Float64Attribute{Computed: true, MarkdownDescription: "The source engine's figure."},
				"threshold":  schema.Float64Attribute{Computed: true, MarkdownDescription: "The limit it broke."},
				"detail":     schema.StringAttribute{Computed: true, MarkdownDescription: "The check in words."},
			}}},
		"staging":    figures("The staging engine"),
		"production": figures("The source engine (the baseline)"),
		"migrations": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "The migrations that ran on the copy, in order, with how " +
			"long each took: a measured forecast " +
			"of the production upgrade's downtime for this engine.",
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"id":          schema.StringAttribute{Computed: true, MarkdownDescription: "The migration."},
				"from_schema": schema.Int64Attribute{Computed: true, MarkdownDescription: "Schema before."},
				"to_schema":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Schema after."},
				"destructive": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether it rewrites or drops data."},
				"duration_ms": schema.Float64Attribute{Computed: true, MarkdownDescription: "How long it took on the copy (ms)."},
			}}},
		"upgrade_path": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The versions of the " +
			"rehearsed upgrade, `from_version` first."},
		"from_version": schema.StringAttribute{Computed: true, MarkdownDescription: "The version the engine ran when the rehearsal started: " +
			"the upgrade rehearsed goes from here."},
		"staging_user_id": schema.StringAttribute{Computed: true,
			MarkdownDescription: "The staging engine's id (`<user_id>.rehearsal-…`); it " +
				"is never listed with the fleet."},
		"staging_url": schema.StringAttribute{Computed: true, MarkdownDescription: "The staging engine's URL while it runs (`keep_engine`): " +
			"its " +
			"`/health` answers, its " +
			"turns take spot-checks. Empty once it is torn down."},
		"operation_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The control plane operation that ran the rehearsal."},
		"finished_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the verdict was reached (RFC 3339)."},
	}
}

func (r *rehearsalResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	attrs := rehearsalComputedAttributes()
	attrs["user_id"] = schema.StringAttribute{Required: true, PlanModifiers: replace, Validators: []validator.String{idValidator()},
		MarkdownDescription: "The user whose engine's upgrade is rehearsed (the source engine: never stopped, migrated or written to). " +
			"Changing " +
			"it replaces the rehearsal."}
	attrs["version"] = schema.StringAttribute{Required: true, PlanModifiers: replace,
		MarkdownDescription: "The version to rehearse: newer than the one the engine runs. Changing it replaces the rehearsal."}
	attrs["snapshot_id"] = schema.StringAttribute{Optional: true, Computed: true, Validators: []validator.String{idValidator()},
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplaceIfConfigured(), stringplanmodifier.UseStateForUnknown()},
		MarkdownDescription: "A verified snapshot of this engine to copy (its sha256 is checked on the copy). Unset, the control plane takes " +
			"and verifies one " +
			"(kept 7 days) and this records it. Changing it replaces the rehearsal."}
	attrs["replay_turns"] = schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(defaultReplayTurns),
		PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()}, Validators: []validator.Int64{int64validator.Between(1, 1000)},
		MarkdownDescription: fmt.Sprintf("How many of the last user turns recorded in the brain to replay to the staging engine (1–1000). "+
			"Defaults to `%d`. Changing it replaces the rehearsal.", defaultReplayTurns)}
	attrs["eval_suite"] = schema.StringAttribute{Optional: true, PlanModifiers: replace, Validators: []validator.String{idValidator()},
		MarkdownDescription: "An eval suite to run in full on the staging engine, with a baseline run on the source engine's version. Changing " +
			"it replaces the rehearsal."}
	attrs["analysis"] = schema.SingleNestedAttribute{Optional: true,
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		MarkdownDescription: "What the verdict checks, as `engine_canary`'s analysis: the staging engine against the thresholds and against " +
			"the " +
			"source engine (the baseline) " +
			"over the metrics window. Changing it replaces the rehearsal.",
		Attributes: analysisAttributes(analysisWords{who: "the staging engine", newKinds: "How many warning kinds the staging engine may log " +
			"that the source engine does not.",
			worseThan: "How much worse than the source engine the staging engine may " +
				"be", comparedTo: "the source engine's"}, map[string]schema.Attribute{
			"max_eval_regression": schema.Float64Attribute{MarkdownDescription: "Largest allowed drop of the eval score from the source engine's " +
				"(0–1). Defaults to `0.05`.",
				Optional: true, Computed: true, Default: float64default.StaticFloat64(defaultMaxEvalRegression),
				Validators: []validator.Float64{float64validator.Between(0, 1)}},
		})}
	attrs["keep_engine"] = schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
		PlanModifiers: []planmodifier.Bool{keepEngineReplace()},
		MarkdownDescription: "Leave a passing rehearsal's staging engine running, at `staging_url`, for spot-checks by hand until destroy. A " +
			"failed rehearsal never keeps it. " +
			"Defaults to `false`. Setting it to `false` tears the staging engine down in place; back to `true` replaces the rehearsal."}
	resp.Schema = schema.Schema{
		MarkdownDescription: "An upgrade rehearsed on a copy of production's brain, as the Engine's upgrade page asks for a major version: a " +
			"hidden staging engine " +
			"at `version` boots on a copy of a verified snapshot (the migrations run on the copy only, each timed), the brain's last user turns " +
			"are replayed to it, " +
			"its metrics and evals are compared with the source engine's, and a verdict is reached. The source engine keeps serving throughout " +
			"and " +
			"its brain is never written. " +
			"A failing verdict fails the apply, naming each failed check with its figures, and leaves nothing running. " +
			"`engine_release.rehearsal_id` and " +
			"`engine_canary.rehearsal_ids` check the rehearsal at plan.",
		Attributes: attrs,
		Blocks:     map[string]schema.Block{"timeouts": timeoutsBlock(ctx, timeouts.Opts{Create: true, Delete: true})},
	}
}

// keepEngineReplace replaces the rehearsal when keep_engine goes back to true: its staging
// engine is gone and only a new rehearsal brings one up.
func keepEngineReplace() planmodifier.Bool {
	return boolplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.BoolRequest,
		resp *boolplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !req.StateValue.IsNull() && !req.StateValue.ValueBool() && req.PlanValue.ValueBool()
	}, "Keeping the staging engine again needs a new rehearsal.", "Keeping the staging engine again needs a new rehearsal.")
}
