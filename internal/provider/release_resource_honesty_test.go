package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
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

// A saved plan whose target someone else reached first (state 2.3.1, version = "2.4.0", the
// engine upgraded to 2.4.0 out of band before the apply): the apply finds the operation that
// moved the engine and records it and the snapshot that protected it, so destroy still rolls
// back, restoring the pre-upgrade rows.
func TestAccRelease_targetReachedElsewhereKeepsRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	h.writeTurns("user-0001", "before-upgrade", 3)
	var op api.Operation
	var snap string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			// An earlier attempt of this resource: last_attempt must not stay on it.
			Config: h.releaseConfig(`version = "2.3.1"`),
		}, {
			Config: h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				betweenPlanAndApply(func() {
					snap = h.snapshotNow("user-0001")
					op = h.upgradeOutOfBand("user-0001", "2.4.0", snap)
				}),
			}},
			Check: resource.ComposeTestCheckFunc(
				h.expectEngine("user-0001", "2.4.0"),
				func(s *terraform.State) error {
					a := s.RootModule().Resources[releaseAddr].Primary.Attributes
					want := map[string]string{
						"pre_upgrade_snapshot_id": snap, "last_attempt.snapshot_id": snap, "last_attempt.operation_id": op.ID,
						"last_attempt.version": "2.4.0", "last_attempt.status": attemptSucceeded, "previous_version": "2.3.0",
					}
					for k, v := range want {
						if a[k] != v {
							return fmt.Errorf("%s = %q, want %q", k, a[k], v)
						}
					}
					return nil
				},
				// Nothing of the provider's own ran: the one upgrade and snapshot are the out-of-band ones.
				h.expectOperations("user-0001", api.OpUpgrade, 2), h.expectOperations("user-0001", api.OpSnapshot, 1),
			),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(
			h.expectEngine("user-0001", "2.3.0"),
			h.expectTurns("user-0001", "before-upgrade", 3),
			h.expectOperations("user-0001", api.OpRestore, 1),
		),
	})
}

// The same, when nothing can protect the move any more (its snapshot was deleted, and no other
// snapshot of the engine at 2.3.1 exists): the apply cannot invent a rollback, so state says
// plainly that there is none, and the destroy plan refuses as before.
func TestAccRelease_targetReachedElsewhereWithoutSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	var op api.Operation
	target := `
  version       = "2.4.0"
  auto_snapshot = true`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.1"`),
		}, {
			Config: h.releaseConfig(target),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				betweenPlanAndApply(func() {
					snap := h.snapshotNow("user-0001")
					op = h.upgradeOutOfBand("user-0001", "2.4.0", snap)
					if err := h.Client.DeleteSnapshot(context.Background(), snap, true); err != nil {
						t.Fatalf("delete snapshot %s: %v", snap, err)
					}
				}),
			}},
			Check: func(s *terraform.State) error {
				a := s.RootModule().Resources[releaseAddr].Primary.Attributes
				if a["last_attempt.operation_id"] != op.ID || a["last_attempt.version"] != "2.4.0" {
					return fmt.Errorf("last_attempt is %s/%s, want the out-of-band operation %s to 2.4.0", a["last_attempt.operation_id"], a["last_attempt.version"], op.ID)
				}
				if a["pre_upgrade_snapshot_id"] != "" || a["last_attempt.snapshot_id"] != "" {
					return fmt.Errorf("a deleted snapshot is recorded: %q / %q", a["pre_upgrade_snapshot_id"], a["last_attempt.snapshot_id"])
				}
				if e := a["last_attempt.error"]; !strings.Contains(e, "no rollback") || !strings.Contains(e, op.ID) {
					return fmt.Errorf("last_attempt.error %q does not say that no rollback exists", e)
				}
				return nil
			},
		}, {
			Config:      h.releaseConfig(target),
			Destroy:     true,
			ExpectError: errorLike("Engine Rollback Impossible"),
		}, {
			Config: h.releaseConfig(target + `
  on_destroy    = "keep"`),
		}},
		CheckDestroy: h.expectEngine("user-0001", "2.4.0"),
	})
}

// The brain writes a destroy's restore would lose are in `terraform show -json` of the destroy
// plan (change.before.rollback_writes_lost, refreshed by the plan), not only in a warning; and
// keeping that figure current adds nothing to a normal plan.
func TestAccRelease_destroyPlanShowsDataLoss(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	config := h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`)
	lost := func() int64 {
		e := h.Engine("user-0001")
		snap, err := h.Client.ListSnapshots(context.Background(), "user-0001", client.ListSnapshotsOptions{})
		if err != nil || len(snap) != 1 {
			t.Fatalf("snapshots of user-0001: %v %v", snap, err)
		}
		return e.BrainWrites - snap[0].BrainWrites
	}
	gets := 0
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("rollback_writes_lost"), knownvalue.Int64Exact(0)),
			}},
		}, {
			// Writes after the upgrade: the refresh picks the figure up, the plan stays empty, and
			// the snapshot's figures are not read again (refresh's engine read is all it costs).
			PreConfig: func() {
				h.writeTurns("user-0001", "after-upgrade", 4)
				gets = h.snapshotReads()
			},
			Config:           config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			Check: func(*terraform.State) error {
				if n := h.snapshotReads(); n != gets {
					return fmt.Errorf("the plan and apply read snapshots %d times, want 0", n-gets)
				}
				return nil
			},
		}, {
			PreConfig: func() { h.writeTurns("user-0001", "after-upgrade", 3) },
			Config:    config,
			Destroy:   true,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionDestroy),
				planCheckFunc(func(p *tfjson.Plan) error {
					n := lost()
					if n < 7 {
						return fmt.Errorf("only %d writes since the snapshot; the test wrote 7 turns", n)
					}
					return expectBeforeValue(p, releaseAddr, "rollback_writes_lost", knownvalue.Int64Exact(n))
				}),
			}},
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectTurns("user-0001", "after-upgrade", 0)),
	})
}

// planCheckFunc is a plan check written as a function of the plan JSON.
type planCheckFunc func(*tfjson.Plan) error

func (f planCheckFunc) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = f(req.Plan)
}

func expectBeforeValue(p *tfjson.Plan, addr, attr string, check knownvalue.Check) error {
	var resp plancheck.CheckPlanResponse
	expectBefore{addr, tfjsonpath.New(attr), check}.CheckPlan(context.Background(), plancheck.CheckPlanRequest{Plan: p}, &resp)
	return resp.Error
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

// What the apply says when a move someone else made reached the plan's target: the operation,
// and the snapshot that protects the move; an older snapshot of the engine at the version it
// left when the operation's own is gone; and plainly that no rollback exists when none is left.
func TestReleaseReachedElsewhereWarns(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	ctx := context.Background()
	r := &releaseResource{data: &providerData{Client: h.Client}}
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	older := h.snapshotNow("user-0001")
	own := h.snapshotNow("user-0001")
	op := h.upgradeOutOfBand("user-0001", "2.4.0", own)
	elsewhere := func() (lastAttempt, string) {
		var diags diag.Diagnostics
		a, migrated := r.reachedElsewhere(ctx, cat, h.Engine("user-0001"), "2.3.1", "", &diags)
		if !migrated || diags.HasError() || len(diags) != 1 || a.OperationID != op.ID || a.Version != "2.4.0" {
			t.Fatalf("attempt %+v (migrated %v), diagnostics %v", a, migrated, diags)
		}
		return a, diags[0].Summary() + ": " + diags[0].Detail()
	}

	a, warning := elsewhere()
	if a.SnapshotID != own || a.Error != "" || !strings.Contains(warning, op.ID) || !strings.Contains(warning, "Snapshot "+own) {
		t.Fatalf("with the operation's own snapshot: attempt %+v, warning %q", a, warning)
	}
	if err := h.Client.DeleteSnapshot(ctx, own, true); err != nil {
		t.Fatal(err)
	}
	if a, warning = elsewhere(); a.SnapshotID != older || a.Error != "" || !strings.Contains(warning, "Snapshot "+older) {
		t.Fatalf("with only an older snapshot at 2.3.1: attempt %+v, warning %q", a, warning)
	}
	if err := h.Client.DeleteSnapshot(ctx, older, true); err != nil {
		t.Fatal(err)
	}
	a, warning = elsewhere()
	if a.SnapshotID != "" || !strings.HasPrefix(a.Error, "no rollback exists") || !strings.Contains(warning, "Without A Rollback") ||
		!strings.Contains(warning, "no rollback exists") || !strings.Contains(warning, `on_destroy = "keep"`) {
		t.Fatalf("with no snapshot left: attempt %+v, warning %q", a, warning)
	}
}
