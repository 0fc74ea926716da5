package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

func selectorCanaryHCL(h *harness, version, body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_canary" "test" {
  version = %q
  selector = {
    version        = "2.3.1"
    user_id_prefix = "user-"
  }
%s
}
`, version, body)
}

// A canary scoped by a selector keeps its per-engine facts on the control plane: state holds no
// user list, stable versions, snapshots or moved list, only counts. Cohorts stay sticky while the
// selector (version = "2.3.1") shrinks as engines move; an engine outside the selector is never
// touched; destroy rolls every moved engine back, restoring its snapshot, and drops the record.
func TestAccCanary_selectorKeepsFactsOnTheControlPlane(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 10, BrainRows: 1})
	if err := h.Server.CreateEngine("team-b-1", "2.3.1"); err != nil {
		t.Fatal(err)
	}
	users := seedUsers(10)
	turns := writeTurns(t, h, users, 2)
	cfg := selectorCanaryHCL(h, "2.4.0", `
  steps        = [10, 50, 100]
  bake_time    = "0s"
  max_parallel = 5
`)
	var id, seed string
	cohort := func(n int) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			rs := s.RootModule().Resources[canaryAddr].Primary
			id, seed = rs.ID, rs.Attributes["cohort_seed"]
			moved := onVersion(h, users, "2.4.0")
			want := append([]string(nil), upgrade.Rank(seed, users)[:n]...)
			sort.Strings(want)
			if !slices.Equal(moved, want) {
				return fmt.Errorf("engines on 2.4.0 = %v, want the first %d by rank: %v", moved, n, want)
			}
			rec, err := h.Client.MovedEngines(context.Background(), id)
			if err != nil {
				return err
			}
			for _, e := range rec {
				if e.StableVersion != "2.3.1" || e.SnapshotID == "" {
					return fmt.Errorf("record of %s: stable %q, snapshot %q; want 2.3.1 and a snapshot", e.UserID, e.StableVersion, e.SnapshotID)
				}
			}
			if len(rec) != n {
				return fmt.Errorf("the record holds %d moved engines, want %d", len(rec), n)
			}
			return nil
		}
	}
	kept := func(moved int64) []statecheck.StateCheck {
		return []statecheck.StateCheck{
			statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("user_ids"), knownvalue.Null()),
			statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("stable_versions"), knownvalue.Null()),
			statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.Null()),
			statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.Null()),
			statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_count"), knownvalue.Int64Exact(moved)),
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ExpectNonEmptyPlan: true, Check: cohort(1), ConfigStateChecks: append(kept(1),
				statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(10)),
				statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(`^move 4 users to 50%: user-`))))},
			{Config: cfg, ExpectNonEmptyPlan: true, Check: cohort(5), ConfigStateChecks: kept(5)},
			{Config: cfg, Check: cohort(10), ConfigStateChecks: append(kept(10),
				statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")))},
			// Promoted: the selector matches no engine any more, the plan is empty.
			{Config: cfg, PlanOnly: true},
		},
		CheckDestroy: func(*terraform.State) error {
			if err := expectFleet(h, append(users, "team-b-1"), map[string]int{"2.3.1/running": 11}); err != nil {
				return fmt.Errorf("after destroy: %w", err)
			}
			if err := checkTurns(h, turns); err != nil {
				return fmt.Errorf("after destroy: %w", err)
			}
			ops := opsByUser(t, h)
			for _, u := range users {
				if ops[u+"/restore"] != 1 {
					return fmt.Errorf("user %s was not restored from its snapshot once: %v", u, ops)
				}
			}
			if ops["team-b-1/upgrade"] != 0 {
				return fmt.Errorf("team-b-1, outside the selector, was upgraded")
			}
			if _, err := h.Client.GetCanary(context.Background(), id); !client.IsNotFound(err) {
				return fmt.Errorf("the canary's record outlived it: %w", err)
			}
			return nil
		},
	})
}

// A selector canary over a bad release aborts and rolls back every moved engine, restoring its
// snapshot, with the rollback targets read from the control plane's record.
func TestAccCanary_selectorAbortRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 10, BrainRows: 1})
	users := seedUsers(10)
	turns := writeTurns(t, h, users, 2)
	cfg := selectorCanaryHCL(h, "2.4.1", `
  steps     = [20, 100]
  bake_time = "0s"
  analysis  = { max_error_rate = 0.05 }
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*aborted at the 20% step.*error_rate`)},
			{
				PreConfig:          func() { abortRolledBack(t, h, users, turns, 2) },
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
			},
		},
	})
}
