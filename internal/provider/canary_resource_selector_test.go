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

	"github.com/septemberai/terraform-provider-engine/internal/api"
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
	turns := h.writeFleetTurns(users, 2)
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
				statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"),
					knownvalue.StringRegexp(regexp.MustCompile(`^move 4 users to 50%: user-`))))},
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
	turns := h.writeFleetTurns(users, 2)
	cfg := selectorCanaryHCL(h, "2.4.1", `
  steps     = [10, 100]
  bake_time = "0s"
  analysis  = { max_error_rate = 0.05 }
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*aborted at the 10% step.*error_rate`)},
			{
				PreConfig:          func() { expectFirstStepRolledBack(t, h, users, turns) },
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check:              resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
			},
		},
	})
}

// A selector canary's apply that times out while operations run resumes on the next apply: the
// record kept the snapshot ids the interrupted create was given, and no engine is snapshotted or
// upgraded twice.
func TestAccCanary_selectorInterruptedApplyResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 10, BrainRows: 1, Faults: true})
	users := seedUsers(10)
	cfg := selectorCanaryHCL(h, "2.4.0", `
  steps     = [50, 100]
  bake_time = "0s"
  timeouts {
    create = "4s"
  }
`)
	// counted checks the operations started so far: snaps snapshots and upgrades upgrades in all,
	// never two of a kind on one engine.
	counted := func(snaps, upgrades int) error {
		ops := opsByUser(t, h)
		s, u := 0, 0
		for _, user := range users {
			if ops[user+"/upgrade"] > 1 || ops[user+"/snapshot"] > 1 {
				return fmt.Errorf("user %s: %d upgrades and %d snapshots, never more than one of each", user, ops[user+"/upgrade"], ops[user+"/snapshot"])
			}
			s, u = s+int(ops[user+"/snapshot"]), u+int(ops[user+"/upgrade"])
		}
		if s != snaps || u != upgrades {
			return fmt.Errorf("%d snapshots and %d upgrades started, want %d and %d", s, u, snaps, upgrades)
		}
		return nil
	}
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				PreConfig:          func() { hangGets(t, h, "/v1/operations/") },
				Config:             cfg,
				ExpectNonEmptyPlan: true,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.Null()),
				},
				Check: func(s *terraform.State) error {
					id = s.RootModule().Resources[canaryAddr].Primary.ID
					rec, err := h.Client.MovedEngines(context.Background(), id)
					if err != nil {
						return err
					}
					snaps := 0
					for _, e := range rec {
						if e.SnapshotID != "" {
							snaps++
						}
					}
					if snaps != 5 {
						return fmt.Errorf("the record holds %d snapshot ids after the interrupted create, want 5: %+v", snaps, rec)
					}
					return counted(5, 0)
				},
			},
			{
				PreConfig: func() {
					if err := h.Client.ClearFaults(context.Background()); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
				},
				ExpectNonEmptyPlan: true,
				Check: func(*terraform.State) error {
					if err := expectFleet(h, users, map[string]int{"2.4.0/running": 5, "2.3.1/running": 5}); err != nil {
						return err
					}
					return counted(5, 5)
				},
			},
		},
	})
}

// hangGets makes every GET under pathPrefix answer after 15 s: what a wait cut off by a timeout
// needs.
func hangGets(t *testing.T, h *harness, pathPrefix string) {
	t.Helper()
	f := api.Fault{Kind: api.FaultSlowResponse, Method: "GET", PathPrefix: pathPrefix, DelayMS: 15000}
	if _, err := h.Client.AddFault(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}
