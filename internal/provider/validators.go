package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/septemberai/terraform-provider-engine/internal/api"
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

var idRegexp = regexp.MustCompile(api.IDPattern)

// idValidator checks a user, snapshot or operation id against the control API's id pattern.
func idValidator() validator.String {
	return stringvalidator.RegexMatches(idRegexp, "must be 1-128 characters of letters, digits, '.', '_' or '-', "+
		"starting with a letter or digit")
}

func int64Stable() []planmodifier.Int64 {
	return []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}
}

var _ validator.String = durationValidator{}

// durationValidator accepts a Go duration ("30s", "2m") between min and max.
type durationValidator struct{ min, max time.Duration }

func (v durationValidator) Description(context.Context) string {
	return "must be a Go duration such as \"30s\" or \"2m\", between " + v.min.String() + " and " + v.max.String()
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil || d < v.min || d > v.max {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			req.Path.String()+" is "+strconv.Quote(req.ConfigValue.ValueString())+": it "+v.Description(context.Background())+".")
	}
}

var clockRegexp = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// clockValidator accepts a UTC time of day "HH:MM".
func clockValidator() validator.String {
	return stringvalidator.RegexMatches(clockRegexp, "must be a UTC time of day HH:MM, for example \"02:00\"")
}
