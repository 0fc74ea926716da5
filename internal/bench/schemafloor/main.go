// Command schemafloor serves this provider's resources with their real schemas and CRUD methods
// that do nothing: Read hands back the state it was given and there is no ModifyPlan, so no
// request reaches the control plane. engine-bench plans an applied engine_release configuration
// with it in place of the provider: what is left is what the plugin framework spends on
// engine_release's schema and state, the part of a plan's cost the resource's own code does not
// control.
package main

import (
	"context"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/septemberai/terraform-provider-engine/internal/logquiet"
	engine "github.com/septemberai/terraform-provider-engine/internal/provider"
)

func main() {
	logquiet.UnlessLogging()
	err := providerserver.Serve(context.Background(), func() provider.Provider { return schemaFloor{engine.New("bench")()} }, providerserver.ServeOpts{
		Address: "registry.terraform.io/septemberai/engine",
	})
	if err != nil {
		log.Fatal(err)
	}
}

// schemaFloor is the real provider (schema, configuration) with every resource's methods emptied.
type schemaFloor struct{ provider.Provider }

func (f schemaFloor) Resources(ctx context.Context) []func() resource.Resource {
	var out []func() resource.Resource
	for _, r := range f.Provider.Resources(ctx) {
		out = append(out, func() resource.Resource { return noop{r()} })
	}
	return out
}

func (schemaFloor) DataSources(context.Context) []func() datasource.DataSource { return nil }

// noop keeps a resource's name and schema and does nothing else.
type noop struct{ inner resource.Resource }

func (n noop) Metadata(ctx context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	n.inner.Metadata(ctx, req, resp)
}

func (n noop) Schema(ctx context.Context, req resource.SchemaRequest, resp *resource.SchemaResponse) {
	n.inner.Schema(ctx, req, resp)
}

func (noop) Create(context.Context, resource.CreateRequest, *resource.CreateResponse) {}
func (noop) Read(context.Context, resource.ReadRequest, *resource.ReadResponse)       {}
func (noop) Update(context.Context, resource.UpdateRequest, *resource.UpdateResponse) {}
func (noop) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}
