package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// TestAccExampleFleetScale applies examples/fleet-scale on a small fleet: each apply takes one
// step (10 % of 30 engines is three, 50 % fifteen), the engine outside the selector's user_id_prefix is
// never touched, and destroy brings every moved engine back to 2.3.1. The same rules at 30 engines
// as at 10,000: the configuration is the one make bench measures.
func TestAccExampleFleetScale(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 30, BrainRows: 1})
	if err := h.Server.CreateEngine("team-a-1", "2.3.1"); err != nil {
		t.Fatal(err)
	}
	vars := configVariables(map[string]string{"canary_version": "2.4.0", "bake_time": "0s"})
	cfg := exampleConfig(t, h, "examples/fleet-scale")
	onVersion := func(version string, want int) resource.TestCheckFunc {
		return func(*terraform.State) error {
			ids, err := h.Client.AllEngineIDs(context.Background(), client.ListEnginesOptions{Version: version})
			if err != nil {
				return err
			}
			if len(ids) != want {
				return fmt.Errorf("%d engines run %s (%v), want %d", len(ids), version, ids, want)
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ConfigVariables: vars, ExpectNonEmptyPlan: true, Check: onVersion("2.4.0", 3), ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValue("moved", knownvalue.Int64Exact(3)),
				statecheck.ExpectKnownOutputValue("current_percent", knownvalue.Int64Exact(10)),
				statecheck.ExpectKnownOutputValue("phase", knownvalue.StringExact("progressing")),
			}},
			{Config: cfg, ConfigVariables: vars, ExpectNonEmptyPlan: true, Check: onVersion("2.4.0", 15), ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValue("current_percent", knownvalue.Int64Exact(50)),
				statecheck.ExpectKnownOutputValue("moved", knownvalue.Int64Exact(15)),
			}},
		},
		CheckDestroy: func(*terraform.State) error {
			if err := onVersion("2.3.1", 31)(nil); err != nil {
				return fmt.Errorf("after destroy: %w", err)
			}
			e, err := h.Client.GetEngine(context.Background(), "team-a-1")
			if err != nil {
				return err
			}
			if e.Generation != 1 || e.EngineVersion != "2.3.1" {
				return fmt.Errorf("team-a-1, outside user_id_prefix, was touched: %s, generation %d", e.EngineVersion, e.Generation)
			}
			return nil
		},
	})
}
