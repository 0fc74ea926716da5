package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

const releaseAddr = "engine_release.r"

// releaseConfig is a provider block plus one engine_release for user-0001 with the given body.
func (h *harness) releaseConfig(body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_release" "r" {
  user_id = "user-0001"
%s
}
`, body)
}

func TestAccRelease_adoptWithoutChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.1"`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("previous_version"), knownvalue.StringExact("2.3.1")),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("schema_version"), knownvalue.Int64Exact(4)),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade"), knownvalue.Null()),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt"), knownvalue.Null()),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 0)),
		}, {
			Config:           h.releaseConfig(`version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
		}},
	})
}

func TestAccRelease_patchNeedsNoSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("kind"), knownvalue.StringExact("patch")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("requires_snapshot"), knownvalue.Bool(false)),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("previous_version"), knownvalue.StringExact("2.3.0")),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1),
				h.expectOperations("user-0001", api.OpSnapshot, 0)),
		}},
	})
}

func TestAccRelease_migrationWithoutSnapshotFailsPlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      h.releaseConfig(`version = "2.4.0"`),
			PlanOnly:    true,
			ExpectError: errorLike("Snapshot Required Before Migration"),
		}, {
			Config:      h.releaseConfig(`version = "2.4.0"`),
			ExpectError: errorLike("or set auto_snapshot = true"),
			Check:       h.expectEngine("user-0001", "2.3.1"),
		}},
		CheckDestroy: func(*terraform.State) error {
			if n := h.operations("user-0001", api.OpUpgrade) + h.operations("user-0001", api.OpSnapshot); n != 0 {
				return fmt.Errorf("a refused plan still started %d operations", n)
			}
			return h.expectEngine("user-0001", "2.3.1")(nil)
		},
	})
}

// The reviewed flow: a snapshot resource, the release naming it; the plan JSON carries the
// migrations for policy tools; rows written before the upgrade survive it.
func TestAccRelease_snapshotIDUpgradeKeepsData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	h.writeTurns("user-0001", "before-upgrade", 4)
	config := h.ProviderBlock() + `
resource "engine_brain_snapshot" "pre" {
  user_id     = "user-0001"
  description   = "before 2.4.0"
  force_destroy = true
}

resource "engine_release" "r" {
  user_id     = "user-0001"
  version     = "2.4.0"
  snapshot_id = engine_brain_snapshot.pre.id
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("kind"), knownvalue.StringExact("minor")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("requires_snapshot"), knownvalue.Bool(true)),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("forward_only"), knownvalue.Bool(true)),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("migrations").AtSliceIndex(0).AtMapKey("id"),
					knownvalue.StringExact("0005_skill_library")),
				plancheck.ExpectUnknownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("snapshot_id")),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("schema_version"), knownvalue.Int64Exact(5)),
				statecheck.CompareValuePairs(releaseAddr, tfjsonpath.New("pre_upgrade_snapshot_id"), "engine_brain_snapshot.pre", tfjsonpath.New("id"), compare.ValuesSame()),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.0"), h.expectTurns("user-0001", "before-upgrade", 4),
				h.expectOperations("user-0001", api.OpUpgrade, 1), h.expectOperations("user-0001", api.OpSnapshot, 1)),
		}},
	})
}

func TestAccRelease_autoSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	h.writeTurns("user-0001", "kept", 2)
	var snapID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectUnknownValue(releaseAddr, tfjsonpath.New("pre_upgrade_snapshot_id")),
			}},
			Check: resource.ComposeTestCheckFunc(
				h.expectEngine("user-0001", "2.4.0"), h.expectTurns("user-0001", "kept", 2),
				func(s *terraform.State) error {
					snapID = s.RootModule().Resources[releaseAddr].Primary.Attributes["pre_upgrade_snapshot_id"]
					snap, err := h.Client.GetSnapshot(context.Background(), snapID)
					if err != nil {
						return fmt.Errorf("pre_upgrade_snapshot_id %q: %w", snapID, err)
					}
					if snap.Status != api.SnapshotVerified || snap.EngineVersion != "2.3.1" || snap.SchemaVersion != 4 || snap.UserID != "user-0001" {
						return fmt.Errorf("auto snapshot is %+v, want a verified 2.3.1/schema 4 snapshot of user-0001", snap)
					}
					return nil
				}),
		}},
	})
}

func TestAccRelease_majorNeedsAllow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`
  version       = "3.0.0"
  auto_snapshot = true`),
			ExpectError: errorLike("Major Upgrade Not Allowed"),
		}, {
			Config: h.releaseConfig(`
  version             = "3.0.0"
  auto_snapshot       = true
  allow_major_upgrade = true`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("kind"), knownvalue.StringExact("major")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("destructive"), knownvalue.Bool(true)),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("migration_guide_url"), knownvalue.NotNull()),
			}},
			Check: h.expectEngine("user-0001", "3.0.0"),
		}},
	})
}

// Destroy after a migrating upgrade restores the pre-upgrade snapshot at the old version: the
// rows written before it are back, the rows written after are gone, and the destroy plan said
// exactly how many writes would be lost.
func TestAccRelease_rollbackOnDestroy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	h.writeTurns("user-0001", "before-upgrade", 3)
	config := h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.1"`),
		}, {
			Config: config,
			Check:  h.expectEngine("user-0001", "2.4.0"),
		}, {
			PreConfig: func() { h.writeTurns("user-0001", "after-upgrade", 5) },
			Config:    config,
			Check: func(s *terraform.State) error {
				// The destroy plan's warning, computed exactly as ModifyPlan does it.
				attrs := s.RootModule().Resources[releaseAddr].Primary.Attributes
				ctx := context.Background()
				e := h.Engine("user-0001")
				snap, err := h.Client.GetSnapshot(ctx, attrs["pre_upgrade_snapshot_id"])
				if err != nil {
					return err
				}
				vs, err := h.Client.Versions(ctx)
				if err != nil {
					return err
				}
				cat, err := upgrade.NewCatalog(vs)
				if err != nil {
					return err
				}
				diags := destroyPlanDiags(cat, e, attrs["previous_version"], snap.ID, &snap)
				if diags.HasError() || len(diags) != 1 {
					return fmt.Errorf("destroy plan diagnostics: %v", diags)
				}
				want := fmt.Sprintf("%d brain writes made since then will be lost", e.BrainWrites-snap.BrainWrites)
				if e.BrainWrites-snap.BrainWrites < 5 || !strings.Contains(diags[0].Detail(), want) || !strings.Contains(diags[0].Detail(), "from 2.4.0 to 2.3.1") {
					return fmt.Errorf("destroy warning %q does not state the loss (%s)", diags[0].Detail(), want)
				}
				return nil
			},
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(
			h.expectEngine("user-0001", "2.3.1"),
			h.expectTurns("user-0001", "before-upgrade", 3),
			h.expectTurns("user-0001", "after-upgrade", 0),
			h.expectOperations("user-0001", api.OpRestore, 1),
		),
	})
}

func TestAccRelease_onDestroyKeep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`
  version    = "2.3.1"
  on_destroy = "keep"`),
			Check: h.expectEngine("user-0001", "2.3.1"),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
	})
}

// The bad patch 2.4.1 passes health but regresses evals: the gate rolls the engine back, the
// apply fails naming the regression, state says what runs, and the next plan is not empty.
func TestAccRelease_evalGateRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	gate := `
  eval_gate = {
    suite          = "golden"
    max_regression = 0.05
  }`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.4.0"` + gate),
		}, {
			Config:      h.releaseConfig(`version = "2.4.1"` + gate),
			ExpectError: errorLike("eval gate failed"),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				h.expectEngine("user-0001", "2.4.0"),
				resource.TestCheckResourceAttr(releaseAddr, "version", "2.4.0"),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.status", "rolled_back"),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.version", "2.4.1"),
				resource.TestMatchResourceAttr(releaseAddr, "last_attempt.error", regexp.MustCompile(`regression`)),
			),
		}, {
			Config:             h.releaseConfig(`version = "2.4.1"` + gate),
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}, {
			Config:           h.releaseConfig(`version = "2.4.0"` + gate),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
		}},
	})
}

// An upgrade made outside Terraform shows as drift, and apply converges back.
func TestAccRelease_driftIsShownAndConverged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	config := h.releaseConfig(`
  version         = "2.3.0"
  allow_downgrade = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
		}, {
			PreConfig: func() {
				ctx := context.Background()
				op, err := h.Client.Upgrade(ctx, "user-0001", "out-of-band", 0, api.UpgradeRequest{Version: "2.3.1"})
				if err == nil {
					_, err = h.Client.WaitOperation(ctx, op.ID, nil)
				}
				if err != nil {
					t.Fatalf("out-of-band upgrade: %v", err)
				}
			},
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("from"), knownvalue.StringExact("2.3.1")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("action"), knownvalue.StringExact("downgrade")),
			}},
			Check: h.expectEngine("user-0001", "2.3.0"),
		}},
	})
}

// The engine is deprovisioned and a new one takes the user's place: the release recorded for the
// old engine (its previous version, its snapshot) is gone, and the plan adopts the new one.
func TestAccRelease_disappears(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	config := h.releaseConfig(`version = "2.3.1"`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				if err := h.Server.DeleteEngine("user-0001"); err != nil {
					return err
				}
				return h.Server.CreateEngine("user-0001", "2.3.1")
			},
			ExpectNonEmptyPlan: true,
		}, {
			Config:           config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionCreate)}},
			Check:            h.expectEngine("user-0001", "2.3.1"),
		}},
	})
}

func TestAccRelease_import(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.1"`),
		}, {
			ResourceName:                         releaseAddr,
			ImportState:                          true,
			ImportStateId:                        "user-0001",
			ImportStateVerify:                    true,
			ImportStateVerifyIdentifierAttribute: "id",
		}},
	})
}

// An apply cut short while the upgrade runs leaves it running on the control plane; the next
// apply attaches to it instead of starting another.
func TestAccRelease_interruptedApplyResumes(t *testing.T) {
	t.Parallel()
	// Each nominal second takes 0.2 s: the upgrade runs for a couple of seconds.
	h := newHarness(t, harnessOptions{Version: "2.3.0", TimeScale: 0.2})
	body := func(timeout string) string {
		return fmt.Sprintf(`
  version = "2.3.1"
  timeouts {
    update = %q
  }`, timeout)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.0"`),
		}, {
			Config:      h.releaseConfig(body("300ms")),
			ExpectError: errorLike("Engine Upgrade Still Running"),
		}, {
			Config: h.releaseConfig(body("5m")),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
		}},
	})
}

// An engine busy with someone else's operation is waited for, then upgraded.
func TestAccRelease_waitsForBusyEngine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0", TimeScale: 0.2})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.0"`),
		}, {
			PreConfig: func() {
				if _, err := h.Client.RunEval(context.Background(), "user-0001", "busy-eval", api.EvalRequest{Suite: "long"}); err != nil {
					t.Fatal(err)
				}
				if h.Engine("user-0001").CurrentOperationID == "" {
					t.Fatal("the eval finished before the apply could meet it; raise the time scale")
				}
			},
			Config: h.releaseConfig(`version = "2.3.1"`),
			Check:  resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
		}},
	})
}

// Outside the rollout window the apply refuses to start the upgrade and names the next opening.
func TestAccRelease_rolloutWindowRefusesOutside(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	// A window on tomorrow's weekday only: today is never inside it.
	tomorrow := upgrade.Weekdays[(int(time.Now().UTC().Weekday())+7)%7] // Weekdays starts on Monday
	window := fmt.Sprintf(`
  rollout_window = {
    days  = [%q]
    start = "00:00"
    end   = "23:59"
  }`, tomorrow)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.0"` + window),
		}, {
			Config:      h.releaseConfig(`version = "2.3.1"` + window),
			ExpectError: errorLike("Outside The Rollout Window"),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check:              resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.0"), h.expectOperations("user-0001", api.OpUpgrade, 0)),
		}},
	})
}

// A destroy that must restore a snapshot which is gone or corrupt fails at plan, saying how to
// proceed; one that needs no restore only warns.
func TestReleaseDestroyPlanRefusesUnusableSnapshot(t *testing.T) {
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	vs, err := h.Client.Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := upgrade.NewCatalog(vs)
	if err != nil {
		t.Fatal(err)
	}
	e := h.Engine("user-0001")
	gone := destroyPlanDiags(cat, e, "2.3.1", "snap-gone", nil)
	if !gone.HasError() || !strings.Contains(gone[0].Detail(), `on_destroy = "keep"`) || !strings.Contains(gone[0].Detail(), "snap-gone") {
		t.Fatalf("gone snapshot: %v", gone)
	}
	corrupt := destroyPlanDiags(cat, e, "2.3.1", "snap-x", &api.Snapshot{ID: "snap-x", Status: api.SnapshotCorrupt})
	if !corrupt.HasError() || !strings.Contains(corrupt[0].Detail(), "corrupt") {
		t.Fatalf("corrupt snapshot: %v", corrupt)
	}
	none := destroyPlanDiags(cat, e, "2.3.1", "", nil)
	if !none.HasError() || !strings.Contains(none[0].Summary(), "Rollback Impossible") {
		t.Fatalf("no snapshot recorded: %v", none)
	}
	same := destroyPlanDiags(cat, e, "2.4.0", "", nil)
	if len(same) != 0 {
		t.Fatalf("engine already on the target: %v", same)
	}
	patch := destroyPlanDiags(cat, api.Engine{UserID: "u", EngineVersion: "2.4.1", SchemaVersion: 5, Status: api.StatusRunning}, "2.4.0", "", nil)
	if patch.HasError() || len(patch) != 1 || !strings.Contains(patch[0].Detail(), "no data is lost") {
		t.Fatalf("same-schema rollback: %v", patch)
	}
}

// Upgrade, roll back by destroy, upgrade again: the brain (and its write counter) is back to
// what the first snapshot held, yet the second upgrade takes its own snapshot after the restore.
func TestAccRelease_autoSnapshotAfterRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	config := h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			Check:  h.expectEngine("user-0001", "2.4.0"),
		}, {
			Config: h.ProviderBlock(),
			Check:  resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpRestore, 1)),
		}, {
			Config: config,
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.0"), h.expectOperations("user-0001", api.OpUpgrade, 2),
				h.expectOperations("user-0001", api.OpSnapshot, 2)),
		}},
	})
}

// The automatic rollback's error says what was done: a snapshot restore only when one ran, and
// "state records" only for an update, whose state really does.
func TestReleaseRolledBackDiag(t *testing.T) {
	t.Parallel()
	redeploy := rolledBackDiag("user-0001", "2.3.1", "2.4.0", "the migrate step failed: INTERRUPTED", upgrade.RollbackPlan{To: "2.3.1", SnapshotID: "snap-1"}, "2.3.1", true)
	if d := redeploy.Detail(); strings.Contains(d, "snap-1") || strings.Contains(d, "State records") || !strings.Contains(d, "redeployed on the same brain") || !strings.Contains(d, "saved nothing to state") {
		t.Errorf("create rolled back by a redeploy:\n%s", d)
	}
	restore := rolledBackDiag("user-0001", "2.3.1", "2.4.0", "the boot step failed", upgrade.RollbackPlan{To: "2.3.1", SnapshotID: "snap-1", Restore: true}, "2.3.1", false)
	if d := restore.Detail(); !strings.Contains(d, "restored from snapshot snap-1") || !strings.Contains(d, `State records that it runs 2.3.1 and last_attempt.status = "rolled_back"`) {
		t.Errorf("update rolled back by a restore:\n%s", d)
	}
	failedCreate := rollbackFailedAfterUpgradeDiag("user-0001", "2.3.1", "2.4.0", "the health step failed", "restore refused", "snap-1", "2.3.1", true)
	if d := failedCreate.Detail(); strings.Contains(d, "State records") || !strings.Contains(d, "saved nothing to state") {
		t.Errorf("create whose rollback failed, engine still on 2.3.1:\n%s", d)
	}
	failedUpdate := rollbackFailedAfterUpgradeDiag("user-0001", "2.3.1", "2.4.0", "the health step failed", "restore refused", "snap-1", "2.4.0", false)
	if d := failedUpdate.Detail(); !strings.Contains(d, "State records that the engine runs 2.4.0") || !strings.Contains(d, "snap-1") {
		t.Errorf("update whose rollback failed:\n%s", d)
	}
	stuck := rolledBackDiag("user-0001", "2.3.1", "2.4.0", "the health step failed", upgrade.RollbackPlan{To: "2.3.1"}, "2.4.0", true)
	if d := stuck.Detail(); strings.Contains(d, "is healthy") || !strings.Contains(d, "runs 2.4.0 now") || !strings.Contains(d, "tainted") {
		t.Errorf("create whose engine did not come back:\n%s", d)
	}
}

// A create whose migration fails is rolled back by a snapshot restore; its error says so, and says
// that nothing was saved to state (it used to claim "State records ... rolled_back").
func TestAccRelease_createRolledBackSaysWhatHappened(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Faults: true})
	if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultMigrationFail, UserID: "user-0001", Count: 1}); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      h.releaseConfig("  version       = \"2.4.0\"\n  auto_snapshot = true"),
			ExpectError: regexp.MustCompile(`(?s)Engine Upgrade Rolled Back.*restored\s+from\s+snapshot\s+snap-[0-9a-f]+\s+at\s+2\.3\.1.*This\s+create\s+saved\s+nothing\s+to\s+state`),
			Check:       resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpRestore, 1)),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true, // the create, again
			Check: func(s *terraform.State) error {
				if rs, ok := s.RootModule().Resources[releaseAddr]; ok {
					return fmt.Errorf("the rolled-back create left %s in state: %v", releaseAddr, rs.Primary.Attributes)
				}
				return nil
			},
		}},
	})
}
