package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

var _ datasource.DataSourceWithConfigure = (*brainSnapshotsDataSource)(nil)

// NewBrainSnapshotsDataSource is the engine_brain_snapshots data source.
func NewBrainSnapshotsDataSource() datasource.DataSource { return &brainSnapshotsDataSource{} }

// brainSnapshotsDataSource lists one engine's snapshots, newest first.
type brainSnapshotsDataSource struct {
	data *providerData
}

func (d *brainSnapshotsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_brain_snapshots"
}

func (d *brainSnapshotsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	computedInt := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the brain snapshots of one engine, newest first, with optional filters. Use it to find the " +
			"latest verified snapshot at a version, or to audit what a rollback could restore.",
		Attributes: map[string]schema.Attribute{
			"user_id": schema.StringAttribute{
				Required: true, MarkdownDescription: "The user whose engine's snapshots are listed.",
				Validators: []validator.String{idValidator()},
			},
			"engine_version": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Only snapshots taken while the engine ran this version.",
				Validators: []validator.String{versionValidator{}},
			},
			"status": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Only snapshots in this status: " + backtickList(api.SnapshotStatuses) + ".",
				Validators: []validator.String{stringvalidator.OneOf(api.SnapshotStatuses...)},
			},
			"snapshots": schema.ListNestedAttribute{
				Computed: true, MarkdownDescription: "The snapshots, newest first.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"id":             computed("The snapshot id."),
					"user_id":        computed("The user whose engine's brain it holds."),
					"description":    computed("Free text kept with the snapshot."),
					"retention_days": computedInt("Days it is protected from deletion."),
					"engine_id":      computed("The engine the brain belongs to."),
					"engine_version": computed("The version the engine ran when it was taken."),
					"schema_version": computedInt("The brain schema version captured."),
					"size_bytes":     computedInt("Size of the snapshot file."),
					"sha256":         computed("sha256 of the snapshot file."),
					"brain_writes":   computedInt("The engine's brain write counter when it was taken."),
					"created_at":     computed("When it was taken (RFC 3339)."),
					"retain_until":   computed("When its retention ends (RFC 3339)."),
					"status":         computed("`verified`, `corrupt` or `missing`."),
				}},
			},
		},
	}
}

func (d *brainSnapshotsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *brainSnapshotsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m brainSnapshotsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	user := m.UserID.ValueString()
	snaps, err := d.data.Client.ListSnapshots(ctx, user, client.ListSnapshotsOptions{
		Version: m.EngineVersion.ValueString(), Status: m.Status.ValueString(),
	})
	if client.IsNotFound(err) {
		resp.Diagnostics.Append(engineNotFoundDiag(user))
		return
	}
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Brain Snapshots Read Failed", err))
		return
	}
	m.Snapshots = make([]snapshotValues, 0, len(snaps))
	for _, s := range snaps {
		m.Snapshots = append(m.Snapshots, snapshotFields(s))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

type brainSnapshotsModel struct {
	UserID        types.String     `tfsdk:"user_id"`
	EngineVersion types.String     `tfsdk:"engine_version"`
	Status        types.String     `tfsdk:"status"`
	Snapshots     []snapshotValues `tfsdk:"snapshots"`
}

// snapshotValues is one snapshot as Terraform values, shared by the resource and the data source.
type snapshotValues struct {
	ID            types.String `tfsdk:"id"`
	UserID        types.String `tfsdk:"user_id"`
	Description   types.String `tfsdk:"description"`
	RetentionDays types.Int64  `tfsdk:"retention_days"`
	EngineID      types.String `tfsdk:"engine_id"`
	EngineVersion types.String `tfsdk:"engine_version"`
	SchemaVersion types.Int64  `tfsdk:"schema_version"`
	SizeBytes     types.Int64  `tfsdk:"size_bytes"`
	SHA256        types.String `tfsdk:"sha256"`
	BrainWrites   types.Int64  `tfsdk:"brain_writes"`
	CreatedAt     types.String `tfsdk:"created_at"`
	RetainUntil   types.String `tfsdk:"retain_until"`
	Status        types.String `tfsdk:"status"`
}

func snapshotFields(s api.Snapshot) snapshotValues {
	return snapshotValues{
		ID: types.StringValue(s.ID), UserID: types.StringValue(s.UserID), Description: types.StringValue(s.Description),
		RetentionDays: types.Int64Value(int64(s.RetentionDays)), EngineID: types.StringValue(s.EngineID),
		EngineVersion: types.StringValue(s.EngineVersion), SchemaVersion: types.Int64Value(int64(s.SchemaVersion)),
		SizeBytes: types.Int64Value(s.SizeBytes), SHA256: types.StringValue(s.SHA256), BrainWrites: types.Int64Value(s.BrainWrites),
		CreatedAt: types.StringValue(rfc3339(s.CreatedAt)), RetainUntil: types.StringValue(rfc3339(s.RetainUntil)),
		Status: types.StringValue(s.Status),
	}
}
