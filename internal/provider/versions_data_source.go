package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var _ datasource.DataSourceWithConfigure = (*versionsDataSource)(nil)

// NewVersionsDataSource is the engine_versions data source: the release catalog.
func NewVersionsDataSource() datasource.DataSource { return &versionsDataSource{} }

type versionsDataSource struct {
	data *providerData
}

type versionsDataSourceModel struct {
	From     types.String   `tfsdk:"from"`
	Latest   types.String   `tfsdk:"latest"`
	Versions []versionModel `tfsdk:"versions"`
	Targets  []targetModel  `tfsdk:"targets"`
}

type versionModel struct {
	Version           types.String     `tfsdk:"version"`
	SchemaVersion     types.Int64      `tfsdk:"schema_version"`
	Breaking          types.Bool       `tfsdk:"breaking"`
	BreakingChanges   []types.String   `tfsdk:"breaking_changes"`
	MigrationGuideURL types.String     `tfsdk:"migration_guide_url"`
	ReleaseNotes      types.String     `tfsdk:"release_notes"`
	HasMigrations     types.Bool       `tfsdk:"has_migrations"`
	Migrations        []migrationModel `tfsdk:"migrations"`
}

type targetModel struct {
	Version types.String `tfsdk:"version"`
	Kind    types.String `tfsdk:"kind"`
}

func (d *versionsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_versions"
}

func (d *versionsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads the release catalog of the control plane: every Engine version, its brain schema version, " +
			"breaking changes and migrations. With `from`, also the versions an engine on `from` can upgrade to, and the kind of each move.",
		Attributes: map[string]schema.Attribute{
			"from": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "A catalog version, for example `2.3.1`. When set, `targets` lists every newer version with its upgrade kind.",
				Validators:          []validator.String{versionValidator{}},
			},
			"latest": schema.StringAttribute{Computed: true, MarkdownDescription: "The newest version in the catalog."},
			"versions": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Every version in the catalog, oldest first.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"version": schema.StringAttribute{Computed: true, MarkdownDescription: "The version, for example `2.4.0`."},
					"schema_version": schema.Int64Attribute{Computed: true, MarkdownDescription: "The brain schema version " +
						"this version reads and writes."},
					"breaking": schema.BoolAttribute{Computed: true, MarkdownDescription: "The release has breaking changes (a major)."},
					"breaking_changes": schema.ListAttribute{Computed: true, ElementType: types.StringType,
						MarkdownDescription: "What the release breaks, one entry per change."},
					"migration_guide_url": schema.StringAttribute{Computed: true, MarkdownDescription: "The release's migration guide, if it has one."},
					"release_notes":       schema.StringAttribute{Computed: true, MarkdownDescription: "The release notes, if any."},
					"has_migrations":      schema.BoolAttribute{Computed: true, MarkdownDescription: "Upgrading to this version migrates the brain."},
					"migrations":          migrationsAttribute("The brain migrations this version ships, in order."),
				}},
			},
			"targets": schema.ListNestedAttribute{
				Computed: true,
				MarkdownDescription: "With `from`: every newer catalog version, oldest first, with the kind of the move (" +
					backtickList(upgrade.Kinds[1:4]) + "). Null without `from`.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"version": schema.StringAttribute{Computed: true, MarkdownDescription: "The target version."},
					"kind":    schema.StringAttribute{Computed: true, MarkdownDescription: "The kind of the move from `from` to this version."},
				}},
			},
		},
	}
}

func (d *versionsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *versionsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m versionsDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cat, err := d.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return
	}
	vs := cat.Versions()
	m.Versions = make([]versionModel, 0, len(vs))
	for _, v := range vs {
		m.Versions = append(m.Versions, versionModel{
			Version:           types.StringValue(v.Version),
			SchemaVersion:     types.Int64Value(int64(v.SchemaVersion)),
			Breaking:          types.BoolValue(v.Breaking),
			BreakingChanges:   stringList(v.BreakingChanges),
			MigrationGuideURL: optionalString(v.MigrationGuideURL),
			ReleaseNotes:      optionalString(v.ReleaseNotes),
			HasMigrations:     types.BoolValue(len(v.Migrations) > 0),
			Migrations:        newMigrationModels(v.Migrations),
		})
	}
	m.Latest = types.StringNull()
	if len(vs) > 0 {
		m.Latest = types.StringValue(vs[len(vs)-1].Version)
	}

	m.Targets = nil
	if !m.From.IsNull() {
		targets, kinds, err := cat.Targets(m.From.ValueString())
		var unknown *upgrade.UnknownVersionError
		if errors.As(err, &unknown) {
			resp.Diagnostics.AddAttributeError(path.Root("from"), "Unknown Engine Version", unknown.Error()+".")
			return
		}
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("from"), "Upgrade Targets Failed", err.Error())
			return
		}
		m.Targets = make([]targetModel, 0, len(targets))
		for i, t := range targets {
			m.Targets = append(m.Targets, targetModel{Version: types.StringValue(t.Version), Kind: types.StringValue(kinds[i])})
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
