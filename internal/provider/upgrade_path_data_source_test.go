package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccUpgradePathDataSource_basic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1})
	check := func(name, attr string, want knownvalue.Check) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("data.engine_upgrade_path."+name, tfjsonpath.New(attr), want)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_upgrade_path" "patch" {
  from = "2.3.0"
  to   = "2.3.1"
}

data "engine_upgrade_path" "minor" {
  from = "2.3.1"
  to   = "2.4.0"
}

data "engine_upgrade_path" "major" {
  from = "2.3.1"
  to   = "3.0.0"
}

data "engine_upgrade_path" "back" {
  from = "2.4.0"
  to   = "2.3.1"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				check("patch", "kind", knownvalue.StringExact("patch")),
				check("patch", "requires_snapshot", knownvalue.Bool(false)),
				check("patch", "migrations", knownvalue.ListSizeExact(0)),
				check("patch", "hops", knownvalue.ListSizeExact(1)),

				check("minor", "kind", knownvalue.StringExact("minor")),
				check("minor", "valid", knownvalue.Bool(true)),
				check("minor", "reason", knownvalue.Null()),
				check("minor", "requires_snapshot", knownvalue.Bool(true)),
				check("minor", "forward_only", knownvalue.Bool(true)),
				check("minor", "destructive", knownvalue.Bool(false)),
				check("minor", "from_schema", knownvalue.Int64Exact(4)),
				check("minor", "to_schema", knownvalue.Int64Exact(5)),
				check("minor", "migrations", knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectPartial(map[string]knownvalue.Check{
					"id": knownvalue.StringExact("0005_skill_library"), "forward_only": knownvalue.Bool(true), "destructive": knownvalue.Bool(false),
				})})),

				check("major", "kind", knownvalue.StringExact("major")),
				check("major", "destructive", knownvalue.Bool(true)),
				check("major", "hops", knownvalue.ListExact([]knownvalue.Check{
					knownvalue.ObjectPartial(map[string]knownvalue.Check{"from": knownvalue.StringExact("2.3.1"), "to": knownvalue.StringExact("2.4.0"), "kind": knownvalue.StringExact("minor")}),
					knownvalue.ObjectPartial(map[string]knownvalue.Check{"from": knownvalue.StringExact("2.4.0"), "to": knownvalue.StringExact("3.0.0"), "kind": knownvalue.StringExact("major")}),
				})),
				check("major", "migrations", knownvalue.ListSizeExact(2)),
				check("major", "breaking_changes", knownvalue.ListSizeExact(2)),
				check("major", "migration_guide_urls", knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact("https://internal.september.wtf/platform/resources/migration-guides#v2-to-v3"),
				})),

				check("back", "kind", knownvalue.StringExact("downgrade")),
				check("back", "requires_restore", knownvalue.Bool(true)),
				check("back", "valid", knownvalue.Bool(false)),
				check("back", "reason", knownvalue.NotNull()),
			},
		}},
	})
}

func TestAccUpgradePathDataSource_unknownVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: h.ProviderBlock() + `data "engine_upgrade_path" "x" { ` + "\n" + `from = "2.3.1"` + "\n" + `to = "2.5.0"` + "\n}",
				// The error points at the "to" line and names the version and the catalog.
				ExpectError: errorLike(`to = "2.5.0" version "2.5.0" is not in the release catalog (known versions: 2.2.0, 2.3.0, 2.3.1, 2.4.0, 2.4.1, 3.0.0).`),
			},
			{
				Config:      h.ProviderBlock() + `data "engine_upgrade_path" "x" { ` + "\n" + `from = "1.0.0"` + "\n" + `to = "2.4.0"` + "\n}",
				ExpectError: errorLike(`from = "1.0.0" version "1.0.0" is not in the release catalog`),
			},
			{
				Config:      h.ProviderBlock() + `data "engine_upgrade_path" "x" { ` + "\n" + `from = "2.3.1"` + "\n" + `to = "newest"` + "\n}",
				ExpectError: errorLike(`"newest" is not a valid version`),
			},
		},
	})
}
