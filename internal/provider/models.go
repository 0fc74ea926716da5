package provider

import (
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// engineModel is one engine as the engine_instance data source and each element of
// engine_instances expose it. One struct and one attribute map serve both, so they cannot drift.
type engineModel struct {
	UserID             types.String      `tfsdk:"user_id"`
	EngineID           types.String      `tfsdk:"engine_id"`
	Version            types.String      `tfsdk:"version"`
	SchemaVersion      types.Int64       `tfsdk:"schema_version"`
	Status             types.String      `tfsdk:"status"`
	URL                types.String      `tfsdk:"url"`
	LastHealthAt       types.String      `tfsdk:"last_health_at"`
	HealthStatus       types.String      `tfsdk:"health_status"`
	HealthSubsystems   map[string]string `tfsdk:"health_subsystems"`
	BrainWrites        types.Int64       `tfsdk:"brain_writes"`
	Generation         types.Int64       `tfsdk:"generation"`
	CurrentOperationID types.String      `tfsdk:"current_operation_id"`
	Owner              types.String      `tfsdk:"owner"`
	OwnerResourceType  types.String      `tfsdk:"owner_resource_type"`
}

// newEngineModel maps the wire engine into the model. Optional values become null, never "".
func newEngineModel(e api.Engine) engineModel {
	m := engineModel{
		UserID:             types.StringValue(e.UserID),
		EngineID:           types.StringValue(e.EngineID),
		Version:            types.StringValue(e.EngineVersion),
		SchemaVersion:      types.Int64Value(int64(e.SchemaVersion)),
		Status:             types.StringValue(e.Status),
		URL:                optionalString(e.URL),
		LastHealthAt:       types.StringNull(),
		HealthStatus:       optionalString(e.Health.Status),
		HealthSubsystems:   map[string]string{},
		BrainWrites:        types.Int64Value(e.BrainWrites),
		Generation:         types.Int64Value(e.Generation),
		CurrentOperationID: optionalString(e.CurrentOperationID),
		Owner:              ownerLabel(e),
		OwnerResourceType:  types.StringNull(),
	}
	if e.Owner != nil {
		m.OwnerResourceType = types.StringValue(e.Owner.ResourceType)
	}
	if e.LastHealthAt != nil {
		m.LastHealthAt = types.StringValue(e.LastHealthAt.UTC().Format(time.RFC3339))
	}
	for k, v := range e.Health.Subsystems {
		m.HealthSubsystems[k] = v
	}
	return m
}

// engineAttributes are the computed attributes of an engine; userID is the user_id attribute,
// Required in engine_instance and Computed in each engine_instances element.
func engineAttributes(userID schema.StringAttribute) map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"user_id":   userID,
		"engine_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The engine's id, assigned by the fleet orchestrator."},
		"version":   schema.StringAttribute{Computed: true, MarkdownDescription: "The Engine version the engine runs now, for example `2.3.1`."},
		"schema_version": schema.Int64Attribute{Computed: true, MarkdownDescription: "The schema version of the " +
			"engine's brain (its SQLite database)."},
		"status": schema.StringAttribute{Computed: true, MarkdownDescription: "The engine's lifecycle status, one of " +
			backtickList(api.EngineStatuses) + "."},
		"url": schema.StringAttribute{Computed: true, MarkdownDescription: "Where the engine serves its own API, " +
			"when the control plane reports it."},
		"last_health_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When the engine last answered `/health` " +
			"(RFC 3339, UTC); null if never."},
		"health_status": schema.StringAttribute{Computed: true, MarkdownDescription: "The overall status of the engine's last " +
			"`/health` answer, for example `ok`."},
		"health_subsystems": schema.MapAttribute{Computed: true, ElementType: types.StringType,
			MarkdownDescription: "Status of each subsystem in the last `/health` answer, by subsystem name."},
		"brain_writes": schema.Int64Attribute{Computed: true, MarkdownDescription: "Count of the writes the brain holds: it grows with " +
			"every write and a restore sets it " +
			"back to the restored snapshot's. The difference to a snapshot's `brain_writes` is the data a restore of that snapshot would lose."},
		"generation": schema.Int64Attribute{Computed: true, MarkdownDescription: "Increases on every change to the engine; " +
			"used for optimistic concurrency."},
		"current_operation_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The operation running on the engine now, if any " +
			"(the control plane allows one at a time)."},
		"owner": schema.StringAttribute{Computed: true, MarkdownDescription: "The manager (a workspace's provider " +
			"`manager`) whose `engine_release` " +
			"or `engine_canary` owns the engine; null when none. Another manager's plan to move the engine fails and names it."},
		"owner_resource_type": schema.StringAttribute{Computed: true, MarkdownDescription: "The type of the resource that owns the engine " +
			"(`engine_release` or `engine_canary`); null when none."},
	}
}

// migrationModel is one brain migration in engine_versions and engine_upgrade_path.
type migrationModel struct {
	ID          types.String `tfsdk:"id"`
	Description types.String `tfsdk:"description"`
	FromSchema  types.Int64  `tfsdk:"from_schema"`
	ToSchema    types.Int64  `tfsdk:"to_schema"`
	ForwardOnly types.Bool   `tfsdk:"forward_only"`
	Destructive types.Bool   `tfsdk:"destructive"`
}

func newMigrationModels(ms []api.Migration) []migrationModel {
	out := make([]migrationModel, 0, len(ms))
	for _, m := range ms {
		out = append(out, migrationModel{
			ID:          types.StringValue(m.ID),
			Description: types.StringValue(m.Description),
			FromSchema:  types.Int64Value(int64(m.FromSchema)),
			ToSchema:    types.Int64Value(int64(m.ToSchema)),
			ForwardOnly: types.BoolValue(m.ForwardOnly),
			Destructive: types.BoolValue(m.Destructive),
		})
	}
	return out
}

// migrationsAttribute is the computed list of migrations.
func migrationsAttribute(description string) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Computed:            true,
		MarkdownDescription: description,
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"id":          schema.StringAttribute{Computed: true, MarkdownDescription: "The migration's id."},
			"description": schema.StringAttribute{Computed: true, MarkdownDescription: "What the migration changes."},
			"from_schema": schema.Int64Attribute{Computed: true, MarkdownDescription: "Brain schema version before the migration."},
			"to_schema":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Brain schema version after the migration."},
			"forward_only": schema.BoolAttribute{Computed: true, MarkdownDescription: "Once applied, older versions refuse the brain " +
				"(`MIGRATION_REQUIRED`): going back needs a snapshot taken before it."},
			"destructive": schema.BoolAttribute{Computed: true, MarkdownDescription: "The migration rewrites or drops existing data."},
		}},
	}
}
