package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var _ validator.String = versionValidator{}

// versionValidator accepts exactly what upgrade.ParseVersion accepts, so an attribute rejects
// "latest", "v2.4.0" or "2.4" at validate time with the same message as the functions.
type versionValidator struct{}

func (versionValidator) Description(context.Context) string {
	return "must be a version " + upgrade.VersionGrammar
}

func (v versionValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (versionValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := upgrade.ParseVersion(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Engine Version", req.Path.String()+": "+err.Error()+".")
	}
}
