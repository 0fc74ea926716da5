package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const snapshotAddr = "engine_brain_snapshot.s"

func (h *harness) snapshotConfig(body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_brain_snapshot" "s" {
  user_id = "user-0001"
%s
}
`, body)
}

// snapshotID reads the snapshot id out of state.
func snapshotID(s *terraform.State) string {
	return s.RootModule().Resources[snapshotAddr].Primary.ID
}

func TestAccBrainSnapshot_basic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	h.writeTurns("user-0001", "t", 3)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.snapshotConfig(`
  description   = "before 2.4.0"
  force_destroy = true`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("status"), knownvalue.StringExact("verified")),
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("engine_version"), knownvalue.StringExact("2.3.1")),
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("schema_version"), knownvalue.Int64Exact(4)),
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("retention_days"), knownvalue.Int64Exact(7)),
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("description"), knownvalue.StringExact("before 2.4.0")),
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("sha256"), knownvalue.StringRegexp(hex64)),
			},
			Check: func(s *terraform.State) error {
				attrs := s.RootModule().Resources[snapshotAddr].Primary.Attributes
				snap, err := h.Client.GetSnapshot(context.Background(), snapshotID(s))
				if err != nil {
					return err
				}
				e := h.Engine("user-0001")
				created, _ := time.Parse(time.RFC3339, attrs["created_at"])
				until, _ := time.Parse(time.RFC3339, attrs["retain_until"])
				switch {
				case attrs["sha256"] != snap.SHA256:
					return fmt.Errorf("state sha256 %s, control plane %s", attrs["sha256"], snap.SHA256)
				case attrs["engine_id"] != e.EngineID || attrs["size_bytes"] != fmt.Sprint(snap.SizeBytes) || snap.SizeBytes <= 0:
					return fmt.Errorf("engine_id/size_bytes wrong: %v vs %+v", attrs, snap)
				case attrs["brain_writes"] != fmt.Sprint(e.BrainWrites) || e.BrainWrites < 3:
					return fmt.Errorf("brain_writes %s, engine counter %d", attrs["brain_writes"], e.BrainWrites)
				case !until.Equal(created.AddDate(0, 0, 7)):
					return fmt.Errorf("retain_until %s is not created_at %s + 7 days", until, created)
				}
				return nil
			},
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectSnapshots("user-0001", 0), h.expectEngine("user-0001", "2.3.1")),
	})
}

var hex64 = mustRegexp(`^[0-9a-f]{64}$`)

func TestAccBrainSnapshot_import(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	config := h.snapshotConfig(`force_destroy = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
		}, {
			ResourceName: snapshotAddr, ImportState: true, ImportStateVerify: true,
			// force_destroy lives only in Terraform; the import starts it at false.
			ImportStateVerifyIgnore: []string{"force_destroy", "timeouts"},
		}},
	})
}

func TestAccBrainSnapshot_disappears(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	config := h.snapshotConfig(`force_destroy = true`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(s *terraform.State) error {
				return h.Client.DeleteSnapshot(context.Background(), snapshotID(s), true)
			},
			ExpectNonEmptyPlan: true,
		}, {
			Config:           config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(snapshotAddr, plancheck.ResourceActionCreate)}},
			Check:            h.expectSnapshots("user-0001", 1),
		}},
	})
}

// Inside retention, the destroy PLAN fails: no DELETE ever reaches the control plane.
func TestAccBrainSnapshot_retentionBlocksDestroy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	config := h.snapshotConfig(`retention_days = 3`)
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config,
			Check:  func(s *terraform.State) error { id = snapshotID(s); return nil },
		}, {
			Config:      config,
			Destroy:     true,
			ExpectError: errorLike("Brain Snapshot Is Inside Its Retention"),
			Check:       func(*terraform.State) error { return nil },
		}, {
			// Proves the plan failed before any delete call, then lets the test clean up.
			PreConfig: func() {
				if n := h.Requests("DELETE /v1/snapshots/" + id); n != 0 {
					t.Fatalf("%d DELETE requests reached the control plane for a retained snapshot", n)
				}
				if _, err := h.Client.GetSnapshot(context.Background(), id); err != nil {
					t.Fatalf("retained snapshot %s is gone: %v", id, err)
				}
			},
			Config: h.snapshotConfig(`
  retention_days = 3
  force_destroy  = true`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(snapshotAddr, plancheck.ResourceActionUpdate)}},
		}},
	})
}

func TestAccBrainSnapshot_forceDestroy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.snapshotConfig(`force_destroy = true`),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectSnapshots("user-0001", 0), h.expectEngine("user-0001", "2.3.1"),
			func(*terraform.State) error {
				if n := h.Requests("DELETE /v1/engines/user-0001"); n != 0 {
					return fmt.Errorf("destroying a snapshot touched the engine")
				}
				return nil
			}),
	})
}

func TestAccBrainSnapshot_updateRetentionInPlace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.snapshotConfig(`force_destroy = true`),
		}, {
			Config: h.snapshotConfig(`
  force_destroy  = true
  retention_days = 30
  description    = "keep a month"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(snapshotAddr, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("retain_until"), knownvalue.NotNull()),
			}},
			Check: func(s *terraform.State) error {
				attrs := s.RootModule().Resources[snapshotAddr].Primary.Attributes
				snap, err := h.Client.GetSnapshot(context.Background(), snapshotID(s))
				if err != nil {
					return err
				}
				if snap.RetentionDays != 30 || snap.Description != "keep a month" || rfc3339(snap.RetainUntil) != attrs["retain_until"] ||
					!snap.RetainUntil.Equal(snap.CreatedAt.AddDate(0, 0, 30).Truncate(time.Second)) && rfc3339(snap.RetainUntil) != rfc3339(snap.CreatedAt.AddDate(0, 0, 30)) {
					return fmt.Errorf("control plane snapshot after update: %+v, state retain_until %s", snap, attrs["retain_until"])
				}
				return nil
			},
		}},
	})
}

// A snapshot file edited on disk reads back as corrupt, and no upgrade may rely on it.
func TestAccBrainSnapshot_corrupt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.snapshotConfig(`force_destroy = true`),
			Check: func(s *terraform.State) error {
				f, err := os.OpenFile(h.Server.SnapshotPath(snapshotID(s)), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = f.WriteString("tampered")
				return err
			},
		}, {
			RefreshState: true,
			Check:        resource.TestCheckResourceAttr(snapshotAddr, "status", api.SnapshotCorrupt),
		}, {
			Config: h.snapshotConfig(`force_destroy = true`) + `
resource "engine_release" "r" {
  user_id     = "user-0001"
  version     = "2.4.0"
  snapshot_id = engine_brain_snapshot.s.id
}
`,
			ExpectError: errorLike("Snapshot Cannot Protect This Upgrade"),
		}},
	})
}

// A create cut short while it waits for the snapshot leaves it pending; the next apply attaches
// to the same operation, and exactly one snapshot exists.
func TestAccBrainSnapshot_interruptedCreate(t *testing.T) {
	t.Parallel()
	// Verification takes ~25 s: the operation is still running when the interrupted apply's
	// plans read it (an update that attaches), with a wide margin over a slow machine.
	h := newHarness(t, harnessOptions{TimeScale: 25, Faults: true})
	body := func(timeout string) string {
		return fmt.Sprintf(`
  force_destroy = true
  timeouts {
    create = %q
  }`, timeout)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			// The first read of the operation hangs past the create timeout, so the apply stops
			// while it waits for the snapshot, after the control plane has named it, however slow
			// the machine; the timeout leaves the engine check and the start ample time.
			PreConfig: func() {
				if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultSlowResponse, Method: "GET",
					PathPrefix: "/v1/operations/", Count: 1, DelayMS: 60000}); err != nil {
					t.Fatal(err)
				}
			},
			Config: h.snapshotConfig(body("8s")),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("status"), knownvalue.StringExact("pending")),
			},
			ExpectNonEmptyPlan: true,
		}, {
			// The update attaches to the running operation and records its result.
			Config: h.snapshotConfig(body("5m")),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(snapshotAddr, tfjsonpath.New("status"), knownvalue.StringExact("verified")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectSnapshots("user-0001", 1), h.expectOperations("user-0001", api.OpSnapshot, 1)),
		}},
	})
}

func TestAccBrainSnapshot_unknownUserFailsPlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
resource "engine_brain_snapshot" "s" {
  user_id = "nobody"
}
`,
			PlanOnly:    true,
			ExpectError: errorLike(`no engine for user "nobody"`),
		}, {
			Config:      h.snapshotConfig(`retention_days = 0`),
			PlanOnly:    true,
			ExpectError: errorLike("retention_days"),
		}},
	})
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }
