package provider

import (
	"context"
	"sort"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

var _ datasource.DataSourceWithConfigure = (*instancesDataSource)(nil)

// NewInstancesDataSource is the engine_instances data source: the fleet, optionally filtered.
func NewInstancesDataSource() datasource.DataSource { return &instancesDataSource{} }

type instancesDataSource struct {
	data *providerData
}

type instancesDataSourceModel struct {
	Status       types.String  `tfsdk:"status"`
	Version      types.String  `tfsdk:"version"`
	UserIDPrefix types.String  `tfsdk:"user_id_prefix"`
	Include      types.Bool    `tfsdk:"include_instances"`
	Instances    []engineModel `tfsdk:"instances"`
	UserIDs      types.List    `tfsdk:"user_ids"`
	Count        types.Int64   `tfsdk:"engine_count"`
}

func (d *instancesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_instances"
}

func (d *instancesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the engines of a fleet, optionally filtered by status, version and user id prefix. " +
			"Pages through the whole fleet. `user_ids` feeds `for_each` of `engine_release` or the users of an `engine_canary`. " +
			"For a large fleet set `include_instances = false`: the data source then reads only ids (10,000 a request) and keeps " +
			"about 12 bytes of state per engine instead of about 400.",
		Attributes: map[string]schema.Attribute{
			"status": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only engines in this status: " + backtickList(api.EngineStatuses) + ".",
				Validators:          []validator.String{stringvalidator.OneOf(api.EngineStatuses...)},
			},
			"version": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only engines running exactly this version, for example `2.3.1`.",
				Validators:          []validator.String{versionValidator{}},
			},
			"user_id_prefix": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only engines whose user id starts with this prefix.",
				Validators:          []validator.String{stringvalidator.LengthBetween(1, 128)},
			},
			"include_instances": schema.BoolAttribute{
				Optional: true,
				MarkdownDescription: "Whether to read every matching engine's details into `instances` (default `true`). " +
					"`false` reads only `user_ids` and `engine_count`: at 10,000 engines the data source's state drops from about 4 MB to " +
					"about 120 KB " +
					"and its read from seconds to one request.",
			},
			"instances": schema.ListNestedAttribute{
				Computed: true,
				MarkdownDescription: "The matching engines, ordered by user id; each has the attributes of the `engine_instance` data source. " +
					"Null when `include_instances = false`.",
				NestedObject: schema.NestedAttributeObject{Attributes: engineAttributes(schema.StringAttribute{
					Computed: true, MarkdownDescription: "The user the engine serves.",
				})},
			},
			"user_ids": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "The user ids of the matching engines, ordered by user id (the order of `instances`).",
			},
			"engine_count": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "How many engines match.",
			},
		},
	}
}

func (d *instancesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *instancesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m instancesDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	opts := client.ListEnginesOptions{Status: m.Status.ValueString(), Version: m.Version.ValueString(),
		UserIDPrefix: m.UserIDPrefix.ValueString()}
	if !m.Include.IsNull() && !m.Include.ValueBool() {
		ids, err := d.data.Client.AllEngineIDs(ctx, opts)
		if err != nil {
			resp.Diagnostics.Append(clientErrorDiag("Engine List Failed", err))
			return
		}
		sort.Strings(ids)
		m.UserIDs = stringListValue(ids)
		m.Count = types.Int64Value(int64(len(ids)))
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	engines, err := d.data.Client.AllEngines(ctx, opts)
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Engine List Failed", err))
		return
	}
	// Sorted here so the list is stable across pages and control plane implementations: a
	// reordering would otherwise show as a diff in everything that iterates over it.
	sort.SliceStable(engines, func(i, j int) bool { return engines[i].UserID < engines[j].UserID })
	m.Instances = make([]engineModel, 0, len(engines))
	ids := make([]string, 0, len(engines))
	for _, e := range engines {
		m.Instances = append(m.Instances, newEngineModel(e))
		ids = append(ids, e.UserID)
	}
	m.UserIDs = stringListValue(ids)
	m.Count = types.Int64Value(int64(len(ids)))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
