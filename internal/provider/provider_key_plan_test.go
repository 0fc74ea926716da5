package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
)

// savedPlanHolds checks the saved plan, as `terraform show -json` renders it, for the API key:
// want says whether it must be there.
type savedPlanHolds struct {
	key  string
	want bool
}

func (c savedPlanHolds) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	b, err := json.Marshal(req.Plan)
	if err != nil {
		resp.Error = err
		return
	}
	if got := strings.Contains(string(b), c.key); got != c.want {
		resp.Error = fmt.Errorf("the saved plan holds the API key: %v, want %v (variables: %v)", got, c.want, req.Plan.Variables)
	}
}

// documentedKeyVariable is the variable block examples/provider/provider.tf (rendered into
// docs/index.md) declares for the API key.
func documentedKeyVariable(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/provider/provider.tf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^variable "engine_api_key" \{.*?^\}`).Find(b)
	if m == nil {
		t.Fatal(`examples/provider/provider.tf declares no variable "engine_api_key"`)
	}
	return string(m)
}

// TestAccProvider_recommendedKeyStaysOutOfSavedPlans: both ways docs/index.md recommends to
// pass the API key, ENGINE_API_KEY and the documented (ephemeral) variable, keep it out of a
// saved plan; a variable that is only sensitive puts it there (which also shows the check can
// fail).
func TestAccProvider_recommendedKeyStaysOutOfSavedPlans(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	withVariable := func(block string) string {
		return block + fmt.Sprintf(`
provider "engine" {
  endpoint = %q
  api_key  = var.engine_api_key
}
output "version" { value = data.engine_instance.e.version }
`, h.Endpoint) + readOne
	}
	step := func(cfg string, vars map[string]string, inPlan bool) resource.TestStep {
		return resource.TestStep{
			Config:            cfg,
			ConfigVariables:   configVariables(vars),
			ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{savedPlanHolds{key: h.Key, want: inPlan}}},
			ConfigStateChecks: expectReadOne("2.3.1"),
		}
	}
	t.Run("ENGINE_API_KEY", func(t *testing.T) {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(map[string]string{"ENGINE_API_KEY": h.Key}),
			Steps:                    []resource.TestStep{step(fmt.Sprintf("provider \"engine\" {\n  endpoint = %q\n}\noutput \"version\" { value = data.engine_instance.e.version }\n", h.Endpoint)+readOne, nil, false)},
		})
	})
	t.Run("documented variable", func(t *testing.T) {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(nil),
			Steps:                    []resource.TestStep{step(withVariable(documentedKeyVariable(t)), map[string]string{"engine_api_key": h.Key}, false)},
		})
	})
	t.Run("sensitive variable", func(t *testing.T) {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(nil),
			Steps:                    []resource.TestStep{step(withVariable("variable \"engine_api_key\" {\n  type      = string\n  sensitive = true\n}\n"), map[string]string{"engine_api_key": h.Key}, true)},
		})
	})
}
