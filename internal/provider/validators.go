package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var _ validator.String = versionValidator{}

// versionValidator accepts a semantic version ("2.4.0") as upgrade.ParseVersion does, so an
// attribute rejects "latest" or "2.4" at validate time with the same message everywhere.
type versionValidator struct{}

func (versionValidator) Description(context.Context) string {
	return "must be a semantic version MAJOR.MINOR.PATCH, for example 2.4.0"
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
