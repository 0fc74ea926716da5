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

var _ datasource.DataSourceWithConfigure = (*upgradePathDataSource)(nil)

// NewUpgradePathDataSource is the engine_upgrade_path data source: what moving from one version
// to another implies. It computes the path with upgrade.Catalog.Path on the control plane's
// catalog, the same code engine_release runs at plan time, so the two can never disagree.
func NewUpgradePathDataSource() datasource.DataSource { return &upgradePathDataSource{} }

type upgradePathDataSource struct {
	data *providerData
}

type upgradePathDataSourceModel struct {
	From               types.String     `tfsdk:"from"`
	To                 types.String     `tfsdk:"to"`
	Kind               types.String     `tfsdk:"kind"`
	Valid              types.Bool       `tfsdk:"valid"`
	Reason             types.String     `tfsdk:"reason"`
	FromSchema         types.Int64      `tfsdk:"from_schema"`
	ToSchema           types.Int64      `tfsdk:"to_schema"`
	Hops               []hopModel       `tfsdk:"hops"`
	Migrations         []migrationModel `tfsdk:"migrations"`
	BreakingChanges    []types.String   `tfsdk:"breaking_changes"`
	MigrationGuideURLs []types.String   `tfsdk:"migration_guide_urls"`
	RequiresSnapshot   types.Bool       `tfsdk:"requires_snapshot"`
	RequiresRestore    types.Bool       `tfsdk:"requires_restore"`
	ForwardOnly        types.Bool       `tfsdk:"forward_only"`
	Destructive        types.Bool       `tfsdk:"destructive"`
}

type hopModel struct {
	From       types.String     `tfsdk:"from"`
	To         types.String     `tfsdk:"to"`
	Kind       types.String     `tfsdk:"kind"`
	Migrations []migrationModel `tfsdk:"migrations"`
}

func (d *upgradePathDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_upgrade_path"
}

func (d *upgradePathDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Computes everything an upgrade from one catalog version to another implies: the hops (one per brain " +
			"schema change), their migrations, whether any is forward-only or destructive, the breaking changes and migration " +
			"guides on the way, and whether a snapshot (or, going back, a restore) is required. `engine_release` plans with the same logic.",
		Attributes: map[string]schema.Attribute{
			"from": schema.StringAttribute{Required: true, Validators: []validator.String{versionValidator{}},
				MarkdownDescription: "The version the engine runs now, for example `2.3.1`. Must be in the catalog."},
			"to": schema.StringAttribute{Required: true, Validators: []validator.String{versionValidator{}},
				MarkdownDescription: "The version to move to, for example `2.4.0`. Must be in the catalog."},
			"kind": schema.StringAttribute{Computed: true, MarkdownDescription: "The kind of the move: " + backtickList(upgrade.Kinds) + "."},
			"valid": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the move can be made as an upgrade; " +
				"see `reason` when it cannot as it stands."},
			"reason": schema.StringAttribute{Computed: true, MarkdownDescription: "Why the move needs more than an upgrade (for example a " +
				"snapshot restore); null otherwise."},
			"from_schema": schema.Int64Attribute{Computed: true, MarkdownDescription: "The brain schema version of `from`."},
			"to_schema":   schema.Int64Attribute{Computed: true, MarkdownDescription: "The brain schema version of `to`."},
			"hops": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The steps of the path, in order: a hop ends at every version that changes the brain schema, and at `to`.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"from":       schema.StringAttribute{Computed: true, MarkdownDescription: "Where the hop starts."},
					"to":         schema.StringAttribute{Computed: true, MarkdownDescription: "Where the hop ends."},
					"kind":       schema.StringAttribute{Computed: true, MarkdownDescription: "The kind of the hop."},
					"migrations": migrationsAttribute("The brain migrations the hop runs."),
				}},
			},
			"migrations": migrationsAttribute("Every brain migration on the path, in the order they run."),
			"breaking_changes": schema.ListAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The breaking changes of every release on the path."},
			"migration_guide_urls": schema.ListAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The migration guides of the releases on the path."},
			"requires_snapshot": schema.BoolAttribute{Computed: true, MarkdownDescription: "The path migrates the brain, so an upgrade " +
				"needs a verified snapshot of the engine at `from` (or `auto_snapshot`)."},
			"requires_restore": schema.BoolAttribute{Computed: true, MarkdownDescription: "A downgrade below the brain's schema: only " +
				"restoring a snapshot taken at `to` (or earlier) brings that version back."},
			"forward_only": schema.BoolAttribute{Computed: true, MarkdownDescription: "Some migration on the path is forward-only."},
			"destructive":  schema.BoolAttribute{Computed: true, MarkdownDescription: "Some migration on the path rewrites or drops data."},
		},
	}
}

func (d *upgradePathDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *upgradePathDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m upgradePathDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cat, err := d.data.Catalog(ctx)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return
	}
	p, err := cat.Path(m.From.ValueString(), m.To.ValueString())
	var unknown *upgrade.UnknownVersionError
	switch {
	case errors.As(err, &unknown):
		attr := "to"
		if _, ok := cat.Get(m.From.ValueString()); !ok {
			attr = "from"
		}
		resp.Diagnostics.AddAttributeError(path.Root(attr), "Unknown Engine Version",
			unknown.Error()+". Pick a version from the catalog (data \"engine_versions\").")
		return
	case err != nil:
		resp.Diagnostics.AddError("Upgrade Path Failed", err.Error())
		return
	}

	m.Kind = types.StringValue(p.Kind)
	m.Valid = types.BoolValue(p.Valid)
	m.Reason = optionalString(p.Reason)
	m.FromSchema = types.Int64Value(int64(p.FromSchema))
	m.ToSchema = types.Int64Value(int64(p.ToSchema))
	m.Hops = make([]hopModel, 0, len(p.Hops))
	for _, h := range p.Hops {
		m.Hops = append(m.Hops, hopModel{
			From: types.StringValue(h.From), To: types.StringValue(h.To), Kind: types.StringValue(h.Kind),
			Migrations: newMigrationModels(h.Migrations),
		})
	}
	m.Migrations = newMigrationModels(p.Migrations)
	m.BreakingChanges = stringList(p.BreakingChanges)
	m.MigrationGuideURLs = stringList(p.MigrationGuideURLs)
	m.RequiresSnapshot = types.BoolValue(p.RequiresSnapshot)
	m.RequiresRestore = types.BoolValue(p.RequiresRestore)
	m.ForwardOnly = types.BoolValue(p.ForwardOnly)
	m.Destructive = types.BoolValue(p.Destructive)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
