package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

var _ datasource.DataSourceWithConfigure = (*instanceDataSource)(nil)

// NewInstanceDataSource is the engine_instance data source: one engine, by user id.
func NewInstanceDataSource() datasource.DataSource { return &instanceDataSource{} }

type instanceDataSource struct {
	data *providerData
}

func (d *instanceDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_instance"
}

func (d *instanceDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads one engine by the user it serves: its version, brain schema version, status, health and " +
			"brain write counter. Use it to see what an `engine_release` would start from.",
		Attributes: engineAttributes(schema.StringAttribute{
			Required:            true,
			MarkdownDescription: "The user whose engine to read, for example `user-0001`.",
			Validators:          []validator.String{idValidator()},
		}),
	}
}

func (d *instanceDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *instanceDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m engineModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	userID := m.UserID.ValueString()
	e, diags := readEngine(ctx, d.data.Client, userID)
	resp.Diagnostics.Append(diags...)
	if diags.HasError() {
		return
	}
	m = newEngineModel(e)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
