package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

func TestVersionSatisfiesFunction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v, c string
		want bool
	}{
		{"2.4.0", "~> 2.4", true},
		{"3.0.0", "~> 2.4", false},
		{"2.3.1", ">= 2.3, < 3.0", true},
		{"2.2.0", ">= 2.3, < 3.0", false},
		{"2.4.1", "!= 2.4.1", false},
	} {
		got, ferr := runFunction(t, NewVersionSatisfiesFunction(), types.BoolUnknown(), types.StringValue(tc.v), types.StringValue(tc.c))
		if ferr != nil {
			t.Errorf("version_satisfies(%s, %s): %v", tc.v, tc.c, ferr)
			continue
		}
		if !got.Equal(types.BoolValue(tc.want)) {
			t.Errorf("version_satisfies(%s, %q) = %s, want %v", tc.v, tc.c, got, tc.want)
		}
	}
}

func TestVersionSatisfiesFunction_malformedNamesArgument(t *testing.T) {
	t.Parallel()
	_, ferr := runFunction(t, NewVersionSatisfiesFunction(), types.BoolUnknown(), types.StringValue("two"), types.StringValue(">= 2"))
	if ferr == nil || ferr.FunctionArgument == nil || *ferr.FunctionArgument != 0 || !strings.Contains(ferr.Text, `"two" is not a valid version`) {
		t.Errorf("want an error on argument 0 on version, got %+v", ferr)
	}
	_, ferr = runFunction(t, NewVersionSatisfiesFunction(), types.BoolUnknown(), types.StringValue("2.4.0"), types.StringValue("about 2"))
	if ferr == nil || ferr.FunctionArgument == nil || *ferr.FunctionArgument != 1 || !strings.Contains(ferr.Text, `"about 2" is not a valid version constraint`) {
		t.Errorf("want an error on argument 1 on constraint, got %+v", ferr)
	}
}

func TestAccVersionSatisfiesFunction_basic(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config: `
output "in"  { value = provider::engine::version_satisfies("2.4.0", "~> 2.4") }
output "out" { value = provider::engine::version_satisfies("3.0.0", ">= 2.3, < 3.0") }
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValue("in", knownvalue.Bool(true)),
				statecheck.ExpectKnownOutputValue("out", knownvalue.Bool(false)),
			},
		}},
	})
}

func TestAccVersionSatisfiesFunction_malformed(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config:      `output "s" { value = provider::engine::version_satisfies("2.4.0", "newer please") }`,
			ExpectError: errorLike(`Invalid value for "constraint" parameter: "newer please" is not a valid version constraint`),
		}},
	})
}
