package provider

// Engine reads and the operation driver the resources and data sources share.

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
)

// driver returns the operation driver shared by the resources, logging through tflog.
func (d *providerData) driver() *rollout.Driver {
	return &rollout.Driver{Client: d.Client, Log: func(ctx context.Context, msg string, fields map[string]any) {
		tflog.Debug(ctx, msg, fields)
	}}
}

// readEngine reads userID's engine for a plan or a data source: a user the control plane does not
// know, or a failed read, is an error on user_id.
func readEngine(ctx context.Context, c *client.Client, userID string) (api.Engine, diag.Diagnostics) {
	var diags diag.Diagnostics
	e, err := c.GetEngine(ctx, userID)
	switch {
	case client.IsNotFound(err):
		diags.Append(engineNotFoundDiag(userID))
	case err != nil:
		diags.Append(clientErrorAttrDiag(path.Root("user_id"), "Engine Read Failed", err))
	}
	return e, diags
}

// engineNotFoundDiag is the one error for a user_id the control plane does not know.
func engineNotFoundDiag(userID string) diag.Diagnostic {
	return diag.NewAttributeErrorDiagnostic(path.Root("user_id"), "Engine Not Found",
		fmt.Sprintf("The control plane has no engine for user %q. Check the user_id; data \"engine_instances\" lists "+
			"the engines it knows (filter with user_id_prefix).", userID))
}
