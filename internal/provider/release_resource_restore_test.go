package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// A restore made after the release's upgrade brings the write counter back with the brain, so
// the destroy plan counts only the writes the brain still holds since the pre-upgrade snapshot:
// 2 turns kept by the restored snapshot, not the 3 the restore already discarded as well.
func TestAccRelease_destroyPlanDataLossAfterRestore(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	config := h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("rollback_writes_lost"), knownvalue.Int64Exact(0)),
			}},
		}, {
			PreConfig: func() {
				h.writeTurns("user-0001", "kept", 2)
				s1 := h.snapshotNow("user-0001")
				h.writeTurns("user-0001", "discarded", 3)
				h.restoreOutOfBand("user-0001", s1, "2.4.0")
			},
			Config:           config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			Check: func(s *terraform.State) error {
				// The destroy plan's warning, computed as ModifyPlan does it.
				attrs := s.RootModule().Resources[releaseAddr].Primary.Attributes
				ctx := context.Background()
				snap, err := h.Client.GetSnapshot(ctx, attrs["pre_upgrade_snapshot_id"])
				if err != nil {
					return err
				}
				cat, err := h.catalog()
				if err != nil {
					return err
				}
				diags := destroyPlanDiags(cat, h.Engine("user-0001"), attrs["previous_version"], snap.ID, &snap)
				if len(diags) != 1 || !strings.Contains(diags[0].Detail(), "2 brain writes made since then will be lost") {
					return fmt.Errorf("destroy plan diagnostics %v do not say 2 writes are lost", diags)
				}
				return nil
			},
		}, {
			Config:  config,
			Destroy: true,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionDestroy),
				expectBefore{releaseAddr, tfjsonpath.New("rollback_writes_lost"), knownvalue.Int64Exact(2)},
			}},
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"),
			h.expectTurns("user-0001", "kept", 0), h.expectTurns("user-0001", "discarded", 0),
			func(*terraform.State) error {
				// The snapshot the rollback restored counts as the engine does afterwards.
				e := h.Engine("user-0001")
				snaps, err := h.Client.ListSnapshots(context.Background(), "user-0001", client.ListSnapshotsOptions{})
				if err != nil {
					return err
				}
				for _, s := range snaps {
					if s.EngineVersion == "2.3.1" {
						if s.BrainWrites != e.BrainWrites {
							return fmt.Errorf("after the rollback the engine reports brain_writes %d, its restored snapshot %s holds %d", e.BrainWrites, s.ID, s.BrainWrites)
						}
						return nil
					}
				}
				return fmt.Errorf("no snapshot at 2.3.1 among %d: the rollback restored none", len(snaps))
			}),
	})
}
