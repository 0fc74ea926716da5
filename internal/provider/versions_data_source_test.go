package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccVersionsDataSource_basic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1})
	all, from := "data.engine_versions.all", "data.engine_versions.from"
	target := func(version, kind string) knownvalue.Check {
		return knownvalue.ObjectExact(map[string]knownvalue.Check{"version": knownvalue.StringExact(version), "kind": knownvalue.StringExact(kind)})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_versions" "all" {}

data "engine_versions" "from" {
  from = "2.3.1"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(all, tfjsonpath.New("latest"), knownvalue.StringExact("3.0.0")),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions"), knownvalue.ListSizeExact(6)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(0).AtMapKey("version"), knownvalue.StringExact("2.2.0")),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(3).AtMapKey("has_migrations"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(3).AtMapKey("migrations").AtSliceIndex(0).AtMapKey("forward_only"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(4).AtMapKey("has_migrations"), knownvalue.Bool(false)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(5).AtMapKey("breaking"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(5).AtMapKey("migrations").AtSliceIndex(0).AtMapKey("destructive"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("versions").AtSliceIndex(5).AtMapKey("migration_guide_url"), knownvalue.NotNull()),
				statecheck.ExpectKnownValue(all, tfjsonpath.New("targets"), knownvalue.Null()),
				statecheck.ExpectKnownValue(from, tfjsonpath.New("targets"), knownvalue.ListExact([]knownvalue.Check{
					target("2.4.0", "minor"), target("2.4.1", "minor"), target("3.0.0", "major"),
				})),
			},
		}},
	})
}

func TestAccVersionsDataSource_unknownFrom(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      h.ProviderBlock() + `data "engine_versions" "x" { from = "2.5.0" }`,
			ExpectError: errorLike(`version "2.5.0" is not in the release catalog (known versions: 2.2.0, 2.3.0, 2.3.1, 2.4.0, 2.4.1, 3.0.0)`),
		}},
	})
}
