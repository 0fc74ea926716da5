package provider

import (
	"context"
	"maps"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Defaults of the canary's analysis when the block or a field is not set.
const (
	defaultAnalysisWindow    = "5m"
	defaultBaselineTolerance = 0.5
	defaultMaxEvalRegression = 0.05
)

var (
	figuresAttrTypes      = figuresTypes()
	figuresType           = types.ObjectType{AttrTypes: figuresAttrTypes}
	lastAnalysisAttrTypes = map[string]attr.Type{
		"step": types.Int64Type, "verdict": types.StringType, "failures": types.ListType{ElemType: types.StringType},
		"canary": figuresType, "baseline": figuresType, "at": types.StringType,
	}
	lastAbortAttrTypes = map[string]attr.Type{
		"step": types.Int64Type, "cause": types.StringType, "user_id": types.StringType, "error_code": types.StringType,
		"detail": types.StringType, "rolled_back": types.BoolType, "at": types.StringType,
	}
)

// Causes of an abort, as last_abort.cause records them.
const (
	abortEngineFailed        = "engine_failed"
	abortAnalysisFailed      = "analysis_failed"
	abortAnalysisUnavailable = "analysis_unavailable"
)

var abortCauses = []string{abortEngineFailed, abortAnalysisFailed, abortAnalysisUnavailable}

func (r *canaryResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	stable := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	defaultSteps := make([]attr.Value, len(upgrade.DefaultSteps))
	for i, s := range upgrade.DefaultSteps {
		defaultSteps[i] = types.Int64Value(s)
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A progressive rollout of `version` across per-user engines: sticky cohorts, percentage steps, bake time, " +
			"metric/eval analysis against thresholds **and** against the engines not moved, automatic abort with rollback. Every " +
			"engine is snapshotted before a migrating upgrade. `mode = \"stepwise\"` advances one step per apply, so no CI job waits " +
			"for hours; the plan stays non-empty until the rollout is promoted or holding at `hold_at`. Destroy rolls every moved " +
			"engine back (`on_destroy = \"keep\"` opts out).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The canary's id, derived at create from `version` and the initial `user_ids` and then kept: " +
					"it is the default `cohort_seed`.",
				Computed: true, PlanModifiers: stable,
			},
			"version": schema.StringAttribute{
				MarkdownDescription: "The version to roll out: a version of the release catalog (data `engine_versions`). " +
					"Changing it replaces the canary: " +
					"the old one's moved engines roll back (unless `on_destroy = \"keep\"`), then the new rollout starts from the first step.",
				Required: true, Validators: []validator.String{versionValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"user_ids": schema.ListAttribute{
				MarkdownDescription: "The users to roll `version` out to, typically `data.engine_instances.x.user_ids`. Order does not matter. " +
					"The canary's **scope** is `user_ids` plus every user this canary moved that still runs `version`: a user the canary moved stays in " +
					"scope (and in `moved_user_ids`) " +
					"whether or not it is still listed, so a data source filtering on the old version (`version = \"2.3.1\"`), which drops each engine " +
					"as soon as it moves, never shrinks the rollout. " +
					"A step's percentage is of the scope. Adding users never reshuffles the ones already moved; the next step may move " +
					"a few more to keep the share. " +
					"A moved user that leaves `user_ids` *and* `version` (upgraded, restored or deleted outside the canary) leaves the scope, and the " +
					"plan warns, naming it; abort and destroy still roll it back. " +
					"A listed user whose engine someone moved *above* `version` outside the canary is **held**: out of the scope, never moved, judged " +
					"or counted, and every plan warns (\"Engine Moved Above The Canary's Version\"), naming it, the version it runs and the ways out; " +
					"only an apply that would move it (it moved after the refresh its plan used) is refused (\"Canary Would Downgrade\"), as is " +
					"creating a canary over engines already above `version`. " +
					"May be empty once every user in scope was moved (the filter above, after the last step); a plan whose scope is empty is an error. " +
					"Set `user_ids`, `selector` or both (the scope is then their union). Every listed user costs about 12 bytes of state, " +
					"and with `user_ids` alone `stable_versions`, `moved_user_ids` and `snapshots` add about 60 more per moved engine: " +
					"past a few thousand engines plans slow down by seconds and Terraform's memory grows by hundreds of MB " +
					"(10,000 engines: about 15 s and 1.7 GB per plan). Use `selector` there.",
				Optional: true, ElementType: types.StringType,
				Validators: []validator.List{listvalidator.UniqueValues(), listvalidator.ValueStringsAre(idValidator())},
			},
			"steps": schema.ListAttribute{
				MarkdownDescription: "Percentages of the scope (see `user_ids`) to reach, strictly increasing, each 1–100. Defaults to `[1, 5, 25, " +
					"50, 100]`. Step p covers the first ⌈p% × n⌉ users of the scope by rank.",
				Optional: true, Computed: true, ElementType: types.Int64Type,
				Default: listdefault.StaticValue(types.ListValueMust(types.Int64Type, defaultSteps)),
			},
			"bake_time": schema.StringAttribute{
				MarkdownDescription: "How long each step's cohort runs before analysis, as a Go duration (`0s`–`24h`). Defaults to `10m`.",
				Optional:            true, Computed: true, Default: stringdefault.StaticString("10m"),
				Validators: []validator.String{durationValidator{min: 0, max: 24 * time.Hour}},
			},
			"max_parallel": schema.Int64Attribute{
				MarkdownDescription: "How many engines are snapshotted and upgraded at once (1–500). `1` is the sequential rollout. Defaults to `10`.",
				Optional:            true, Computed: true, Default: int64default.StaticInt64(10),
				Validators: []validator.Int64{int64validator.Between(1, 500)},
			},
			"cohort_seed": schema.StringAttribute{
				MarkdownDescription: "Seeds the ranking of users (a hash of seed and user id). The same seed always picks the same users. Defaults " +
					"to the canary's `id`. Changing it replaces the canary.",
				Optional: true, Computed: true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplaceIf(seedChanged, "a "+
					"new seed reshuffles the cohorts", "a new seed reshuffles the cohorts")},
				Validators: []validator.String{stringvalidator.LengthBetween(1, 128)},
			},
			"mode": schema.StringAttribute{
				MarkdownDescription: "`stepwise` (default): each apply advances at most one step and the plan shows the next one. `auto`: one " +
					"apply walks every remaining step, " +
					"baking after each; a schedule whose bake time cannot fit the create/update timeout is a plan error. Allowed: " +
					backtickList(upgrade.CanaryModes) + ".",
				Optional: true, Computed: true, Default: stringdefault.StaticString(upgrade.ModeStepwise),
				Validators: []validator.String{stringvalidator.OneOf(upgrade.CanaryModes...)},
			},
			"hold_at": schema.Int64Attribute{
				MarkdownDescription: "Stop at this step (one of `steps`, not the last) until the configuration changes: the phase is `holding` and " +
					"the plan is empty. Remove it or raise it to continue.",
				Optional: true,
			},
			"analysis": schema.SingleNestedAttribute{
				MarkdownDescription: "What each step's analysis checks after the bake. The cohort (moved engines) is always compared with the " +
					"baseline (engines not moved, over the same window; " +
					"at 100% the cohort's own figures from before the step) using `baseline_tolerance` and `max_new_warning_kinds`, even " +
					"when this attribute is not set.",
				Optional: true,
				Attributes: analysisAttributes(analysisWords{who: "an engine of the cohort", newKinds: "How many warning kinds the cohort may " +
					"show that the baseline does not.",
					worseThan: "How much worse than the baseline the cohort may be", comparedTo: "the baseline's"}, map[string]schema.Attribute{
					"eval_suite": schema.StringAttribute{MarkdownDescription: "An eval suite to run on a sample of each step's " +
						"movers before and after their move.", Optional: true,
						Validators: []validator.String{stringvalidator.LengthBetween(1, 128)}},
					"max_eval_regression": schema.Float64Attribute{MarkdownDescription: "Largest allowed drop of the eval " +
						"score (0–1). Defaults to `0.05`.",
						Optional: true, Computed: true, Default: float64default.StaticFloat64(defaultMaxEvalRegression),
						Validators: []validator.Float64{float64validator.Between(0, 1)}},
					"failure_limit": schema.Int64Attribute{MarkdownDescription: "How many cohort engines may breach an absolute threshold before " +
						"the step fails. Defaults to `0`.",
						Optional: true, Computed: true, Default: int64default.StaticInt64(0), Validators: []validator.Int64{int64validator.Between(0,
							100000)}},
				}),
			},
			"allow_major_upgrade": schema.BoolAttribute{
				MarkdownDescription: "Allow rolling out a major version (breaking changes: read the migration guide first). Defaults to " +
					"`false`: a major is a plan error.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"rollout_window": rolloutWindowAttribute("When steps may start (UTC), as on `engine_release`. Outside it the plan warns and the apply " +
				"refuses to start a step, naming the next opening."),
			"on_destroy": schema.StringAttribute{
				MarkdownDescription: "What destroy does: " + backtickList(onDestroyValues) + ". `rollback` (default) returns every moved engine to " +
					"its `stable_versions` entry, restoring its " +
					"`snapshots` entry where the schema moved, and verifies it healthy before the canary leaves state; `keep` " +
					"leaves the engines as they are.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(onDestroyRollback),
				Validators: []validator.String{stringvalidator.OneOf(onDestroyValues...)},
			},
			"selector": selectorAttribute(),
			"moved_count": schema.Int64Attribute{
				MarkdownDescription: "How many engines of the scope run `version` (the length of `moved_user_ids` when that is kept).",
				Computed:            true,
			},
			"stable_versions": schema.MapAttribute{
				MarkdownDescription: "User → the version the engine ran before the canary moved it: the rollback target. Null with " +
					"`selector`: the control plane keeps it, in the canary's record.",
				Computed: true, ElementType: types.StringType,
			},
			"snapshots": schema.MapAttribute{
				MarkdownDescription: "User → the snapshot taken before its migrating upgrade: what an abort or destroy restores. Null " +
					"with `selector`: the control plane keeps it, in the canary's record.",
				Computed: true, ElementType: types.StringType,
			},
			"moved_user_ids": schema.ListAttribute{
				MarkdownDescription: "The users of the scope (see `user_ids`) whose engines run `version`, in cohort rank order (read " +
					"from the fleet on refresh). Null with `selector`: see `moved_count`, and `next_step` and `planned_step` for who moves next.",
				Computed: true, ElementType: types.StringType,
			},
			"current_percent": schema.Int64Attribute{MarkdownDescription: "The highest step whose cohort is fully on " +
				"`version` (0 before the first).", Computed: true},
			"phase": schema.StringAttribute{
				MarkdownDescription: "Where the rollout stands: " + backtickList(upgrade.CanaryPhases) + ". `aborted` means the last analysis failed " +
					"and every moved engine went back; `progressing` also covers a step whose engines moved but whose analysis has not passed yet (an " +
					"interrupted apply): the next apply judges it first.",
				Computed: true,
			},
			"next_step": schema.StringAttribute{
				MarkdownDescription: "What the next apply does with this configuration, e.g. `move 4 users to 25%: user-0003, …; snapshot first " +
					"for 4`; `none` when promoted; " +
					"`none: holding at 50%; without hold_at the next apply would move …` while holding; `none: the next plan fails with \"…\": …` while " +
					"the plan's fleet rules refuse the next step; with held engines (see `user_ids`) it ends `; leaves user-0003 (2.4.1) " +
					"where they run, above 2.4.0`. " +
					"In a plan, the old value is what this apply does when the plan leaves `user_ids`, `steps`, `mode` and `hold_at` as they were " +
					"(users the canary moved leaving a filtered `user_ids` do not count: they stay in scope); " +
					"lifting the hold, the old value's `without hold_at` part is what this apply does. The new value is what the apply after this one " +
					"will do. `planned_step` always says what this apply does.",
				Computed: true,
			},
			"planned_step": schema.StringAttribute{
				MarkdownDescription: "What the apply of this plan does, known at plan (create included): each step it walks, in the words of " +
					"`next_step`, then the expected duration, " +
					"e.g. `move 5 users to 25%: user-0007, …; snapshot first for 5. Expected about 15m15s, at least 15m0s of it baking`; it starts with " +
					"`retry the aborted rollout from the first step:` after an abort. " +
					"Null in a plan that moves no engine; the first refresh after an apply sets it back to null. Review it (or have a policy read it " +
					"from `terraform show -json`) before applying.",
				Computed: true,
			},
			"last_analysis": schema.SingleNestedAttribute{
				MarkdownDescription: "The last step's analysis: the step, `pass` or `fail`, the failed checks, and the " +
					"cohort's and baseline's figures.",
				Computed: true,
				Attributes: map[string]schema.Attribute{
					"step":    schema.Int64Attribute{Computed: true, MarkdownDescription: "The step (percentage) analysed."},
					"verdict": schema.StringAttribute{Computed: true, MarkdownDescription: "`pass` or `fail`."},
					"failures": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "One line per failed " +
						"check: metric, values, threshold."},
					"canary": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The cohort's figures.", Attributes: figuresAttributes()},
					"baseline": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The baseline's figures.",
						Attributes: figuresAttributes()},
					"at": schema.StringAttribute{Computed: true, MarkdownDescription: "When the analysis ran (RFC 3339)."},
				},
			},
			"last_abort": schema.SingleNestedAttribute{
				MarkdownDescription: "Why the rollout last aborted, null until one does; kept (as `last_attempt` is on " +
					"`engine_release`) after a retry moves on. " +
					"While `phase = \"aborted\"`, every plan shows it in a warning. An abort in the apply that creates the canary fails that apply, and " +
					"Terraform then marks the canary tainted: " +
					"the next plan replaces it, which rolls back nothing (the abort did) and retries the rollout from the first step.",
				Computed: true,
				Attributes: map[string]schema.Attribute{
					"step":  schema.Int64Attribute{Computed: true, MarkdownDescription: "The step (percentage) being walked."},
					"cause": schema.StringAttribute{Computed: true, MarkdownDescription: "What failed: " + backtickList(abortCauses) + "."},
					"user_id": schema.StringAttribute{Computed: true,
						MarkdownDescription: "The user whose engine failed to move (`engine_failed`); null when the analysis failed."},
					"error_code": schema.StringAttribute{Computed: true,
						MarkdownDescription: "The control plane's error code of that failure, e.g. `HEALTH_CHECK_FAILED`; null when it " +
							"gave none (a failed analysis)."},
					"detail": schema.StringAttribute{Computed: true, MarkdownDescription: "The failure in words: the engine's error, or " +
						"each failed check of the analysis."},
					"rolled_back": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether every moved engine " +
						"went back to its stable version."},
					"at": schema.StringAttribute{Computed: true, MarkdownDescription: "When the canary aborted (RFC 3339)."},
				},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeoutsBlock(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
	maps.Copy(resp.Schema.Attributes, canaryRehearsalAttributes())
}

// figuresAttributes is last_analysis's figures of a group: one attribute per row of the analysis
// table (upgrade.Metrics), plus the engine count, warning kinds and eval score.
func figuresAttributes() map[string]schema.Attribute {
	out := map[string]schema.Attribute{
		"engines":       schema.Int64Attribute{Computed: true, MarkdownDescription: "How many engines were measured."},
		"warning_kinds": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Warning kinds seen."},
		"eval_score":    schema.Float64Attribute{Computed: true, MarkdownDescription: "Mean eval score (null without `eval_suite`)."},
	}
	for _, m := range upgrade.Metrics {
		out[m.Name] = schema.Float64Attribute{Computed: true, MarkdownDescription: m.DescribeMean}
	}
	return out
}

// figuresTypes is the object type of figuresAttributes.
func figuresTypes() map[string]attr.Type {
	out := map[string]attr.Type{
		"engines": types.Int64Type, "warning_kinds": types.ListType{ElemType: types.StringType}, "eval_score": types.Float64Type,
	}
	for _, m := range upgrade.Metrics {
		out[m.Name] = types.Float64Type
	}
	return out
}

// seedChanged replaces the canary only when a configured seed differs from the one in state: an
// unset seed keeps the generated one.
func seedChanged(_ context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
	resp.RequiresReplace = !req.ConfigValue.IsNull() && !req.StateValue.IsNull() && !req.ConfigValue.Equal(req.StateValue)
}

// canaryModel is engine_canary's state.
type canaryModel struct {
	ID                types.String   `tfsdk:"id"`
	Version           types.String   `tfsdk:"version"`
	UserIDs           types.List     `tfsdk:"user_ids"`
	Selector          types.Object   `tfsdk:"selector"`
	MovedCount        types.Int64    `tfsdk:"moved_count"`
	Steps             types.List     `tfsdk:"steps"`
	BakeTime          types.String   `tfsdk:"bake_time"`
	MaxParallel       types.Int64    `tfsdk:"max_parallel"`
	CohortSeed        types.String   `tfsdk:"cohort_seed"`
	Mode              types.String   `tfsdk:"mode"`
	HoldAt            types.Int64    `tfsdk:"hold_at"`
	Analysis          types.Object   `tfsdk:"analysis"`
	AllowMajorUpgrade types.Bool     `tfsdk:"allow_major_upgrade"`
	RolloutWindow     types.Object   `tfsdk:"rollout_window"`
	OnDestroy         types.String   `tfsdk:"on_destroy"`
	StableVersions    types.Map      `tfsdk:"stable_versions"`
	Snapshots         types.Map      `tfsdk:"snapshots"`
	MovedUserIDs      types.List     `tfsdk:"moved_user_ids"`
	CurrentPercent    types.Int64    `tfsdk:"current_percent"`
	Phase             types.String   `tfsdk:"phase"`
	NextStep          types.String   `tfsdk:"next_step"`
	PlannedStep       types.String   `tfsdk:"planned_step"`
	LastAnalysis      types.Object   `tfsdk:"last_analysis"`
	LastAbort         types.Object   `tfsdk:"last_abort"`
	RehearsalIDs      types.List     `tfsdk:"rehearsal_ids"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
}

type analysisModel struct {
	MaxErrorRate       types.Float64 `tfsdk:"max_error_rate"`
	MaxP99LatencyMS    types.Float64 `tfsdk:"max_p99_latency_ms"`
	MinCacheHitRatio   types.Float64 `tfsdk:"min_cache_hit_ratio"`
	MaxNewWarningKinds types.Int64   `tfsdk:"max_new_warning_kinds"`
	BaselineTolerance  types.Float64 `tfsdk:"baseline_tolerance"`
	EvalSuite          types.String  `tfsdk:"eval_suite"`
	MaxEvalRegression  types.Float64 `tfsdk:"max_eval_regression"`
	Window             types.String  `tfsdk:"window"`
	FailureLimit       types.Int64   `tfsdk:"failure_limit"`
}

// analysis returns the analysis settings with defaults filled in, the eval suite ("" for none)
// and the metrics window.
func (m canaryModel) analysis() (upgrade.AnalysisConfig, string, time.Duration) {
	cfg := upgrade.AnalysisConfig{BaselineTolerance: defaultBaselineTolerance, MaxEvalRegression: defaultMaxEvalRegression}
	window, _ := time.ParseDuration(defaultAnalysisWindow)
	if m.Analysis.IsNull() || m.Analysis.IsUnknown() {
		return cfg, "", window
	}
	var a analysisModel
	if diags := m.Analysis.As(context.Background(), &a, basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true,
		UnhandledUnknownAsEmpty: true}); diags.HasError() {
		return cfg, "", window
	}
	window = readAnalysis(m.Analysis, &cfg, window)
	if !a.MaxEvalRegression.IsNull() && !a.MaxEvalRegression.IsUnknown() {
		cfg.MaxEvalRegression = a.MaxEvalRegression.ValueFloat64()
	}
	if !a.FailureLimit.IsNull() && !a.FailureLimit.IsUnknown() {
		cfg.FailureLimit = int(a.FailureLimit.ValueInt64())
	}
	return cfg, a.EvalSuite.ValueString(), window
}

// window returns the rollout window, nil when none is set (or it is not known yet).
func (m canaryModel) window() (*upgrade.Window, error) {
	return rolloutWindow(m.RolloutWindow)
}
