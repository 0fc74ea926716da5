package provider

import (
	"context"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestAccInstanceDataSource_basic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// Real traffic into the brain, so brain_writes is a count the test knows, not a seed default.
	res, err := h.Client.WriteTurns(context.Background(), "user-0002", api.TurnsRequest{Count: 7})
	if err != nil {
		t.Fatal(err)
	}
	e := h.Engine("user-0002")
	if e.BrainWrites != res.BrainWrites {
		t.Fatalf("engine reports %d brain writes after writing turns, turns result says %d", e.BrainWrites, res.BrainWrites)
	}
	ds := "data.engine_instance.e"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_instance" "e" {
  user_id = "user-0002"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("user_id"), knownvalue.StringExact("user-0002")),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("engine_id"), knownvalue.StringExact(e.EngineID)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("version"), knownvalue.StringExact("2.3.1")),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("schema_version"), knownvalue.Int64Exact(4)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("status"), knownvalue.StringExact(api.StatusRunning)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("brain_writes"), knownvalue.Int64Exact(res.BrainWrites)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("generation"), knownvalue.Int64Exact(e.Generation)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("health_status"), knownvalue.StringExact(e.Health.Status)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("health_subsystems"), knownvalue.MapSizeExact(len(e.Health.Subsystems))),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("last_health_at"),
					knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`))),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("current_operation_id"), knownvalue.Null()),
			},
		}},
	})
}

func TestAccInstanceDataSource_upgradedEngine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	if err := h.Server.CreateEngine("team-a-7", "2.4.0"); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
data "engine_instance" "e" {
  user_id = "team-a-7"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_instance.e", tfjsonpath.New("version"), knownvalue.StringExact("2.4.0")),
				statecheck.ExpectKnownValue("data.engine_instance.e", tfjsonpath.New("schema_version"), knownvalue.Int64Exact(5)),
			},
		}},
	})
}

func TestAccInstanceDataSource_unknownUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: h.ProviderBlock() + `
data "engine_instance" "e" {
  user_id = "user-9999"
}
`,
				ExpectError: errorLike(`The control plane has no engine for user "user-9999". Check the user_id; data "engine_instances" lists`),
			},
			{
				Config: h.ProviderBlock() + `
data "engine_instance" "e" {
  user_id = "../user-0001"
}
`,
				ExpectError: errorLike(`Attribute user_id must be 1-128 characters of letters, digits`),
			},
		},
	})
	if n := h.Requests("GET /v1/engines/../user-0001"); n != 0 {
		t.Errorf("an invalid user id reached the control plane %d times", n)
	}
}
