package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

var _ datasource.DataSourceWithConfigure = (*rehearsalDataSource)(nil)

// NewRehearsalDataSource is the engine_rehearsal data source: one rehearsal, by id.
func NewRehearsalDataSource() datasource.DataSource { return &rehearsalDataSource{} }

type rehearsalDataSource struct {
	data *providerData
}

func (d *rehearsalDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_rehearsal"
}

func (d *rehearsalDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := map[string]dschema.Attribute{}
	for k, a := range rehearsalComputedAttributes() {
		attrs[k] = computedDataAttribute(a)
	}
	attrs["id"] = dschema.StringAttribute{Required: true, Validators: []validator.String{idValidator()},
		MarkdownDescription: "The rehearsal to read (`reh-…`), for example `engine_rehearsal.x.id` from another workspace's outputs."}
	attrs["user_id"] = dschema.StringAttribute{Computed: true, MarkdownDescription: "The user whose engine's upgrade was rehearsed."}
	attrs["version"] = dschema.StringAttribute{Computed: true, MarkdownDescription: "The version rehearsed."}
	attrs["snapshot_id"] = dschema.StringAttribute{Computed: true, MarkdownDescription: "The verified snapshot whose copy the staging " +
		"engine " +
		"ran on."}
	resp.Schema = dschema.Schema{
		MarkdownDescription: "Reads one rehearsal (see the `engine_rehearsal` resource): its verdict, the failed checks, the staging and " +
			"production figures, " +
			"the migrations with their durations, and the staging engine's URL while it runs.",
		Attributes: attrs,
	}
}

// computedDataAttribute is a resource's computed attribute as a data source's.
func computedDataAttribute(a rschema.Attribute) dschema.Attribute {
	switch a := a.(type) {
	case rschema.StringAttribute:
		return dschema.StringAttribute{Computed: true, MarkdownDescription: a.MarkdownDescription}
	case rschema.Int64Attribute:
		return dschema.Int64Attribute{Computed: true, MarkdownDescription: a.MarkdownDescription}
	case rschema.Float64Attribute:
		return dschema.Float64Attribute{Computed: true, MarkdownDescription: a.MarkdownDescription}
	case rschema.BoolAttribute:
		return dschema.BoolAttribute{Computed: true, MarkdownDescription: a.MarkdownDescription}
	case rschema.ListAttribute:
		return dschema.ListAttribute{Computed: true, ElementType: a.ElementType, MarkdownDescription: a.MarkdownDescription}
	case rschema.ListNestedAttribute:
		return dschema.ListNestedAttribute{Computed: true, MarkdownDescription: a.MarkdownDescription,
			NestedObject: dschema.NestedAttributeObject{Attributes: computedDataAttributes(a.NestedObject.Attributes)}}
	case rschema.SingleNestedAttribute:
		return dschema.SingleNestedAttribute{Computed: true, MarkdownDescription: a.MarkdownDescription,
			Attributes: computedDataAttributes(a.Attributes)}
	}
	panic(fmt.Sprintf("computedDataAttribute: %T", a))
}

func computedDataAttributes(in map[string]rschema.Attribute) map[string]dschema.Attribute {
	out := make(map[string]dschema.Attribute, len(in))
	for k, a := range in {
		out[k] = computedDataAttribute(a)
	}
	return out
}

func (d *rehearsalDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configureData(req.ProviderData, &resp.Diagnostics)
}

func (d *rehearsalDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m rehearsalValues
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	reh, err := d.data.Client.GetRehearsal(ctx, m.ID.ValueString())
	if err != nil {
		resp.Diagnostics.Append(clientErrorDiag("Rehearsal Read Failed", err))
		return
	}
	m.fill(reh)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
