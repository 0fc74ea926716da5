package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// TestAccVersionGrammar_sameEverywhere: the functions and the attributes accept the same
// versions and refuse the same slips ("v2.4.0", "2.4") with one message and a suggestion that
// is itself a valid version.
func TestAccVersionGrammar_sameEverywhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config:      `output "k" { value = provider::engine::upgrade_kind("v2.4.0", "2.4.1") }`,
				ExpectError: errorLike(`"v2.4.0" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0"`),
			},
			{
				Config:      `output "k" { value = provider::engine::upgrade_kind("2.3.1", "2.4") }`,
				ExpectError: errorLike(`"2.4" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0"`),
			},
			{
				Config:      `output "k" { value = provider::engine::version_satisfies("v2.4.0", ">= 2.0") }`,
				ExpectError: errorLike(`"v2.4.0" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0"`),
			},
			{
				Config:      h.ProviderBlock() + `data "engine_instances" "x" { version = "v2.4.0" }`,
				ExpectError: errorLike(`version: "v2.4.0" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0".`),
			},
			{
				Config: h.ProviderBlock() + `data "engine_upgrade_path" "p" {
  from = "2.3.1"
  to   = "2.4"
}`,
				ExpectError: errorLike(`to: "2.4" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0".`),
			},
			{
				// A prerelease is a version in both places: the attribute passes validation and
				// reaches the catalog, which does not list it.
				Config:      h.ProviderBlock() + `data "engine_instances" "rc" { version = "2.5.0-rc.1" }`,
				ExpectError: errorLike(`version "2.5.0-rc.1" is not in the release catalog`),
			},
			{
				Config: `output "k" { value = provider::engine::upgrade_kind("2.5.0-rc.1", "2.5.0") }`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("k", knownvalue.StringExact("patch")),
				},
			},
		},
	})
}

// TestAccTimeouts_mustBePositive: a zero or negative timeout of any resource is refused at
// plan time, naming the attribute, before anything reaches the control plane.
func TestAccTimeouts_mustBePositive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	steps := []resource.TestStep{}
	for _, c := range []struct{ resource, body, attr, value string }{
		{"engine_brain_snapshot", `user_id = "user-0001"`, "create", "-5m"},
		{"engine_brain_snapshot", `user_id = "user-0001"`, "delete", "0s"},
		{"engine_release", `user_id = "user-0001"` + "\n  version = \"2.3.1\"", "update", "0s"},
		{"engine_release", `user_id = "user-0001"` + "\n  version = \"2.3.1\"", "create", "-1h"},
		{"engine_canary", `version = "2.4.0"` + "\n  user_ids = [\"user-0001\"]", "delete", "-30m"},
		{"engine_canary", `version = "2.4.0"` + "\n  user_ids = [\"user-0001\"]", "update", "0"},
	} {
		steps = append(steps, resource.TestStep{
			Config: h.ProviderBlock() + fmt.Sprintf(`
resource %q "x" {
  %s
  timeouts {
    %s = %q
  }
}
`, c.resource, c.body, c.attr, c.value),
			ExpectError: errorLike(fmt.Sprintf(`timeouts.%s = %q: a timeout bounds how long apply waits for the operation, so it must be above zero.`, c.attr, c.value)),
		})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: h.Factories(nil), Steps: steps})
	if n := h.Requests("POST /v1/engines/user-0001/snapshots") + h.Requests("POST /v1/engines/user-0001/upgrade"); n != 0 {
		t.Errorf("a refused timeout still started %d operations", n)
	}
}
