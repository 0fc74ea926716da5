package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccInstancesDataSource_filters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 3})
	for _, u := range []string{"team-a-1", "team-a-2"} {
		if err := h.Server.CreateEngine(u, "2.4.0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Server.CreateEngine("team-b-1", "2.3.1"); err != nil {
		t.Fatal(err)
	}
	users := func(ids ...string) knownvalue.Check {
		checks := make([]knownvalue.Check, len(ids))
		for i, id := range ids {
			checks[i] = knownvalue.StringExact(id)
		}
		return knownvalue.ListExact(checks)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_instances" "all" {}

data "engine_instances" "v240" {
  version = "2.4.0"
}

data "engine_instances" "team_a_on_231" {
  user_id_prefix = "team-a-"
  version        = "2.3.1"
}

data "engine_instances" "team" {
  user_id_prefix = "team-"
  status         = "running"
}

data "engine_instances" "failed" {
  status = "failed"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_instances.all", tfjsonpath.New("user_ids"),
					users("team-a-1", "team-a-2", "team-b-1", "user-0001", "user-0002", "user-0003")),
				statecheck.ExpectKnownValue("data.engine_instances.all", tfjsonpath.New("instances"), knownvalue.ListSizeExact(6)),
				statecheck.ExpectKnownValue("data.engine_instances.v240", tfjsonpath.New("user_ids"), users("team-a-1", "team-a-2")),
				statecheck.ExpectKnownValue("data.engine_instances.v240", tfjsonpath.New("instances").AtSliceIndex(1).AtMapKey("schema_version"),
					knownvalue.Int64Exact(5)),
				statecheck.ExpectKnownValue("data.engine_instances.v240", tfjsonpath.New("instances").AtSliceIndex(0).AtMapKey("version"),
					knownvalue.StringExact("2.4.0")),
				statecheck.ExpectKnownValue("data.engine_instances.team_a_on_231", tfjsonpath.New("user_ids"), knownvalue.ListSizeExact(0)),
				statecheck.ExpectKnownValue("data.engine_instances.team", tfjsonpath.New("user_ids"), users("team-a-1", "team-a-2", "team-b-1")),
				statecheck.ExpectKnownValue("data.engine_instances.failed", tfjsonpath.New("instances"), knownvalue.ListSizeExact(0)),
			},
		}},
	})
}

// TestAccInstancesDataSource_pagesThroughFleet seeds more engines than one page holds: the
// control plane answers at most 100 per page, so all 105 only arrive if the data source pages.
func TestAccInstancesDataSource_pagesThroughFleet(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 105, BrainRows: 1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `data "engine_instances" "all" {}`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_instances.all", tfjsonpath.New("user_ids"), knownvalue.ListSizeExact(105)),
				statecheck.ExpectKnownValue("data.engine_instances.all", tfjsonpath.New("user_ids").AtSliceIndex(104), knownvalue.StringExact("user-0105")),
			},
		}},
	})
}

func TestAccInstancesDataSource_invalidFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config:      h.ProviderBlock() + `data "engine_instances" "x" { status = "sleeping" }`,
				ExpectError: errorLike(fmt.Sprintf(`Attribute status value must be one of: [%q %q %q %q %q %q], got: "sleeping"`, "provisioning", "running", "draining", "upgrading", "stopped", "failed")),
			},
			{
				Config:      h.ProviderBlock() + `data "engine_instances" "x" { version = "2.4" }`,
				ExpectError: errorLike(`version: "2.4" is not a valid version: write MAJOR.MINOR.PATCH, for example "2.4.0".`),
			},
			{
				Config:      h.ProviderBlock() + `data "engine_instances" "x" { version = "9.9.9" }`,
				ExpectError: errorLike(`VERSION_NOT_FOUND`),
			},
		},
	})
}

// TestAccInstancesDataSource_idsOnly: include_instances = false gives the same user_ids and count
// as the full form, through the selector, and no instances.
func TestAccInstancesDataSource_idsOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 4, BrainRows: 1})
	if err := h.Server.CreateEngine("team-a-1", "2.4.0"); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_instances" "light" {
  version           = "2.3.1"
  include_instances = false
}

data "engine_instances" "full" {
  version = "2.3.1"
}

data "engine_instances" "none" {
  user_id_prefix    = "nobody-"
  include_instances = false
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_instances.light", tfjsonpath.New("user_ids"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact("user-0001"), knownvalue.StringExact("user-0002"),
					knownvalue.StringExact("user-0003"), knownvalue.StringExact("user-0004"),
				})),
				statecheck.ExpectKnownValue("data.engine_instances.light", tfjsonpath.New("engine_count"), knownvalue.Int64Exact(4)),
				statecheck.ExpectKnownValue("data.engine_instances.light", tfjsonpath.New("instances"), knownvalue.Null()),
				statecheck.ExpectKnownValue("data.engine_instances.full", tfjsonpath.New("engine_count"), knownvalue.Int64Exact(4)),
				statecheck.ExpectKnownValue("data.engine_instances.full", tfjsonpath.New("instances"), knownvalue.ListSizeExact(4)),
				statecheck.ExpectKnownValue("data.engine_instances.none", tfjsonpath.New("user_ids"), knownvalue.ListSizeExact(0)),
				statecheck.ExpectKnownValue("data.engine_instances.none", tfjsonpath.New("engine_count"), knownvalue.Int64Exact(0)),
			},
		}},
	})
}
