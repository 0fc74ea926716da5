package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// runFunction calls a provider function the way the framework does.
func runFunction(t *testing.T, f function.Function, result attr.Value, args ...attr.Value) (attr.Value, *function.FuncError) {
	t.Helper()
	req := function.RunRequest{Arguments: function.NewArgumentsData(args)}
	resp := &function.RunResponse{Result: function.NewResultData(result)}
	f.Run(context.Background(), req, resp)
	return resp.Result.Value(), resp.Error
}

func TestUpgradeKindFunction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ from, to, want string }{
		{"2.3.1", "2.3.1", "none"},
		{"2.3.0", "2.3.1", "patch"},
		{"2.3.1", "2.4.0", "minor"},
		{"2.4.1", "3.0.0", "major"},
		{"3.0.0", "2.4.1", "downgrade"},
		{"2.4.0", "2.4.0-rc1", "downgrade"},
	} {
		got, ferr := runFunction(t, NewUpgradeKindFunction(), types.StringUnknown(), types.StringValue(tc.from), types.StringValue(tc.to))
		if ferr != nil {
			t.Errorf("upgrade_kind(%s, %s): %v", tc.from, tc.to, ferr)
			continue
		}
		if !got.Equal(types.StringValue(tc.want)) {
			t.Errorf("upgrade_kind(%s, %s) = %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestUpgradeKindFunction_malformedNamesArgument(t *testing.T) {
	t.Parallel()
	_, ferr := runFunction(t, NewUpgradeKindFunction(), types.StringUnknown(), types.StringValue("2.x"), types.StringValue("2.4.0"))
	if ferr == nil || ferr.FunctionArgument == nil || *ferr.FunctionArgument != 0 || !strings.Contains(ferr.Text, `"2.x" is not a valid version`) {
		t.Errorf("want an error on argument 0 on from, got %+v", ferr)
	}
	_, ferr = runFunction(t, NewUpgradeKindFunction(), types.StringUnknown(), types.StringValue("2.4.0"), types.StringValue(""))
	if ferr == nil || ferr.FunctionArgument == nil || *ferr.FunctionArgument != 1 || !strings.Contains(ferr.Text, `"" is not a valid version`) {
		t.Errorf("want an error on argument 1 on to, got %+v", ferr)
	}
}

func TestAccUpgradeKindFunction_basic(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config: `
output "minor"     { value = provider::engine::upgrade_kind("2.3.1", "2.4.0") }
output "major"     { value = provider::engine::upgrade_kind("2.4.1", "3.0.0") }
output "downgrade" { value = provider::engine::upgrade_kind("2.4.0", "2.3.1") }
output "none"      { value = provider::engine::upgrade_kind("2.4.0", "2.4.0") }
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValue("minor", knownvalue.StringExact("minor")),
				statecheck.ExpectKnownOutputValue("major", knownvalue.StringExact("major")),
				statecheck.ExpectKnownOutputValue("downgrade", knownvalue.StringExact("downgrade")),
				statecheck.ExpectKnownOutputValue("none", knownvalue.StringExact("none")),
			},
		}},
	})
}

func TestAccUpgradeKindFunction_malformed(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config:      `output "k" { value = provider::engine::upgrade_kind("latest", "2.4.0") }`,
			ExpectError: errorLike(`Invalid value for "from" parameter: "latest" is not a valid version`),
		}},
	})
}
