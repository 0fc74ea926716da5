package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
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

var idRegexp = regexp.MustCompile(api.IDPattern)

// idValidator checks a user, snapshot or operation id against the control API's id pattern.
func idValidator() validator.String {
	return stringvalidator.RegexMatches(idRegexp, "must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
}

func int64Stable() []planmodifier.Int64 {
	return []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// snapshotValues is one snapshot as Terraform values, shared by the resource and the data source.
type snapshotValues struct {
	ID            types.String `tfsdk:"id"`
	UserID        types.String `tfsdk:"user_id"`
	Description   types.String `tfsdk:"description"`
	RetentionDays types.Int64  `tfsdk:"retention_days"`
	EngineID      types.String `tfsdk:"engine_id"`
	EngineVersion types.String `tfsdk:"engine_version"`
	SchemaVersion types.Int64  `tfsdk:"schema_version"`
	SizeBytes     types.Int64  `tfsdk:"size_bytes"`
	SHA256        types.String `tfsdk:"sha256"`
	BrainWrites   types.Int64  `tfsdk:"brain_writes"`
	CreatedAt     types.String `tfsdk:"created_at"`
	RetainUntil   types.String `tfsdk:"retain_until"`
	Status        types.String `tfsdk:"status"`
}

func snapshotFields(s api.Snapshot) snapshotValues {
	return snapshotValues{
		ID: types.StringValue(s.ID), UserID: types.StringValue(s.UserID), Description: types.StringValue(s.Description),
		RetentionDays: types.Int64Value(int64(s.RetentionDays)), EngineID: types.StringValue(s.EngineID),
		EngineVersion: types.StringValue(s.EngineVersion), SchemaVersion: types.Int64Value(int64(s.SchemaVersion)),
		SizeBytes: types.Int64Value(s.SizeBytes), SHA256: types.StringValue(s.SHA256), BrainWrites: types.Int64Value(s.BrainWrites),
		CreatedAt: types.StringValue(rfc3339(s.CreatedAt)), RetainUntil: types.StringValue(rfc3339(s.RetainUntil)),
		Status: types.StringValue(s.Status),
	}
}

// rfc3339 renders a time for state: UTC, second precision, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
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
