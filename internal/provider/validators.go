package provider

import (
	"context"
	"fmt"
	"regexp"

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
	v := req.ConfigValue.ValueString()
	if _, err := upgrade.ParseVersion(v); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Engine Version", req.Path.String()+": "+err.Error()+".")
		return
	}
	// go-version reads "2.4" as 2.4.0, but the control plane matches version strings exactly, so
	// a short form would silently match nothing.
	if !fullVersion.MatchString(v) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Engine Version",
			fmt.Sprintf("%s: %q is not a full version: write all three parts, for example %q.", req.Path, v, v+".0"))
	}
}

var fullVersion = regexp.MustCompile(`^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$`)
