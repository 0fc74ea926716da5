// Command floorprovider is the smallest terraform-plugin-framework provider that can stand in for
// engine_release in a plan: one resource, benchfloor_release, with the same two configured
// attributes and an id, whose Read returns the state it was given and which makes no request.
// engine-bench plans N of them next to N engine_release and N terraform_data, so a missed
// plan-time bar can be split into what any framework provider costs Terraform (the plugin
// protocol, the framework's per-call work) and what this provider adds on top.
package main

import (
	"context"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/logquiet"
)

func main() {
	logquiet.UnlessLogging()
	err := providerserver.Serve(context.Background(), func() provider.Provider { return floor{} }, providerserver.ServeOpts{
		Address: "registry.terraform.io/septemberai/benchfloor",
	})
	if err != nil {
		log.Fatal(err)
	}
}

type floor struct{}

func (floor) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "benchfloor"
}

func (floor) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = pschema.Schema{}
}

func (floor) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {}

func (floor) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{func() resource.Resource { return release{} }}
}

func (floor) DataSources(context.Context) []func() datasource.DataSource { return nil }

type release struct{}

type releaseModel struct {
	ID      types.String `tfsdk:"id"`
	UserID  types.String `tfsdk:"user_id"`
	Version types.String `tfsdk:"version"`
}

func (release) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_release"
}

func (release) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{Attributes: map[string]schema.Attribute{
		"id":      schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
		"user_id": schema.StringAttribute{Required: true},
		"version": schema.StringAttribute{Required: true},
	}}
}

func (release) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	m.ID = m.UserID
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (release) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {}

func (release) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}

func (release) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}
