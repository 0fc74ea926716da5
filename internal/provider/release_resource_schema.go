package provider

import (
	"context"
	"maps"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

const (
	onDestroyRollback = "rollback"
	onDestroyKeep     = "keep"

	attemptSucceeded  = "succeeded"
	attemptFailed     = "failed"
	attemptRolledBack = "rolled_back"
	attemptInProgress = "in_progress"
)

var (
	onDestroyValues = []string{onDestroyRollback, onDestroyKeep}
	attemptStatuses = []string{attemptSucceeded, attemptFailed, attemptRolledBack, attemptInProgress}
)

// Object types of the nested computed attributes, shared by the schema and the value builders.
var (
	hopType = types.ObjectType{AttrTypes: map[string]attr.Type{"from": types.StringType, "to": types.StringType,
		"kind": types.StringType}}
	migrationType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"id": types.StringType, "description": types.StringType, "forward_only": types.BoolType, "destructive": types.BoolType,
	}}
	plannedUpgradeAttrTypes = map[string]attr.Type{
		"action": types.StringType, "from": types.StringType, "to": types.StringType, "kind": types.StringType,
		"hops": types.ListType{ElemType: hopType}, "migrations": types.ListType{ElemType: migrationType},
		"forward_only": types.BoolType, "destructive": types.BoolType, "breaking_changes": types.ListType{ElemType: types.StringType},
		"migration_guide_url": types.StringType, "requires_snapshot": types.BoolType, "snapshot_id": types.StringType,
		"rehearsal": rehearsalSummaryType,
	}
	lastAttemptAttrTypes = map[string]attr.Type{
		"version": types.StringType, "status": types.StringType, "operation_id": types.StringType, "error": types.StringType,
		"started_at": types.StringType, "finished_at": types.StringType, "snapshot_id": types.StringType,
		"baseline_eval_score": types.Float64Type, "eval_score": types.Float64Type,
	}
)

func (r *releaseResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	stable := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The version one engine runs. Create adopts the engine (recording `previous_version`) and brings it to " +
			"`version`; changing `version` upgrades it, snapshot-before-migrate enforced, gated on health and optionally evals, " +
			"rolled back automatically when a gate fails. Destroy **rolls back** to `previous_version`, restoring the pre-upgrade " +
			"snapshot where the brain schema moved (`on_destroy = \"keep\"` opts out). Every risk is a plan warning and, for " +
			"policy tools, the `planned_upgrade` attribute.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{MarkdownDescription: "The user id (one release per engine).", Computed: true, PlanModifiers: stable},
			"user_id": schema.StringAttribute{
				MarkdownDescription: "The user whose engine this release manages. Changing it replaces the resource (destroying the " +
					"old one rolls that engine back).",
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{idValidator()},
			},
			"version": schema.StringAttribute{
				MarkdownDescription: "The version the engine must run: a version of the control plane's release catalog (data `engine_versions`). " +
					"Changing it upgrades in place; a lower version needs `allow_downgrade`. Refresh reads the running version back, so an " +
					"out-of-band change shows as drift; except a move above `version` while `allow_downgrade` is off: then `version` stays, " +
					"`running_version` shows the move, and plans leave the engine alone with a warning (set `version` to the running one to " +
					"accept it, or `allow_downgrade = true` to go back).",
				Required:   true,
				Validators: []validator.String{versionValidator{}},
			},
			"snapshot_id": schema.StringAttribute{
				MarkdownDescription: "An `engine_brain_snapshot` of this engine taken at its current version and schema. Required (or " +
					"`auto_snapshot`) when the upgrade path migrates the brain; for a downgrade below the brain's schema, the snapshot to restore.",
				Optional: true, Validators: []validator.String{idValidator()},
			},
			"auto_snapshot": schema.BoolAttribute{
				MarkdownDescription: "When the path migrates the brain and no `snapshot_id` is set, take and verify a snapshot first and record it " +
					"in `pre_upgrade_snapshot_id`. Defaults to `false`.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"allow_major_upgrade": schema.BoolAttribute{
				MarkdownDescription: "Allow a major upgrade (breaking changes: read the migration guide first). Defaults to " +
					"`false`: a major is a plan error.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"allow_downgrade": schema.BoolAttribute{
				MarkdownDescription: "Allow `version` lower than the running one. Below the brain's schema this restores a snapshot and loses " +
					"later writes. Defaults to `false`.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"drain_timeout": schema.StringAttribute{
				MarkdownDescription: "How long in-flight turns may take to finish before the engine stops, as a Go duration. Defaults to `30s`.",
				Optional:            true, Computed: true, Default: stringdefault.StaticString("30s"),
				Validators: []validator.String{durationValidator{min: time.Second, max: time.Hour}},
			},
			"health_timeout": schema.StringAttribute{
				MarkdownDescription: "How long the new version has to report `/health` ok before the upgrade counts as failed. Defaults to `2m`.",
				Optional:            true, Computed: true, Default: stringdefault.StaticString("2m"),
				Validators: []validator.String{durationValidator{min: time.Second, max: time.Hour}},
			},
			"eval_gate": schema.SingleNestedAttribute{
				MarkdownDescription: "Regression evals as an upgrade gate: `suite` runs on the current version first (the baseline), then on the new " +
					"one; a drop of more than `max_regression` fails the upgrade.",
				Optional: true,
				Attributes: map[string]schema.Attribute{
					"suite": schema.StringAttribute{MarkdownDescription: "The eval suite to run.",
						Required: true, Validators: []validator.String{stringvalidator.LengthBetween(1, 128)}},
					"max_regression": schema.Float64Attribute{
						MarkdownDescription: "Largest allowed drop of the score (0–1), e.g. `0.05`.",
						Required:            true, Validators: []validator.Float64{float64validator.Between(0, 1)},
					},
				},
			},
			"analysis": releaseAnalysisAttribute(),
			"auto_rollback": schema.BoolAttribute{
				MarkdownDescription: "When a gate fails, return the engine to the version it ran (restoring the snapshot where the schema moved) " +
					"before failing the apply. Defaults to `true`.",
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
			},
			"on_destroy": schema.StringAttribute{
				MarkdownDescription: "What destroy does: " + backtickList(onDestroyValues) + ". `rollback` (default) returns the engine to " +
					"`previous_version`, restoring `pre_upgrade_snapshot_id` where the schema moved; `keep` leaves the engine as it is.",
				Optional: true, Computed: true, Default: stringdefault.StaticString(onDestroyRollback),
				Validators: []validator.String{stringvalidator.OneOf(onDestroyValues...)},
			},
			"take_ownership": schema.BoolAttribute{
				MarkdownDescription: "Take the engine over from another manager (another workspace's `engine_release` or " +
					"`engine_canary`) at the next apply. " +
					"Without it, a plan that would create this release over, or move, an engine another manager owns fails and names the owner. " +
					"After a take-over, that manager's plans refuse to move the engine and its destroy leaves it alone. While it is `true`, any later " +
					"apply that changes this release takes the engine back from whoever owns it then: set it back to `false` " +
					"once the take-over is applied. " +
					"Defaults to `false`. See the [Terraform Cloud and Atlantis guide](../guides/terraform-cloud-and-atlantis.md#one-owner-per-engine).",
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"owner": schema.StringAttribute{
				MarkdownDescription: "The manager that owns the engine on the control plane, as the last refresh or apply read it: this provider's " +
					"`manager` once this release has claimed the engine (at create, an upgrade, a take-over or the first apply after an import), " +
					"another manager's name after it took the engine over, null while nobody owns it.",
				Computed: true,
			},
			"rollout_window": rolloutWindowAttribute("When upgrades may start (UTC). Outside it the plan warns and the apply refuses to " +
				"start one, naming the next opening."),
			"engine_id": schema.StringAttribute{MarkdownDescription: "The engine's id.", Computed: true, PlanModifiers: stable},
			"previous_version": schema.StringAttribute{MarkdownDescription: "The version the engine ran when this resource adopted it: " +
				"the rollback target of destroy.", Computed: true, PlanModifiers: stable},
			"schema_version": schema.Int64Attribute{MarkdownDescription: "The brain schema version.", Computed: true},
			"running_version": schema.StringAttribute{
				MarkdownDescription: "The version the engine runs, as the last refresh or apply read it. It differs from " +
					"`version` only when someone moved " +
					"the engine above `version` outside this resource while `allow_downgrade` is off: plans then leave the engine on `running_version` " +
					"and warn, and an apply refuses only a change that would move it.",
				Computed: true,
			},
			"pre_upgrade_snapshot_id": schema.StringAttribute{
				MarkdownDescription: "The snapshot the last migrating upgrade relied on (also one someone else's upgrade to " +
					"`version` relied on, when that upgrade " +
					"got there before this resource's apply); destroy restores it when it rolls back across a schema change. Null when no snapshot is " +
					"recorded; unknown at plan when the apply decides it (`auto_snapshot`).",
				Computed: true,
			},
			"rollback_writes_lost": schema.Int64Attribute{
				MarkdownDescription: "How many brain writes destroying this release would lose now: the writes made since `pre_upgrade_snapshot_id` " +
					"was taken, when destroy must restore it (the brain schema moved); `0` when destroy restores nothing: `on_destroy = \"keep\"`, " +
					"no schema change, or no snapshot recorded (where the schema moved, the destroy plan then fails instead). Kept " +
					"current by every refresh from the " +
					"engine read refresh makes anyway, so a policy reads it in a destroy plan's `terraform show -json` (`change.before`); " +
					"a plan never changes it. Null when the snapshot could not be read.",
				Computed: true,
			},
			"planned_upgrade": schema.SingleNestedAttribute{
				MarkdownDescription: "The upgrade the plan will carry out, known at plan time for reviewers and policy " +
					"tools (`terraform show -json`); " +
					"null when the plan changes no version. After apply it describes the change just made until the next refresh sets it back to null " +
					"(`last_attempt` keeps how that change ended): a fleet's no-change plans then carry no upgrade description per engine.",
				Computed: true,
				Attributes: map[string]schema.Attribute{
					"action": schema.StringAttribute{Computed: true, MarkdownDescription: "`upgrade`, `downgrade` (same schema) or " +
						"`restore` (downgrade by snapshot restore)."},
					"from": schema.StringAttribute{Computed: true, MarkdownDescription: "The version running at plan time."},
					"to":   schema.StringAttribute{Computed: true, MarkdownDescription: "The target version."},
					"kind": schema.StringAttribute{Computed: true, MarkdownDescription: "`none`, `patch`, `minor`, `major` or `downgrade`."},
					"hops": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "The steps of the path.",
						NestedObject: schema.NestedAttributeObject{Attributes: hopAttributes()}},
					"migrations": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Brain migrations applied, in order.",
						NestedObject: schema.NestedAttributeObject{Attributes: migrationAttributes()}},
					"forward_only": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether a migration is forward-only (going " +
						"back needs a snapshot restore)."},
					"destructive": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether a migration rewrites or drops data."},
					"breaking_changes": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Breaking changes " +
						"of the versions crossed."},
					"migration_guide_url": schema.StringAttribute{Computed: true, MarkdownDescription: "The migration guide to read " +
						"(the last one crossed), or empty."},
					"requires_snapshot": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the path migrates the brain, " +
						"so a snapshot must protect it."},
					"snapshot_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The snapshot protecting the upgrade (unknown at " +
						"plan with `auto_snapshot`), or the one a downgrade restores."},
					"rehearsal": rehearsalSummaryAttribute(),
				},
			},
			"last_attempt": schema.SingleNestedAttribute{
				MarkdownDescription: "The last upgrade attempted by this resource and how it ended: " + backtickList(attemptStatuses) + ".",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"version": schema.StringAttribute{Computed: true, MarkdownDescription: "The version attempted."},
					"status":  schema.StringAttribute{Computed: true, MarkdownDescription: "`succeeded`, `failed`, `rolled_back` or `in_progress`."},
					"operation_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The control plane operation that ran it " +
						"(someone else's, when another run or tool got the engine to `version` first)."},
					"error": schema.StringAttribute{Computed: true, MarkdownDescription: "Why it failed; for an upgrade someone else made " +
						"to `version` before this resource's apply, `no rollback exists: …` when no snapshot can undo it; otherwise empty."},
					"started_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "RFC 3339."},
					"finished_at": schema.StringAttribute{Computed: true, MarkdownDescription: "RFC 3339, empty while in progress."},
					"snapshot_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The snapshot that protected it, or empty."},
					"baseline_eval_score": schema.Float64Attribute{Computed: true, MarkdownDescription: "The eval score before " +
						"the upgrade (with `eval_gate`)."},
					"eval_score": schema.Float64Attribute{Computed: true, MarkdownDescription: "The eval score after it (with `eval_gate`)."},
				},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeoutsBlock(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
	maps.Copy(resp.Schema.Attributes, releaseRehearsalAttributes())
}

// rolloutWindowAttribute is the rollout_window schema engine_release and engine_canary share.
func rolloutWindowAttribute(description string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		MarkdownDescription: description,
		Optional:            true,
		Attributes: map[string]schema.Attribute{
			"days": schema.ListAttribute{
				MarkdownDescription: "Weekdays: " + backtickList(upgrade.Weekdays) + ".", Required: true, ElementType: types.StringType,
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(stringvalidator.OneOf(upgrade.Weekdays...))},
			},
			"start": schema.StringAttribute{MarkdownDescription: "Opening time, `HH:MM` UTC.",
				Required: true, Validators: []validator.String{clockValidator()}},
			"end": schema.StringAttribute{MarkdownDescription: "Closing time, `HH:MM` UTC (before `start` wraps past midnight).",
				Required: true, Validators: []validator.String{clockValidator()}},
		},
	}
}

func hopAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"from": schema.StringAttribute{Computed: true, MarkdownDescription: "Hop start version."},
		"to":   schema.StringAttribute{Computed: true, MarkdownDescription: "Hop end version."},
		"kind": schema.StringAttribute{Computed: true, MarkdownDescription: "Upgrade kind of the hop."},
	}
}

func migrationAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"id":           schema.StringAttribute{Computed: true, MarkdownDescription: "Migration id."},
		"description":  schema.StringAttribute{Computed: true, MarkdownDescription: "What it changes."},
		"forward_only": schema.BoolAttribute{Computed: true, MarkdownDescription: "The old version cannot read the brain afterwards."},
		"destructive":  schema.BoolAttribute{Computed: true, MarkdownDescription: "It rewrites or drops data."},
	}
}

// releaseModel is engine_release's state.
type releaseModel struct {
	ID                   types.String   `tfsdk:"id"`
	UserID               types.String   `tfsdk:"user_id"`
	Version              types.String   `tfsdk:"version"`
	SnapshotID           types.String   `tfsdk:"snapshot_id"`
	AutoSnapshot         types.Bool     `tfsdk:"auto_snapshot"`
	AllowMajorUpgrade    types.Bool     `tfsdk:"allow_major_upgrade"`
	AllowDowngrade       types.Bool     `tfsdk:"allow_downgrade"`
	DrainTimeout         types.String   `tfsdk:"drain_timeout"`
	HealthTimeout        types.String   `tfsdk:"health_timeout"`
	EvalGate             types.Object   `tfsdk:"eval_gate"`
	Analysis             types.Object   `tfsdk:"analysis"`
	AutoRollback         types.Bool     `tfsdk:"auto_rollback"`
	OnDestroy            types.String   `tfsdk:"on_destroy"`
	RolloutWindow        types.Object   `tfsdk:"rollout_window"`
	TakeOwnership        types.Bool     `tfsdk:"take_ownership"`
	Owner                types.String   `tfsdk:"owner"`
	EngineID             types.String   `tfsdk:"engine_id"`
	PreviousVersion      types.String   `tfsdk:"previous_version"`
	SchemaVersion        types.Int64    `tfsdk:"schema_version"`
	RunningVersion       types.String   `tfsdk:"running_version"`
	PreUpgradeSnapshotID types.String   `tfsdk:"pre_upgrade_snapshot_id"`
	RollbackWritesLost   types.Int64    `tfsdk:"rollback_writes_lost"`
	PlannedUpgrade       types.Object   `tfsdk:"planned_upgrade"`
	RehearsalID          types.String   `tfsdk:"rehearsal_id"`
	RequireRehearsal     types.Bool     `tfsdk:"require_rehearsal"`
	RehearsalMaxAge      types.String   `tfsdk:"rehearsal_max_age"`
	LastAttempt          types.Object   `tfsdk:"last_attempt"`
	Timeouts             timeouts.Value `tfsdk:"timeouts"`
}

type evalGateModel struct {
	Suite         types.String  `tfsdk:"suite"`
	MaxRegression types.Float64 `tfsdk:"max_regression"`
}

type rolloutWindowModel struct {
	Days  []types.String `tfsdk:"days"`
	Start types.String   `tfsdk:"start"`
	End   types.String   `tfsdk:"end"`
}

// lastAttempt is last_attempt as Go values.
type lastAttempt struct {
	Version, Status, OperationID, Error, StartedAt, FinishedAt, SnapshotID string
	Baseline, Score                                                        *float64
}

func (a lastAttempt) object() types.Object {
	f := func(p *float64) types.Float64 {
		if p == nil {
			return types.Float64Null()
		}
		return types.Float64Value(*p)
	}
	return types.ObjectValueMust(lastAttemptAttrTypes, map[string]attr.Value{
		"version": types.StringValue(a.Version), "status": types.StringValue(a.Status),
		"operation_id": types.StringValue(a.OperationID), "error": types.StringValue(a.Error),
		"started_at": types.StringValue(a.StartedAt), "finished_at": types.StringValue(a.FinishedAt),
		"snapshot_id": types.StringValue(a.SnapshotID), "baseline_eval_score": f(a.Baseline), "eval_score": f(a.Score),
	})
}

func lastAttemptFrom(o types.Object) lastAttempt {
	var a lastAttempt
	if o.IsNull() || o.IsUnknown() {
		return a
	}
	attrs := o.Attributes()
	s := func(k string) string {
		if v, ok := attrs[k].(types.String); ok {
			return v.ValueString()
		}
		return ""
	}
	f := func(k string) *float64 {
		if v, ok := attrs[k].(types.Float64); ok && !v.IsNull() && !v.IsUnknown() {
			x := v.ValueFloat64()
			return &x
		}
		return nil
	}
	a.Version, a.Status, a.OperationID, a.Error = s("version"), s("status"), s("operation_id"), s("error")
	a.StartedAt, a.FinishedAt, a.SnapshotID = s("started_at"), s("finished_at"), s("snapshot_id")
	a.Baseline, a.Score = f("baseline_eval_score"), f("eval_score")
	return a
}

// plannedUpgradeObject renders an upgrade path (and the action and snapshot decided for it); null
// when the action is none: a plan that changes no version plans no upgrade.
func plannedUpgradeObject(action string, p api.UpgradePath, snapshotID types.String) types.Object {
	if action == upgrade.ActionNone {
		return types.ObjectNull(plannedUpgradeAttrTypes)
	}
	hops := make([]attr.Value, 0, len(p.Hops))
	for _, h := range p.Hops {
		hops = append(hops, types.ObjectValueMust(hopType.AttrTypes, map[string]attr.Value{
			"from": types.StringValue(h.From), "to": types.StringValue(h.To), "kind": types.StringValue(h.Kind)}))
	}
	migs := make([]attr.Value, 0, len(p.Migrations))
	for _, m := range p.Migrations {
		migs = append(migs, types.ObjectValueMust(migrationType.AttrTypes, map[string]attr.Value{
			"id": types.StringValue(m.ID), "description": types.StringValue(m.Description),
			"forward_only": types.BoolValue(m.ForwardOnly), "destructive": types.BoolValue(m.Destructive)}))
	}
	breaking := make([]attr.Value, 0, len(p.BreakingChanges))
	for _, b := range p.BreakingChanges {
		breaking = append(breaking, types.StringValue(b))
	}
	guide := ""
	if n := len(p.MigrationGuideURLs); n > 0 {
		guide = p.MigrationGuideURLs[n-1]
	}
	return types.ObjectValueMust(plannedUpgradeAttrTypes, map[string]attr.Value{
		"action": types.StringValue(action), "from": types.StringValue(p.From), "to": types.StringValue(p.To),
		"kind": types.StringValue(p.Kind), "hops": types.ListValueMust(hopType, hops),
		"migrations": types.ListValueMust(migrationType, migs), "forward_only": types.BoolValue(p.ForwardOnly),
		"destructive": types.BoolValue(p.Destructive), "breaking_changes": types.ListValueMust(types.StringType, breaking),
		"migration_guide_url": types.StringValue(guide), "requires_snapshot": types.BoolValue(p.RequiresSnapshot),
		"snapshot_id": snapshotID, "rehearsal": types.ObjectNull(rehearsalSummaryType.AttrTypes),
	})
}

func (m releaseModel) evalGate() *evalGateModel {
	if m.EvalGate.IsNull() || m.EvalGate.IsUnknown() {
		return nil
	}
	var g evalGateModel
	if diags := m.EvalGate.As(context.Background(), &g, basetypes.ObjectAsOptions{}); diags.HasError() {
		return nil
	}
	return &g
}

// window returns the rollout window, nil when none is set (or it is not known yet).
func (m releaseModel) window() (*upgrade.Window, error) { return rolloutWindow(m.RolloutWindow) }

// rolloutWindow reads a rollout_window object (engine_release's and engine_canary's), nil when
// none is set (or it is not known yet).
func rolloutWindow(o types.Object) (*upgrade.Window, error) {
	if o.IsNull() || o.IsUnknown() {
		return nil, nil
	}
	var w rolloutWindowModel
	if diags := o.As(context.Background(), &w, basetypes.ObjectAsOptions{}); diags.HasError() {
		return nil, nil
	}
	days := make([]string, 0, len(w.Days))
	for _, d := range w.Days {
		if d.IsUnknown() {
			return nil, nil
		}
		days = append(days, d.ValueString())
	}
	if w.Start.IsUnknown() || w.End.IsUnknown() {
		return nil, nil
	}
	win, err := upgrade.ParseWindow(days, w.Start.ValueString(), w.End.ValueString())
	if err != nil {
		return nil, err
	}
	return &win, nil
}

func (m releaseModel) durations() (drain, health time.Duration) {
	drain, _ = time.ParseDuration(m.DrainTimeout.ValueString())
	health, _ = time.ParseDuration(m.HealthTimeout.ValueString())
	return drain, health
}
