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
	Status       types.String   `tfsdk:"status"`
	Version      types.String   `tfsdk:"version"`
	UserIDPrefix types.String   `tfsdk:"user_id_prefix"`
	Instances    []engineModel  `tfsdk:"instances"`
	UserIDs      []types.String `tfsdk:"user_ids"`
}

func (d *instancesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_instances"
}

func (d *instancesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the engines of a fleet, optionally filtered by status, version and user id prefix. " +
			"Pages through the whole fleet. `user_ids` feeds `for_each` of `engine_release` or the users of an `engine_canary`.",
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
			"instances": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The matching engines, ordered by user id; each has the attributes of the `engine_instance` data source.",
				NestedObject: schema.NestedAttributeObject{Attributes: engineAttributes(schema.StringAttribute{
					Computed: true, MarkdownDescription: "The user the engine serves.",
				})},
			},
			"user_ids": schema.ListAttribute{
				Computed:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "The user ids of the matching engines, in the same order as `instances`.",
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
	engines, err := d.data.Client.AllEngines(ctx, client.ListEnginesOptions{
		Status:       m.Status.ValueString(),
		Version:      m.Version.ValueString(),
		UserIDPrefix: m.UserIDPrefix.ValueString(),
	})
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Engine List Failed", err))
		return
	}
	// Sorted here so the list is stable across pages and control plane implementations: a
	// reordering would otherwise show as a diff in everything that iterates over it.
	sort.SliceStable(engines, func(i, j int) bool { return engines[i].UserID < engines[j].UserID })
	m.Instances = make([]engineModel, 0, len(engines))
	m.UserIDs = make([]types.String, 0, len(engines))
	for _, e := range engines {
		m.Instances = append(m.Instances, newEngineModel(e))
		m.UserIDs = append(m.UserIDs, types.StringValue(e.UserID))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
