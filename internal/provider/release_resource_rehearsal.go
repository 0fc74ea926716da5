package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// defaultRehearsalMaxAge is how old a rehearsal engine_release accepts by default: a week, as
// long as the Engine docs keep a pre-upgrade snapshot.
const defaultRehearsalMaxAge = "168h"

// rehearsalSummaryType is planned_upgrade.rehearsal: the rehearsal the plan relies on.
var rehearsalSummaryType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"id": types.StringType, "status": types.StringType, "from": types.StringType, "to": types.StringType,
	"snapshot_id": types.StringType, "finished_at": types.StringType, "migration_ms": types.Float64Type, "staging_url": types.StringType,
}}

// releaseRehearsalAttributes are engine_release's rehearsal settings.
func releaseRehearsalAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"rehearsal_id": schema.StringAttribute{Optional: true, Validators: []validator.String{idValidator()},
			MarkdownDescription: "An `engine_rehearsal` of this upgrade. When an upgrade is planned the plan checks that it passed, is of this " +
				"engine, " +
				"rehearsed this very from → to path, ran on a snapshot at the engine's current schema taken since its brain last changed schema, and " +
				"is " +
				"not older than `rehearsal_max_age`; otherwise the plan fails naming the reason. `planned_upgrade.rehearsal` summarises it."},
		"require_rehearsal": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			MarkdownDescription: "Make `rehearsal_id` mandatory for any planned upgrade. Defaults to `false`."},
		"rehearsal_max_age": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(defaultRehearsalMaxAge),
			Validators:          []validator.String{durationValidator{min: time.Second, max: 365 * 24 * time.Hour}},
			MarkdownDescription: "The oldest rehearsal (by when it finished) the plan accepts, a Go duration. Defaults to `168h` (7 days)."},
	}
}

// importRehearsalDefaults sets the rehearsal settings' defaults on an imported release.
func importRehearsalDefaults(set func(name string, v any)) {
	set("require_rehearsal", false)
	set("rehearsal_max_age", defaultRehearsalMaxAge)
}

// rehearsalSummaryAttribute is planned_upgrade.rehearsal's schema.
func rehearsalSummaryAttribute() schema.SingleNestedAttribute {
	s := func(d string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: d}
	}
	return schema.SingleNestedAttribute{Computed: true,
		MarkdownDescription: "The rehearsal (`rehearsal_id`) the plan checked, for reviewers and policies; null without one.",
		Attributes: map[string]schema.Attribute{
			"id": s("The rehearsal."), "status": s("`passed` (a plan with any other fails)."), "from": s("The version it upgraded from."),
			"to": s("The version it rehearsed."), "snapshot_id": s("The snapshot whose copy it ran on."), "finished_at": s("When its verdict was " +
				"reached (RFC 3339)."),
			"staging_url": s("Its staging engine's URL while it is kept for spot-checks; empty once torn down."),
			"migration_ms": schema.Float64Attribute{Computed: true, MarkdownDescription: "How long the migrations took on the copy (ms): a " +
				"forecast of this upgrade's migrate step."},
		}}
}

// planRehearsal checks the release's rehearsal against the upgrade dec plans for engine e and
// returns planned_upgrade with its summary. Errors name the reason and what to do.
func (m *releaseModel) planRehearsal(ctx context.Context, c *client.Client, e api.Engine, dec upgrade.ReleaseDecision,
	diags *diag.Diagnostics) types.Object {
	planned := m.PlannedUpgrade
	if dec.Action != upgrade.ActionUpgrade || planned.IsNull() || planned.IsUnknown() {
		return planned
	}
	summary := types.ObjectNull(rehearsalSummaryType.AttrTypes)
	id := m.RehearsalID.ValueString()
	switch {
	case m.RehearsalID.IsUnknown():
		summary = types.ObjectUnknown(rehearsalSummaryType.AttrTypes)
	case id == "" && m.RequireRehearsal.ValueBool():
		diags.AddAttributeError(path.Root("rehearsal_id"), "Rehearsal Required",
			fmt.Sprintf("require_rehearsal is set and the plan upgrades user %s's engine %s -> %s without a rehearsal. Rehearse it first (resource "+
				"engine_rehearsal with "+
				"user_id = %q and version = %q) and set rehearsal_id to its id.", e.UserID, dec.Path.From, dec.Path.To, e.UserID, dec.Path.To))
	case id != "":
		reh, err := c.GetRehearsal(ctx, id)
		if err != nil {
			diags.Append(clientErrorDiag("Rehearsal Read Failed", err))
			break
		}
		maxAge, _ := time.ParseDuration(m.RehearsalMaxAge.ValueString())
		if reasons := rehearsalProblems(reh, e, dec.Path, maxAge, time.Now()); len(reasons) > 0 {
			diags.AddAttributeError(path.Root("rehearsal_id"), "Rehearsal Does Not Cover This Upgrade",
				fmt.Sprintf("Rehearsal %s cannot vouch for upgrading user %s's engine %s -> %s:\n- %s\nRehearse this upgrade again (a new "+
					"engine_rehearsal, "+
					"or terraform apply -replace on the existing one) and name the new rehearsal in "+
					"rehearsal_id.", id, e.UserID, dec.Path.From, dec.Path.To, strings.Join(reasons, "\n- ")))
			break
		}
		summary = rehearsalSummary(reh)
	}
	vals := planned.Attributes()
	out := make(map[string]attr.Value, len(vals))
	for k, v := range vals {
		out[k] = v
	}
	out["rehearsal"] = summary
	return types.ObjectValueMust(plannedUpgradeAttrTypes, out)
}

// rehearsalProblems are the reasons reh does not vouch for upgrading e along p.
func rehearsalProblems(reh api.Rehearsal, e api.Engine, p api.UpgradePath, maxAge time.Duration, now time.Time) []string {
	var out []string
	if reh.Status != api.RehearsalPassed {
		why := reh.Status
		for _, c := range reh.FailedChecks {
			why += "; " + c.Detail
		}
		if reh.Error != nil {
			why += "; " + reh.Error.Code + ": " + reh.Error.Message
		}
		out = append(out, "it did not pass: "+why)
	}
	if reh.UserID != e.UserID {
		out = append(out, fmt.Sprintf("it rehearsed user %s's engine, not %s's", reh.UserID, e.UserID))
	}
	if reh.FromVersion != p.From || reh.ToVersion != p.To {
		out = append(out, fmt.Sprintf("it rehearsed %s -> %s, and this plan upgrades %s -> %s", reh.FromVersion, reh.ToVersion, p.From, p.To))
	}
	snapTaken := time.Time{}
	if reh.SnapshotCreatedAt != nil {
		snapTaken = *reh.SnapshotCreatedAt
	}
	switch {
	case reh.SnapshotSchema != e.SchemaVersion:
		out = append(out, fmt.Sprintf("it ran on snapshot %s at brain schema %d, and the engine's brain is at schema %d now: an older snapshot "+
			"does not rehearse today's brain",
			reh.SnapshotID, reh.SnapshotSchema, e.SchemaVersion))
	case e.LastMigrationAt != nil && snapTaken.Before(*e.LastMigrationAt):
		out = append(out, fmt.Sprintf("it ran on snapshot %s taken %s, before the engine's brain last changed (%s): an older snapshot does not "+
			"rehearse today's brain",
			reh.SnapshotID, rfc3339(snapTaken), rfc3339(*e.LastMigrationAt)))
	}
	if reh.FinishedAt != nil && now.Sub(*reh.FinishedAt) > maxAge {
		out = append(out, fmt.Sprintf("it finished %s ago (%s), older than rehearsal_max_age "+
			"%s", now.Sub(*reh.FinishedAt).Round(time.Second), rfc3339(*reh.FinishedAt), maxAge))
	}
	return out
}

func rehearsalSummary(reh api.Rehearsal) types.Object {
	var ms float64
	for _, m := range reh.Migrations {
		ms += m.DurationMS
	}
	finished := ""
	if reh.FinishedAt != nil {
		finished = rfc3339(*reh.FinishedAt)
	}
	return types.ObjectValueMust(rehearsalSummaryType.AttrTypes, map[string]attr.Value{
		"id": types.StringValue(reh.ID), "status": types.StringValue(reh.Status),
		"from": types.StringValue(reh.FromVersion), "to": types.StringValue(reh.ToVersion),
		"snapshot_id": types.StringValue(reh.SnapshotID), "finished_at": types.StringValue(finished), "migration_ms": types.Float64Value(ms),
		"staging_url": types.StringValue(reh.StagingURL),
	})
}
