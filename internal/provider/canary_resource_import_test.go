package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// Importing a canary by its id recovers its own record from the control plane (#21 item 5): an
// engine moved 2.3.1 -> 2.4.0 by the canary, then 2.4.0 -> 2.4.1 -> 2.4.0 out of band, keeps 2.3.1
// as its rollback target (its history's last upgrade to 2.4.0 came from the bad 2.4.1), and
// steps, bake_time, max_parallel, the analysis settings and last_analysis are the canary's, not
// defaults. Without the record (deleted here), the old import form falls back to the history and
// gets the bad patch, which is why it warns.
func TestAccCanary_importRecoversRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 4, BrainRows: 1})
	cfg := canaryHCL(h, 4, "2.4.0", `
  steps        = [50, 100]
  bake_time    = "1s"
  max_parallel = 3
  hold_at      = 50
  analysis = {
    max_error_rate = 0.2
  }
`)
	var moved string
	bounce := func() {
		ids, err := h.Client.AllEngineIDs(context.Background(), client.ListEnginesOptions{Version: "2.4.0"})
		if err != nil || len(ids) != 2 {
			t.Fatalf("engines on 2.4.0 before the bounce: %v, %v", ids, err)
		}
		moved = ids[0]
		h.upgradeOutOfBand(moved, "2.4.1", "")
		ctx := context.Background()
		op, err := h.Client.Upgrade(ctx, moved, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.4.0", AllowDowngrade: true})
		if err == nil {
			op, err = h.Client.WaitOperation(ctx, op.ID, nil)
		}
		if err != nil || op.Status != api.OpSucceeded {
			t.Fatalf("out-of-band 2.4.1 -> 2.4.0 of %s: %v (%+v)", moved, err, op)
		}
	}
	stableOf := func(want string) resource.ImportStateCheckFunc {
		return func(s []*terraform.InstanceState) error {
			if got := s[0].Attributes["stable_versions."+moved]; got != want {
				return fmt.Errorf("imported stable_versions[%s] = %q, want %q", moved, got, want)
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig:    bounce,
				ResourceName: canaryAddr,
				ImportState:  true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[canaryAddr].Primary.ID, nil
				},
				ImportStateVerify: true,
				// planned_step and next_step describe a plan, not the canary.
				ImportStateVerifyIgnore: []string{"timeouts", "next_step", "planned_step"},
				ImportStateCheck:        stableOf("2.3.1"),
			},
			{
				// The old form names the same id and finds the same record.
				ResourceName: canaryAddr,
				ImportState:  true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					rs := s.RootModule().Resources[canaryAddr]
					return "2.4.0:" + rs.Primary.Attributes["cohort_seed"] + ":" + strings.Join(seedUsers(4), ","), nil
				},
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "next_step", "planned_step"},
				ImportStateCheck:        stableOf("2.3.1"),
			},
			{
				PreConfig: func() {
					if err := h.Client.DeleteCanary(context.Background(), canaryID("2.4.0", seedUsers(4))); err != nil {
						t.Fatal(err)
					}
				},
				ResourceName: canaryAddr,
				ImportState:  true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					rs := s.RootModule().Resources[canaryAddr]
					return "2.4.0:" + rs.Primary.Attributes["cohort_seed"] + ":" + strings.Join(seedUsers(4), ","), nil
				},
				ImportStateCheck: stableOf("2.4.1"),
			},
			{
				ResourceName:  canaryAddr,
				ImportState:   true,
				ImportStateId: canaryID("2.4.0", seedUsers(4)),
				ExpectError:   mustRegexp(`Canary Record Not Found`),
			},
		},
	})
}
