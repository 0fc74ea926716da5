package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
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

// timeoutsBlock is the conventional timeouts block whose every duration must also be above
// zero: the library only checks that a value parses, so "-5m" or "0s" planned fine and then
// failed at apply as if the operation had run out of time.
func timeoutsBlock(ctx context.Context, opts timeouts.Opts) schema.Block {
	b, ok := timeouts.Block(ctx, opts).(schema.SingleNestedBlock)
	if !ok {
		panic("timeouts.Block is no longer a SingleNestedBlock")
	}
	for name, a := range b.Attributes {
		if s, ok := a.(schema.StringAttribute); ok {
			s.Validators = append(s.Validators, positiveDurationValidator{})
			b.Attributes[name] = s
		}
	}
	return b
}

var _ validator.String = positiveDurationValidator{}

// positiveDurationValidator accepts a Go duration above zero. A value that does not parse is
// left to the timeouts library's own validator, so it is reported once.
type positiveDurationValidator struct{}

func (positiveDurationValidator) Description(context.Context) string {
	return `must be a duration above zero, such as "30m" or "1h30m"`
}

func (v positiveDurationValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (positiveDurationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil || d > 0 {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid Timeout",
		fmt.Sprintf("%s = %q: a timeout bounds how long apply waits for the operation, so it must be above zero. "+
			"Set a positive duration such as \"30m\", or remove it to use the default.", req.Path, req.ConfigValue.ValueString()))
}
