package provider

import (
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
