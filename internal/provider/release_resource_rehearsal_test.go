package provider

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// rehearse runs a rehearsal through the harness's own client and returns it once it is done.
func (h *harness) rehearse(user string, req api.RehearsalRequest) api.Rehearsal {
	h.t.Helper()
	ctx := context.Background()
	op, err := h.Client.StartRehearsal(ctx, user, client.NewIdempotencyKey(), req)
	if err == nil {
		op, err = h.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Status != api.OpSucceeded {
		h.t.Fatalf("rehearsal of %s to %s: %v (%+v)", user, req.Version, err, op.Error)
	}
	reh, err := h.Client.GetRehearsal(ctx, op.Result.RehearsalID)
	if err != nil {
		h.t.Fatal(err)
	}
	return reh
}

func (h *harness) releaseWithRehearsal(body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_release" "r" {
  user_id             = "user-0001"
  version             = "3.0.0"
  auto_snapshot       = true
  allow_major_upgrade = true
%s
}
`, body)
}

// TestAccRelease_rehearsalCheckedAtPlan: a release naming a rehearsal plans only when the
// rehearsal passed, is of this engine and this path, ran on a snapshot of the brain as it is
// now, and is recent enough; each other case is a plan error naming the reason. With a passed
// rehearsal the plan carries its summary in planned_upgrade.rehearsal.
func TestAccRelease_rehearsalCheckedAtPlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1", Engines: 2})
	old := h.snapshotNow("user-0001")
	h.upgradeOutOfBand("user-0001", "2.4.0", old)
	h.upgradeOutOfBand("user-0002", "2.4.0", h.snapshotNow("user-0002"))
	lenient := api.RehearsalAnalysis{BaselineTolerance: 10, MaxNewWarningKinds: 5}
	passed := h.rehearse("user-0001", api.RehearsalRequest{Version: "3.0.0", Analysis: lenient})
	otherEngine := h.rehearse("user-0002", api.RehearsalRequest{Version: "3.0.0", Analysis: lenient})
	otherPath := h.rehearse("user-0001", api.RehearsalRequest{Version: "2.4.1", Analysis: lenient})
	olderSnapshot := h.rehearse("user-0001", api.RehearsalRequest{Version: "3.0.0", SnapshotID: old, Analysis: lenient})
	// Turns to replay, so the bad patch's latency shows on the process runtime too.
	h.writeTurns("user-0001", "what changed this week", 20)
	failed := h.rehearse("user-0001", api.RehearsalRequest{Version: "2.4.1", ReplayTurns: 20,
		Analysis: api.RehearsalAnalysis{MaxP99LatencyMS: new(1500.0)}})
	for _, r := range []api.Rehearsal{passed, otherEngine, otherPath, olderSnapshot} {
		if r.Status != api.RehearsalPassed {
			t.Fatalf("rehearsal %s (%s -> %s) did not pass: %+v %+v", r.ID, r.FromVersion, r.ToVersion, r.FailedChecks, r.Error)
		}
	}
	if failed.Status != api.RehearsalFailed {
		t.Fatalf("the 2.4.1 rehearsal did not fail: %+v", failed)
	}
	planError := func(id, extra, reason string) resource.TestStep {
		return resource.TestStep{Config: h.releaseWithRehearsal(fmt.Sprintf("  rehearsal_id = %q\n%s", id, extra)), PlanOnly: true,
			ExpectError: errorLike(reason)}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			planError(failed.ID, "", "it did not pass: failed; p99_latency_ms: staging"),
			planError(otherEngine.ID, "", "it rehearsed user user-0002's engine, not user-0001's"),
			planError(otherPath.ID, "", "it rehearsed 2.4.0 -> 2.4.1, and this plan upgrades 2.4.0 -> 3.0.0"),
			planError(olderSnapshot.ID, "", "at brain schema 4, and the engine's brain is at schema 5 now"),
			{
				PreConfig:   func() { time.Sleep(1100 * time.Millisecond) },
				Config:      h.releaseWithRehearsal(fmt.Sprintf("  rehearsal_id = %q\n  rehearsal_max_age = \"1s\"", passed.ID)),
				PlanOnly:    true,
				ExpectError: errorLike("older than rehearsal_max_age 1s"),
			},
			{Config: h.releaseWithRehearsal("  require_rehearsal = true"), PlanOnly: true, ExpectError: errorLike("Rehearsal Required")},
			{
				Config: h.releaseWithRehearsal(fmt.Sprintf("  rehearsal_id = %q", passed.ID)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("planned_upgrade").AtMapKey("rehearsal").AtMapKey("id"),
						knownvalue.StringExact(passed.ID)),
					plancheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("planned_upgrade").AtMapKey("rehearsal").AtMapKey("status"),
						knownvalue.StringExact("passed")),
					plancheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("planned_upgrade").AtMapKey("rehearsal").AtMapKey("snapshot_id"),
						knownvalue.StringExact(passed.SnapshotID)),
				}},
				Check: func(*terraform.State) error {
					if e := h.Engine("user-0001"); e.EngineVersion != "3.0.0" {
						return fmt.Errorf("engine runs %s after the apply", e.EngineVersion)
					}
					return nil
				},
			},
		},
	})
}
