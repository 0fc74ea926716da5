package provider

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// TestAccCanary_rehearsalIDs: a canary's rehearsals are checked at plan like a release's: one
// that failed (or rehearsed another path), or one of an engine outside the canary, is a plan
// error naming the reason; a passed rehearsal of one of its engines plans.
func TestAccCanary_rehearsalIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 4})
	lenient := api.RehearsalAnalysis{BaselineTolerance: 10, MaxNewWarningKinds: 5}
	passed := h.rehearse("user-0001", api.RehearsalRequest{Version: "2.4.0", Analysis: lenient})
	outside := h.rehearse("user-0004", api.RehearsalRequest{Version: "2.4.0", Analysis: lenient})
	failed := h.rehearse("user-0002", api.RehearsalRequest{Version: "2.4.1", Analysis: api.RehearsalAnalysis{MaxErrorRate: new(0.05)}})
	if passed.Status != api.RehearsalPassed || outside.Status != api.RehearsalPassed || failed.Status != api.RehearsalFailed {
		t.Fatalf("rehearsals: %s %s %s", passed.Status, outside.Status, failed.Status)
	}
	cfg := func(ids ...string) string {
		return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_canary" "c" {
  version       = "2.4.0"
  user_ids      = ["user-0001", "user-0002", "user-0003"]
  steps         = [50, 100]
  bake_time     = "0s"
  rehearsal_ids = ["%s"]
}
`, strings.Join(ids, `", "`))
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg(passed.ID, failed.ID), PlanOnly: true, ExpectError: errorLike("it rehearsed 2.3.1 -> 2.4.1, and this plan upgrades " +
				"2.3.1 -> 2.4.0")},
			{Config: cfg(failed.ID), PlanOnly: true, ExpectError: errorLike("it did not pass: failed; error_rate: staging")},
			{Config: cfg(outside.ID), PlanOnly: true, ExpectError: errorLike("rehearsed user user-0004's engine, which is not one of this " +
				"canary's user_ids")},
			{Config: cfg(passed.ID), PlanOnly: true, ExpectNonEmptyPlan: true},
		},
	})
}
