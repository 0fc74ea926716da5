package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// betweenPlanAndApply is a pre-apply plan check that acts instead of checking: the testing
// framework saves the plan, runs the pre-apply checks, then applies that saved plan, so this is
// "someone changes the engine after the plan was reviewed", as in a pull-request workflow.
type betweenPlanAndApply func()

func (f betweenPlanAndApply) CheckPlan(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
	f()
}

// expectBefore checks the value an attribute had before the plan: the state it was planned
// from (in a destroy plan, the refreshed state a policy reads as `change.before`).
type expectBefore struct {
	addr  string
	path  tfjsonpath.Path
	check knownvalue.Check
}

func (e expectBefore) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.addr {
			continue
		}
		v, err := tfjsonpath.Traverse(rc.Change.Before, e.path)
		if err == nil {
			err = e.check.CheckValue(v)
		}
		if err != nil {
			resp.Error = fmt.Errorf("%s: %s before the plan: %w", e.addr, e.path, err)
		}
		return
	}
	resp.Error = fmt.Errorf("%s is not in the plan", e.addr)
}

// upgradeOutOfBand moves user's engine to version through the API, as another tool or person
// would, naming snapshotID; it returns the operation.
func (h *harness) upgradeOutOfBand(user, version, snapshotID string) api.Operation {
	h.t.Helper()
	ctx := context.Background()
	op, err := h.Client.Upgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: version, SnapshotID: snapshotID})
	if err == nil {
		op, err = h.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Status != api.OpSucceeded {
		h.t.Fatalf("out-of-band upgrade of %s to %s: %v (%+v)", user, version, err, op)
	}
	return op
}

// A saved plan refused at apply because the engine moved ("Engine Changed Since Plan ... Nothing
// was started") leaves state exactly as it was: not the refused plan's allow_major_upgrade or
// auto_snapshot, and no planned_upgrade for an upgrade that never ran.
func TestAccRelease_refusedApplyLeavesState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	refused := h.releaseConfig(`
  version             = "2.4.0"
  auto_snapshot       = true
  allow_major_upgrade = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.0"`),
		}, {
			Config: refused,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				betweenPlanAndApply(func() { h.upgradeOutOfBand("user-0001", "2.3.1", "") }),
			}},
			ExpectError: errorLike("Engine Changed Since Plan"),
		}, {
			// The stored state, as the refused apply left it (this plan does not refresh).
			Config:             refused,
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
			ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
				expectBefore{releaseAddr, tfjsonpath.New("allow_major_upgrade"), knownvalue.Bool(false)},
				expectBefore{releaseAddr, tfjsonpath.New("auto_snapshot"), knownvalue.Bool(false)},
				expectBefore{releaseAddr, tfjsonpath.New("version"), knownvalue.StringExact("2.3.0")},
				expectBefore{releaseAddr, tfjsonpath.New("planned_upgrade"), knownvalue.Null()},
				expectBefore{releaseAddr, tfjsonpath.New("last_attempt"), knownvalue.Null()},
			}},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpSnapshot, 0)),
		}},
	})
}

// pre_upgrade_snapshot_id is null in every plan that records no snapshot, create or update, and
// unknown in every plan where the apply decides it (auto_snapshot): never "" in one and null in
// the other.
func TestAccRelease_preUpgradeSnapshotIDPlannedAlike(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	snapID := tfjsonpath.New("pre_upgrade_snapshot_id")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			// Create, a patch: no snapshot.
			Config: h.releaseConfig(`version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionCreate),
				plancheck.ExpectKnownValue(releaseAddr, snapID, knownvalue.Null()),
			}},
		}, {
			// Update, a migration: the snapshot auto_snapshot takes.
			Config: h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				expectBefore{releaseAddr, snapID, knownvalue.Null()},
				plancheck.ExpectUnknownValue(releaseAddr, snapID),
			}},
		}},
	})
}
