package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/localrun"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

const canaryAddr = "engine_canary.test"

// canaryHCL is a provider block and one engine_canary over user-0001..user-00NN with body's
// extra attributes.
func canaryHCL(h *harness, n int, version, body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_canary" "test" {
  version  = %q
  user_ids = [for i in range(1, %d) : format("user-%%04d", i)]
%s
}
`, version, n+1, body)
}

// Happy path: 10 engines, [10, 50, 100] in one auto apply: every engine ends on 2.4.0 with a
// snapshot taken first (the path migrates), the brain data is intact, a second plan is empty,
// and destroy returns every engine to 2.3.1 with its data.
func TestAccCanary_basic(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	users := seedUsers(10)
	turns := h.writeFleetTurns(users, 3)
	cfg := canaryHCL(h, 10, "2.4.0", `
  steps     = [10, 50, 100]
  mode      = "auto"
  bake_time = "0s"
  analysis  = { max_error_rate = 0.05, max_p99_latency_ms = 1500 }
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("cohort_seed"), knownvalue.StringRegexp(regexp.MustCompile(`^canary-[0-9a-f]{16}$`))),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(100)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(10)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.MapSizeExact(10)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("stable_versions").AtMapKey("user-0007"), knownvalue.StringExact("2.3.1")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringExact("none")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_analysis").AtMapKey("verdict"), knownvalue.StringExact("pass")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_analysis").AtMapKey("step"), knownvalue.Int64Exact(100)),
				},
				Check: resource.ComposeTestCheckFunc(
					checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 10}) }),
					checkFn(func() error { return checkTurns(h, turns) }),
					checkFn(func() error {
						ops := opsByUser(t, h)
						for _, u := range users {
							if ops[u+"/upgrade"] != 1 || ops[u+"/snapshot"] != 1 {
								return fmt.Errorf("user %s: %d upgrades and %d snapshots, want one of each", u, ops[u+"/upgrade"], ops[u+"/snapshot"])
							}
						}
						return nil
					}),
				),
			},
			{
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if err := expectFleet(h, users, map[string]int{"2.3.1/running": 10}); err != nil {
				return fmt.Errorf("after destroy: %w", err)
			}
			for _, u := range users {
				if e := h.Engine(u); e.SchemaVersion != 4 {
					return fmt.Errorf("user %s's brain is at schema %d after the rollback, want 4", u, e.SchemaVersion)
				}
			}
			return checkTurns(h, turns)
		},
	})
}

// The bad 2.4.1 is caught at the first step: the apply fails naming the metric, every moved engine
// is back on 2.3.1 (its snapshot restored: 2.4.1 migrated the brain), and state says aborted.
func TestAccCanary_badReleaseAborts(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	users := seedUsers(10)
	turns := h.writeFleetTurns(users, 2)
	cfg := canaryHCL(h, 10, "2.4.1", `
  steps     = [10, 50, 100]
  mode      = "auto"
  bake_time = "0s"
  analysis  = { max_error_rate = 0.05 }
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config:      cfg,
				ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*aborted at the 10% step.*error_rate.*max_error_rate 0\.05`),
			},
			{
				PreConfig:    func() { expectFirstStepRolledBack(t, h, users, turns) },
				RefreshState: true,
				// The failed create left the canary tainted: the next plan replaces it (a retry).
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.step", "10"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.cause", "analysis_failed"),
					resource.TestCheckNoResourceAttr(canaryAddr, "last_abort.user_id"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.rolled_back", "true"),
					resource.TestMatchResourceAttr(canaryAddr, "last_abort.detail", regexp.MustCompile(`(?s)^The analysis of the 10% step failed:.*max_error_rate 0\.05`)),
					resource.TestCheckResourceAttr(canaryAddr, "current_percent", "0"),
					resource.TestCheckResourceAttr(canaryAddr, "moved_user_ids.#", "0"),
					resource.TestCheckResourceAttr(canaryAddr, "last_analysis.verdict", "fail"),
					resource.TestCheckResourceAttr(canaryAddr, "last_analysis.step", "10"),
					resource.TestMatchResourceAttr(canaryAddr, "next_step", regexp.MustCompile(`^move 1 user to 10%: user-\d{4}; snapshot first for 1; then`)),
				),
			},
		},
	})
}

// expectFirstStepRolledBack checks a canary over ten engines aborted at its 10% step: all ten run
// 2.3.1 again, every brain keeps its turns, and the one engine moved was restored from its
// snapshot.
func expectFirstStepRolledBack(t *testing.T, h *harness, users []string, turns map[string][]string) {
	t.Helper()
	if err := expectFleet(h, users, map[string]int{"2.3.1/running": 10}); err != nil {
		t.Fatalf("after the abort: %v", err)
	}
	if err := checkTurns(h, turns); err != nil {
		t.Fatalf("after the abort: %v", err)
	}
	ops := opsByUser(t, h)
	var upgraded []string
	for _, u := range users {
		if ops[u+"/upgrade"] > 0 {
			upgraded = append(upgraded, u)
			if ops[u+"/restore"] != 1 {
				t.Errorf("moved user %s was not restored from its snapshot: %v", u, ops)
			}
		}
	}
	if len(upgraded) != 1 {
		t.Fatalf("the first step of 10%% of 10 moved %d engines (%v), want 1", len(upgraded), upgraded)
	}
}

// Stepwise: each apply advances exactly one step, the plan shows it (current_percent, phase and
// next_step known at plan), cohorts only grow, and the plan is empty once promoted.
func TestAccCanary_stepwise(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	users := seedUsers(10)
	cfg := canaryHCL(h, 10, "2.4.0", `
  steps     = [10, 50, 100]
  mode      = "stepwise"
  bake_time = "0s"
`)
	var first []string
	moved := func() []string {
		var out []string
		for _, u := range users {
			if h.Engine(u).EngineVersion == "2.4.0" {
				out = append(out, u)
			}
		}
		return out
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue(canaryAddr, tfjsonpath.New("current_percent")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(10)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("progressing")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(`^move 4 users to 50%: (user-\d{4}, ){3}user-\d{4}; snapshot first for 4$`))),
				},
				Check: checkFn(func() error {
					m := moved()
					if len(m) != 1 {
						return fmt.Errorf("after the first stepwise apply %d engines run 2.4.0, want 1", len(m))
					}
					first = m
					return nil
				}),
				// Not promoted yet: the plan after the apply must not be empty.
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("progressing")),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(5)),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(`^move 5 users to 100%: .*; snapshot first for 5$`))),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
				},
				Check: checkFn(func() error {
					m := moved()
					if len(m) != 5 {
						return fmt.Errorf("after the second apply %d engines run 2.4.0, want 5", len(m))
					}
					if !strings.Contains(strings.Join(m, ","), first[0]) {
						return fmt.Errorf("sticky cohort broken: %s moved first but is not in %v", first[0], m)
					}
					return nil
				}),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(100)),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringExact("none")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.MapSizeExact(10)),
				},
				Check: checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 10}) }),
			},
			{
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check: checkFn(func() error {
					ops := opsByUser(t, h)
					for _, u := range users {
						if ops[u+"/upgrade"] != 1 {
							return fmt.Errorf("user %s was upgraded %d times, want once", u, ops[u+"/upgrade"])
						}
					}
					return nil
				}),
			},
		},
	})
}

// hold_at stops the rollout with an empty plan; removing it continues to promotion.
func TestAccCanary_holdAt(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	users := seedUsers(10)
	body := `
  steps     = [10, 50, 100]
  mode      = "auto"
  bake_time = "0s"
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: canaryHCL(h, 10, "2.4.0", body+"  hold_at = 50\n"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("holding")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(
						`^none: holding at 50%; without hold_at the next apply would move 5 users to 100%: (user-\d{4}, ){4}user-\d{4}; snapshot first for 5$`))),
				},
				Check: checkFn(func() error {
					return expectFleet(h, users, map[string]int{"2.4.0/running": 5, "2.3.1/running": 5})
				}),
			},
			{
				Config:           canaryHCL(h, 10, "2.4.0", body+"  hold_at = 50\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				Config: canaryHCL(h, 10, "2.4.0", body),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
				}},
				Check: checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 10}) }),
			},
		},
	})
}

// Destroy in the middle of a rollout puts every moved engine back on its stable version, snapshot
// restored, data intact.
func TestAccCanary_destroyMidCanary(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	users := seedUsers(10)
	turns := h.writeFleetTurns(users, 2)
	cfg := canaryHCL(h, 10, "2.4.0", `
  steps     = [10, 50, 100]
  bake_time = "0s"
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ExpectNonEmptyPlan: true},
			{
				Config:             cfg,
				ExpectNonEmptyPlan: true,
				Check:              checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 5, "2.3.1/running": 5}) }),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if err := expectFleet(h, users, map[string]int{"2.3.1/running": 10}); err != nil {
				return fmt.Errorf("after destroy mid-canary: %w", err)
			}
			ops := opsByUser(t, h)
			restored := 0
			for _, u := range users {
				restored += int(ops[u+"/restore"])
			}
			if restored != 5 {
				return fmt.Errorf("%d restores, want 5 (one per moved engine)", restored)
			}
			return checkTurns(h, turns)
		},
	})
}

// An apply that times out while operations run resumes on the next apply: no engine is
// snapshotted or upgraded twice, and the snapshot ids survive.
func TestAccCanary_interruptedApplyResumes(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10, Faults: true})
	users := seedUsers(10)
	body := `
  steps     = [50, 100]
  bake_time = "0s"
  timeouts {
    create = "4s"
    update = "%s"
  }
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					// Every wait for an operation hangs: the create times out while snapshots run.
					if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultSlowResponse, Method: "GET", PathPrefix: "/v1/operations/", DelayMS: 15000}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             canaryHCL(h, 10, "2.4.0", fmt.Sprintf(body, "10m")),
				ExpectNonEmptyPlan: true,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("progressing")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(0)),
					// Snapshot ids are recorded as soon as the control plane names them.
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.MapSizeExact(5)),
				},
				Check: checkFn(func() error {
					ops := opsByUser(t, h)
					snaps, upgrades := 0, 0
					for _, u := range users {
						snaps += int(ops[u+"/snapshot"])
						upgrades += int(ops[u+"/upgrade"])
					}
					if snaps != 5 || upgrades != 0 {
						return fmt.Errorf("the interrupted create started %d snapshots and %d upgrades, want 5 and 0", snaps, upgrades)
					}
					return nil
				}),
			},
			{
				PreConfig: func() {
					if err := h.Client.ClearFaults(context.Background()); err != nil {
						t.Fatal(err)
					}
				},
				Config:             canaryHCL(h, 10, "2.4.0", fmt.Sprintf(body, "10m")),
				ExpectNonEmptyPlan: true,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.MapSizeExact(5)),
				},
				Check: checkFn(func() error {
					if err := expectFleet(h, users, map[string]int{"2.4.0/running": 5, "2.3.1/running": 5}); err != nil {
						return err
					}
					ops := opsByUser(t, h)
					for _, u := range users {
						if ops[u+"/upgrade"] > 1 || ops[u+"/snapshot"] > 1 {
							return fmt.Errorf("user %s: %d upgrades and %d snapshots, never more than one of each", u, ops[u+"/upgrade"], ops[u+"/snapshot"])
						}
						if ops[u+"/upgrade"] != ops[u+"/snapshot"] {
							return fmt.Errorf("user %s: %d upgrades but %d snapshots", u, ops[u+"/upgrade"], ops[u+"/snapshot"])
						}
					}
					return nil
				}),
			},
			{
				PreConfig: func() {
					// The next step's update times out the same way: an error this time (no taint
					// to fear on update), with state recording the real progress.
					if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultSlowResponse, Method: "GET", PathPrefix: "/v1/operations/", DelayMS: 15000}); err != nil {
						t.Fatal(err)
					}
				},
				Config:      canaryHCL(h, 10, "2.4.0", fmt.Sprintf(body, "4s")),
				ExpectError: regexp.MustCompile(`(?s)Canary Step Interrupted.*never\s+upgrading\s+an\s+engine\s+twice`),
			},
			{
				PreConfig: func() {
					if err := h.Client.ClearFaults(context.Background()); err != nil {
						t.Fatal(err)
					}
				},
				Config: canaryHCL(h, 10, "2.4.0", fmt.Sprintf(body, "10m")),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("snapshots"), knownvalue.MapSizeExact(10)),
				},
				Check: checkFn(func() error {
					if err := expectFleet(h, users, map[string]int{"2.4.0/running": 10}); err != nil {
						return err
					}
					ops := opsByUser(t, h)
					for _, u := range users {
						if ops[u+"/upgrade"] != 1 || ops[u+"/snapshot"] != 1 {
							return fmt.Errorf("user %s: %d upgrades and %d snapshots after two interrupted applies, want exactly one of each", u, ops[u+"/upgrade"], ops[u+"/snapshot"])
						}
					}
					return nil
				}),
			},
		},
	})
}

// Every bad-input class fails at plan, naming the attribute, and changes nothing.
func TestAccCanary_badInput(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 3})
	hcl := func(body string) string {
		return h.ProviderBlock() + "resource \"engine_canary\" \"test\" {\n" + body + "\n}\n"
	}
	three := `user_ids = ["user-0001", "user-0002", "user-0003"]`
	cases := []struct {
		name, body, want string
	}{
		{"decreasing steps", `version = "2.4.0"` + "\n" + three + "\nsteps = [50, 10]", `(?s)steps.*not greater than step 1`},
		{"step out of range", `version = "2.4.0"` + "\n" + three + "\nsteps = [0, 100]", `(?s)steps.*between 1 and 100`},
		{"step above 100", `version = "2.4.0"` + "\n" + three + "\nsteps = [50, 101]", `(?s)steps.*between 1 and 100`},
		{"hold_at not a step", `version = "2.4.0"` + "\n" + three + "\nsteps = [10, 50, 100]\nhold_at = 30", `(?s)hold_at 30 is not one of the steps`},
		{"hold_at last step", `version = "2.4.0"` + "\n" + three + "\nsteps = [10, 50, 100]\nhold_at = 100", `(?s)hold_at 100 is the last step`},
		{"empty user_ids", `version = "2.4.0"` + "\nuser_ids = []", `(?s)Canary Has No Users.*user_ids is empty`},
		{"duplicate user_ids", `version = "2.4.0"` + "\nuser_ids = [\"user-0001\", \"user-0001\"]", `(?s)user_ids.*duplicate`},
		{"unknown users", `version = "2.4.0"` + "\nuser_ids = [\"user-0001\", \"user-0404\", \"user-0405\"]", `(?s)Unknown Users.*2 of user_ids: user-0404, user-0405`},
		{"unknown version", `version = "9.9.9"` + "\n" + three, `(?s)Unknown Engine Version.*"9\.9\.9"`},
		{"major without allow", `version = "3.0.0"` + "\n" + three, `(?s)Major Upgrade Not Allowed.*allow_major_upgrade`},
		{"threshold out of range", `version = "2.4.0"` + "\n" + three + "\nanalysis = { max_error_rate = 2 }", `(?s)analysis.max_error_rate.*between`},
		{"tolerance out of range", `version = "2.4.0"` + "\n" + three + "\nanalysis = { baseline_tolerance = -1 }", `(?s)analysis.baseline_tolerance`},
		{"auto schedule too long", `version = "2.4.0"` + "\n" + three + "\nmode = \"auto\"\nbake_time = \"30m\"", `(?s)Canary Schedule Exceeds The Timeout.*set mode = "stepwise"`},
		{"bad mode", `version = "2.4.0"` + "\n" + three + "\nmode = \"yolo\"", `(?s)mode.*stepwise`},
		{"downgrade", `version = "2.3.0"` + "\n" + three, `(?s)Canary Would Downgrade.*3 engines already run a version newer than 2\.3\.0`},
		{"max_parallel out of range", `version = "2.4.0"` + "\n" + three + "\nmax_parallel = 0", `(?s)max_parallel`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: hcl(c.body), PlanOnly: true, ExpectError: regexp.MustCompile(c.want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: h.Factories(nil), Steps: steps})
	st, err := h.Client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range st.Operations {
		if n > 0 {
			t.Errorf("bad input started %d %s operations", n, k)
		}
	}
	if err := expectFleet(h, seedUsers(3), map[string]int{"2.3.1/running": 3}); err != nil {
		t.Error(err)
	}
}

// The fleet-canary scenario as shipped in examples/: 20 engines, the bad 2.4.1 caught at the
// first step and rolled back; then the good 2.4.0 walks every step to promoted.
func TestAccCanary_fleetExample(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 20})
	users := seedUsers(20)
	cfg := exampleConfig(t, h, "examples/fleet-canary")
	vars := func(version string) config.Variables {
		return config.Variables{"canary_version": config.StringVariable(version), "bake_time": config.StringVariable("0s")}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: cfg, ConfigVariables: vars("2.4.1"),
				ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*5% step.*error_rate.*p99_latency_ms.*retrieval_timeout`),
			},
			{
				PreConfig: func() {
					if err := expectFleet(h, users, map[string]int{"2.3.1/running": 20}); err != nil {
						t.Fatalf("after the bad release: %v", err)
					}
				},
				Config: cfg, ConfigVariables: vars("2.4.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("phase", knownvalue.StringExact("promoted")),
					statecheck.ExpectKnownOutputValue("current_percent", knownvalue.Int64Exact(100)),
					statecheck.ExpectKnownOutputValue("moved", knownvalue.MapSizeExact(20)),
				},
				Check: checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 20}) }),
			},
		},
		CheckDestroy: func(*terraform.State) error { return expectFleet(h, users, map[string]int{"2.3.1/running": 20}) },
	})
}

// The registry example plans cleanly against a fleet (it is not applied: its rollout window
// depends on the clock).
func TestAccCanary_resourceExamplePlans(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 6})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:             exampleConfig(t, h, "examples/resources/engine_canary"),
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}},
	})
}

// The eval suite runs on the step's movers before and after their move: a regression above
// max_eval_regression aborts the canary even when every metric is fine.
func TestAccCanary_evalRegressionAborts(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10, Faults: true})
	users := seedUsers(10)
	if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultEvalRegression, Version: "2.4.0"}); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: canaryHCL(h, 10, "2.4.0", `
  steps     = [20, 100]
  bake_time = "0s"
  analysis  = { eval_suite = "golden", max_eval_regression = 0.05 }
`),
			ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*20% step.*eval_score:\s+the\s+cohort\s+scores\s+0\.\d+\s+against\s+a\s+baseline\s+of\s+0\.\d+,\s+a\s+regression\s+of\s+0\.\d+\s+above\s+max_eval_regression\s+0\.05`),
		}, {
			PreConfig: func() {
				if err := expectFleet(h, users, map[string]int{"2.3.1/running": 10}); err != nil {
					t.Fatalf("after the eval abort: %v", err)
				}
			},
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
				resource.TestCheckResourceAttr(canaryAddr, "last_analysis.canary.engines", "2"),
				resource.TestMatchResourceAttr(canaryAddr, "last_analysis.failures.0", regexp.MustCompile(`^eval_score`)),
			),
		}},
	})
}

// Outside the rollout window the plan warns and the apply refuses to start the step: nothing moves.
func TestAccCanary_rolloutWindowRefuses(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4})
	users := seedUsers(4)
	// A one-minute window on a day that is not today: never open now.
	other := []string{"tue", "wed", "thu", "fri", "sat", "sun", "mon"}[int(time.Now().UTC().Weekday()+6)%7]
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: canaryHCL(h, 4, "2.4.0", fmt.Sprintf(`
  steps          = [50, 100]
  bake_time      = "0s"
  rollout_window = { days = [%q], start = "03:00", end = "03:01" }
`, other)),
			ExpectError: regexp.MustCompile(`(?s)Canary Step Not Started.*outside the rollout window.*was not started`),
		}},
	})
	if err := expectFleet(h, users, map[string]int{"2.3.1/running": 4}); err != nil {
		t.Fatal(err)
	}
	for k, n := range opsByUser(t, h) {
		t.Errorf("the refused step still started %d %s operations", n, k)
	}
}

// Refresh derives progress from the fleet: an engine rolled back out of band drops out of
// moved_user_ids, and the next plan moves it again; the destroy plan lists what a destroy restores.
func TestAccCanary_driftAndDestroyPlan(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4})
	users := seedUsers(4)
	turns := h.writeFleetTurns(users, 1)
	cfg := canaryHCL(h, 4, "2.4.0", `
  steps     = [50, 100]
  mode      = "auto"
  bake_time = "0s"
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					// Someone restores user-0002 to 2.3.1 by hand.
					snaps, err := h.Client.ListSnapshots(context.Background(), "user-0002", client.ListSnapshotsOptions{})
					if err != nil || len(snaps) == 0 {
						t.Fatalf("snapshots of user-0002: %v %v", snaps, err)
					}
					d := &rollout.Driver{Client: h.Client}
					if _, err := d.Restore(context.Background(), "user-0002", "oob-restore", 0, api.RestoreRequest{SnapshotID: snaps[0].ID, Version: "2.3.1"}); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(4)),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("promoted")),
				}},
				Check: checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 4}) }),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if err := expectFleet(h, users, map[string]int{"2.3.1/running": 4}); err != nil {
				return err
			}
			return checkTurns(h, turns)
		},
	})
}

// The destroy plan lists every engine a destroy moves back, the snapshot it restores and the
// brain writes since that snapshot; an unusable snapshot fails the plan instead.
func TestCanaryDestroyPlan(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 3})
	ctx := context.Background()
	r := &canaryResource{data: &providerData{Client: h.Client}}
	run, _, diags := r.newRun(ctx, canaryModel{Version: types.StringValue("2.4.0"), UserIDs: stringListValue(seedUsers(3)),
		Steps: types.ListNull(types.Int64Type), MaxParallel: types.Int64Value(3), CohortSeed: types.StringValue("s"), BakeTime: types.StringValue("0s")}, nil)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if _, err := run.MoveAll(ctx, []string{"user-0001", "user-0002"}); err != nil {
		t.Fatal(err)
	}
	h.writeFleetTurns([]string{"user-0001"}, 3)
	state := canaryModel{ID: types.StringValue("canary-x"), Version: types.StringValue("2.4.0"), OnDestroy: types.StringValue(onDestroyRollback)}
	state.StableVersions, state.Snapshots = stringMap(run.Stable()), stringMap(run.Snapshots())
	snap1 := run.Snapshots()["user-0001"]

	diags = r.planDestroy(ctx, state, r.canaryOwner(ctx, nil, state.ID.ValueString()).token)
	if diags.HasError() || len(diags) != 1 {
		t.Fatalf("destroy plan: %v", diags)
	}
	detail := diags[0].Detail()
	for _, want := range []string{"returns 2 engines", "user-0001: 2.4.0 -> 2.3.1, restoring snapshot " + snap1 + " (3 brain writes since it will be lost)", "user-0002: 2.4.0 -> 2.3.1"} {
		if !strings.Contains(detail, want) {
			t.Errorf("destroy plan does not say %q:\n%s", want, detail)
		}
	}
	if err := h.Client.DeleteSnapshot(ctx, snap1, true); err != nil {
		t.Fatal(err)
	}
	diags = r.planDestroy(ctx, state, "")
	if !diags.HasError() || !strings.Contains(diags[0].Detail(), "user-0001 needs snapshot "+snap1+" restored, but it is unusable") {
		t.Fatalf("a deleted rollback snapshot did not fail the destroy plan: %v", diags)
	}
	state.OnDestroy = types.StringValue(onDestroyKeep)
	if diags := r.planDestroy(ctx, state, ""); len(diags) != 0 {
		t.Fatalf("on_destroy = keep still warned: %v", diags)
	}
}

// Import by VERSION:COHORT_SEED:USER_IDS names the canary's id and reads its record back from the
// control plane: settings, last analysis, stable versions and snapshots; refresh reads progress.
func TestAccCanary_import(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 10})
	cfg := canaryHCL(h, 10, "2.4.0", `
  steps     = [10, 50, 100]
  bake_time = "0s"
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{Config: cfg, ExpectNonEmptyPlan: true},
			{Config: cfg, ExpectNonEmptyPlan: true},
			{
				// No Config of its own: the import reuses the previous step's, which the test
				// framework merged with a required_providers block naming registry.terraform.io,
				// where the in-process provider is attached. An import step's own Config is used
				// unmerged, so OpenTofu resolves "engine" at registry.opentofu.org and init fails.
				ResourceName: canaryAddr,
				ImportState:  true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					rs := s.RootModule().Resources[canaryAddr]
					return "2.4.0:" + rs.Primary.Attributes["cohort_seed"] + ":" + strings.Join(seedUsers(10), ","), nil
				},
				ImportStateVerify: true,
				// planned_step described the last apply and is null after any refresh, import's included.
				ImportStateVerifyIgnore: []string{"timeouts", "next_step", "planned_step"},
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					// The record kept last_analysis: the step the fleet stands at is judged, so the
					// next apply moves on.
					if got := s[0].Attributes["next_step"]; !strings.HasPrefix(got, "move 5 users to 100%") {
						return fmt.Errorf("imported next_step = %q", got)
					}
					return nil
				},
			},
		},
	})
}

// A rollback (abort or destroy) cut short resumes: the second pass attaches to or skips what the
// first one started, so every moved engine is restored exactly once and ends on its stable version.
func TestCanaryRollbackResumes(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4, Faults: true})
	ctx := context.Background()
	users := seedUsers(4)
	turns := h.writeFleetTurns(users, 2)
	r := &canaryResource{data: &providerData{Client: h.Client}}
	model := canaryModel{Version: types.StringValue("2.4.0"), UserIDs: stringListValue(users), Steps: types.ListNull(types.Int64Type),
		MaxParallel: types.Int64Value(4), CohortSeed: types.StringValue("s"), BakeTime: types.StringValue("0s")}
	run, _, diags := r.newRun(ctx, model, nil)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if _, err := run.MoveAll(ctx, users); err != nil {
		t.Fatal(err)
	}
	// Every wait for an operation hangs: the first rollback pass runs out of time mid-way.
	if _, err := h.Client.AddFault(ctx, api.Fault{Kind: api.FaultSlowResponse, Method: "GET", PathPrefix: "/v1/operations/", DelayMS: 10000}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := run.RollBackAll(short); err == nil {
		t.Fatal("the cut-short rollback reported success")
	}
	cancel()
	started := 0
	for _, u := range users {
		started += int(opsByUser(t, h)[u+"/restore"])
	}
	if started != 4 {
		t.Fatalf("the first pass started %d restores before it was cut short, want 4 (the test would prove nothing)", started)
	}
	if err := h.Client.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	// A fresh pass from what state recorded, as the next terraform destroy would run it.
	model.StableVersions, model.Snapshots = stringMap(run.Stable()), stringMap(run.Snapshots())
	again, _, engines, diags := r.observed(ctx, model)
	if diags.HasError() || len(engines) != 4 {
		t.Fatalf("observe: %v (%d engines)", diags, len(engines))
	}
	done, err := again.RollBackAll(ctx)
	if err != nil || len(done) != 4 {
		t.Fatalf("resumed rollback: %v (%v)", err, done)
	}
	if err := expectFleet(h, users, map[string]int{"2.3.1/running": 4}); err != nil {
		t.Fatal(err)
	}
	ops := opsByUser(t, h)
	for _, u := range users {
		if ops[u+"/restore"] != 1 {
			t.Errorf("user %s was restored %d times, want exactly once", u, ops[u+"/restore"])
		}
	}
	if err := checkTurns(h, turns); err != nil {
		t.Fatal(err)
	}
}

// A moved user removed from user_ids stays in the canary's scope while it runs the version: it
// still counts toward the step (nobody else moves to make up its share) and destroy rolls it back.
// Once it leaves the version too (moved to 2.4.1 out of band), it stops counting: the next step's
// share is refilled from user_ids, and destroy still returns it to its stable version.
func TestAccCanary_removedUserRolledBackOnDestroy(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4})
	users := seedUsers(4)
	body := `
  steps     = [50, 100]
  hold_at   = 50
  mode      = "auto"
  bake_time = "0s"
  cohort_seed = "fixed"
`
	// The seed is fixed, so the first cohort is known before anything runs.
	removed := upgrade.Cohort("fixed", users, 50, nil)[0]
	var rest []string
	for _, u := range users {
		if u != removed {
			rest = append(rest, fmt.Sprintf("%q", u))
		}
	}
	without := h.ProviderBlock() + `
resource "engine_canary" "test" {
  version  = "2.4.0"
  user_ids = [` + strings.Join(rest, ", ") + `]
` + body + "}\n"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: canaryHCL(h, 4, "2.4.0", body),
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr(canaryAddr, "moved_user_ids.#", "2"),
					resource.TestCheckResourceAttr(canaryAddr, "moved_user_ids.0", removed),
				),
			},
			{
				Config: without,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(2)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids").AtSliceIndex(0), knownvalue.StringExact(removed)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("holding")),
				},
				Check: checkFn(func() error {
					// The removed user still runs 2.4.0 and still counts: nobody else moved.
					return expectFleet(h, users, map[string]int{"2.4.0/running": 2, "2.3.1/running": 2})
				}),
			},
			{
				PreConfig: func() {
					d := &rollout.Driver{Client: h.Client}
					if _, err := d.Upgrade(context.Background(), removed, "oob-2.4.1", 0, api.UpgradeRequest{Version: "2.4.1"}); err != nil {
						t.Fatal(err)
					}
				},
				Config: without,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(2)),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("holding")),
				}},
				Check: checkFn(func() error {
					// Two of the three listed users now, and the removed one on 2.4.1.
					return expectFleet(h, users, map[string]int{"2.4.0/running": 2, "2.3.1/running": 1, "2.4.1/running": 1})
				}),
			},
		},
		CheckDestroy: func(*terraform.State) error { return expectFleet(h, users, map[string]int{"2.3.1/running": 4}) },
	})
}

// The plan names the users this canary moved that left both user_ids and the version, and says
// nothing of those back on their stable version.
func TestCanaryLeftScopeWarning(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4})
	ctx := context.Background()
	r := &canaryResource{data: &providerData{Client: h.Client}}
	run, _, diags := r.newRun(ctx, canaryModel{Version: types.StringValue("2.4.0"), UserIDs: stringListValue(seedUsers(3)),
		Steps: types.ListNull(types.Int64Type), MaxParallel: types.Int64Value(3), CohortSeed: types.StringValue("s"), BakeTime: types.StringValue("0s")}, nil)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if _, err := run.MoveAll(ctx, seedUsers(3)); err != nil {
		t.Fatal(err)
	}
	d := &rollout.Driver{Client: h.Client}
	if _, err := d.Upgrade(ctx, "user-0002", "oob-2.4.1", 0, api.UpgradeRequest{Version: "2.4.1"}); err != nil {
		t.Fatal(err)
	}
	state := canaryModel{ID: types.StringValue("canary-x"), Version: types.StringValue("2.4.0"),
		StableVersions: stringMap(map[string]string{"user-0001": "2.3.1", "user-0002": "2.3.1", "user-0003": "2.3.1", "user-0004": "2.3.1"}),
		MovedUserIDs:   stringListValue([]string{"user-0001", "user-0003"})}
	// user_ids now lists user-0003 only; user-0001 runs 2.4.0 (in scope), user-0002 moved on to
	// 2.4.1 and user-0004 is back on 2.3.1.
	scope, moved, left := planScope([]string{"user-0003"}, state, "2.4.0", "s")
	if fmt.Sprint(scope) != "[user-0003 user-0001]" || len(moved) != 2 || fmt.Sprint(left) != "[user-0002 user-0004]" {
		t.Fatalf("scope %v, moved %v, left %v", scope, moved, left)
	}
	diags = r.leftScope(ctx, state, left)
	if len(diags) != 1 || diags[0].Summary() != "Moved Users Left The Canary" {
		t.Fatalf("left-scope diagnostics: %v", diags)
	}
	if detail := diags[0].Detail(); !strings.Contains(detail, "- user-0002: runs 2.4.1 (running); it ran 2.3.1 before this canary moved it") || strings.Contains(detail, "user-0004") {
		t.Fatalf("left-scope warning:\n%s", detail)
	}
}

// An apply stopped after the engines moved but before the analysis ran never counts the step as
// passed: the phase stays progressing (not holding), and the next apply bakes and judges it.
func TestAccCanary_unjudgedStepIsJudgedNext(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4, Faults: true})
	users := seedUsers(4)
	body := `
  steps       = [50, 100]
  hold_at     = 50
  mode        = "auto"
  bake_time   = "0s"
  cohort_seed = "fixed"
  timeouts {
    create = "4s"
  }
`
	cfg := canaryHCL(h, 4, "2.4.0", body)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				// user-0001's metrics hang, so the analysis cannot finish before the timeout.
				PreConfig:          func() { hangGets(t, h, "/v1/engines/user-0001/metrics") },
				Config:             cfg,
				ExpectNonEmptyPlan: true,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(50)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("progressing")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_analysis"), knownvalue.Null()),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringExact("judge the 50% step again (bake, then analysis)")),
				},
				Check: checkFn(func() error { return expectFleet(h, users, map[string]int{"2.4.0/running": 2, "2.3.1/running": 2}) }),
			},
			{
				PreConfig: func() {
					if err := h.Client.ClearFaults(context.Background()); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(canaryAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("holding")),
					plancheck.ExpectUnknownValue(canaryAddr, tfjsonpath.New("last_analysis")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("phase"), knownvalue.StringExact("holding")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_analysis").AtMapKey("step"), knownvalue.Int64Exact(50)),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_analysis").AtMapKey("verdict"), knownvalue.StringExact("pass")),
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(`^none: holding at 50%; without hold_at`))),
				},
				Check: checkFn(func() error {
					ops := opsByUser(t, h)
					for _, u := range users {
						if ops[u+"/upgrade"] > 1 {
							return fmt.Errorf("user %s upgraded %d times", u, ops[u+"/upgrade"])
						}
					}
					return expectFleet(h, users, map[string]int{"2.4.0/running": 2, "2.3.1/running": 2})
				}),
			},
			{
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// namedIn reports the users a next_step text names ("move 5 users to 25%: user-0003, ...").
func namedIn(next string) []string {
	return regexp.MustCompile(`user-\d{4}`).FindAllString(next, -1)
}

// The guide's first canary, exactly as documented (examples/first-canary, bake_time shortened):
// user_ids from data "engine_instances" { version = "2.3.1" }, stepwise, steps [10, 25, 50, 100],
// hold_at 50, over 30 engines. Engines the canary moves leave the filter; each apply must still
// move one step's share of the whole fleet (3, then 5, then 7 engines), current_percent must
// follow, and next_step must name the users the next apply moves, including when the hold is
// lifted.
func TestAccCanary_documentedFirstCanary(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 30})
	users := seedUsers(30)
	doc := exampleConfig(t, h, "examples/first-canary")
	if strings.Count(doc, `bake_time = "15m"`) != 1 || strings.Count(doc, "  hold_at   = 50\n") != 1 {
		t.Fatal("examples/first-canary no longer reads as this test expects: update the test with the documented configuration")
	}
	cfg := strings.Replace(doc, `bake_time = "15m"`, `bake_time = "0s"`, 1)
	unheld := strings.Replace(cfg, "  hold_at   = 50\n", "", 1)
	const addr = "engine_canary.v240"
	var next string // next_step after the previous apply
	var before []string
	// moves checks that an apply moved exactly want engines, all of them named by the previous
	// next_step (which lists at most ten names).
	moves := func(want, total int) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			now := onVersion(h, users, "2.4.0")
			if len(now) != total {
				return fmt.Errorf("%d engines run 2.4.0, want %d (this apply should move %d)", len(now), total, want)
			}
			was := map[string]bool{}
			for _, u := range before {
				was[u] = true
			}
			moved := map[string]bool{}
			for _, u := range now {
				if !was[u] {
					moved[u] = true
				}
			}
			if len(moved) != want {
				return fmt.Errorf("this apply moved %d engines, want %d", len(moved), want)
			}
			if next != "" {
				for _, u := range namedIn(next) {
					if !moved[u] {
						return fmt.Errorf("next_step %q named %s, but the apply did not move it", next, u)
					}
				}
			}
			before, next = now, s.RootModule().Resources[addr].Primary.Attributes["next_step"]
			return nil
		}
	}
	state := func(pct int64, phase string, moved int, nextRe string) []statecheck.StateCheck {
		return []statecheck.StateCheck{
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(pct)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("phase"), knownvalue.StringExact(phase)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(moved)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("next_step"), knownvalue.StringRegexp(regexp.MustCompile(nextRe))),
		}
	}
	// planned checks the update plan: the progress it reaches and planned_step, what it does.
	planned := func(pct int64, phase string, moved int, step string) resource.ConfigPlanChecks {
		var stepCheck knownvalue.Check = knownvalue.Null()
		if step != "" {
			stepCheck = knownvalue.StringRegexp(regexp.MustCompile(step))
		}
		return resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
			plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
			plancheck.ExpectKnownValue(addr, tfjsonpath.New("planned_step"), stepCheck),
			plancheck.ExpectKnownValue(addr, tfjsonpath.New("current_percent"), knownvalue.Int64Exact(pct)),
			plancheck.ExpectKnownValue(addr, tfjsonpath.New("phase"), knownvalue.StringExact(phase)),
			plancheck.ExpectKnownValue(addr, tfjsonpath.New("moved_user_ids"), knownvalue.ListSizeExact(moved)),
		}}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("planned_step"), knownvalue.StringRegexp(regexp.MustCompile(
						`^move 3 users to 10%: (user-\d{4}, ){2}user-\d{4}; snapshot first for 3\. Expected about 15s, at least 0s of it baking$`))),
				}},
				ConfigStateChecks:  state(10, "progressing", 3, `^move 5 users to 25%: `),
				Check:              moves(3, 3),
				ExpectNonEmptyPlan: true,
			},
			{
				Config:             cfg,
				ConfigPlanChecks:   planned(25, "progressing", 8, `^move 5 users to 25%: `),
				ConfigStateChecks:  state(25, "progressing", 8, `^move 7 users to 50%: `),
				Check:              moves(5, 8),
				ExpectNonEmptyPlan: true,
			},
			{
				Config:            cfg,
				ConfigPlanChecks:  planned(50, "holding", 15, `^move 7 users to 50%: `),
				ConfigStateChecks: state(50, "holding", 15, `^none: holding at 50%; without hold_at the next apply would move 15 users to 100%: `),
				Check:             moves(7, 15),
				// The engines that moved leave the data source's list: the next plan updates
				// user_ids alone, moving nobody.
				ExpectNonEmptyPlan: true,
			},
			{
				Config:            cfg,
				ConfigPlanChecks:  planned(50, "holding", 15, ""),
				ConfigStateChecks: state(50, "holding", 15, `^none: holding at 50%`),
				Check: checkFn(func() error {
					if n := len(onVersion(h, users, "2.4.0")); n != 15 {
						return fmt.Errorf("an apply while holding moved engines: %d run 2.4.0, want 15", n)
					}
					return nil
				}),
			},
			{
				Config:             unheld,
				ConfigPlanChecks:   planned(100, "promoted", 30, `^move 15 users to 100%: .*; snapshot first for 15\. Expected about 30s`),
				ConfigStateChecks:  state(100, "promoted", 30, `^none$`),
				Check:              moves(15, 30),
				ExpectNonEmptyPlan: true, // user_ids empties: no engine is left on 2.3.1
			},
			{
				Config:            unheld,
				ConfigPlanChecks:  planned(100, "promoted", 30, ""),
				ConfigStateChecks: state(100, "promoted", 30, `^none$`),
				Check: checkFn(func() error {
					return expectFleet(h, users, map[string]int{"2.4.0/running": 30})
				}),
			},
		},
		CheckDestroy: func(*terraform.State) error { return expectFleet(h, users, map[string]int{"2.3.1/running": 30}) },
	})
}

// After an engine moves past the canary's version out of band, `terraform apply -refresh-only`
// and the plan agree: the canary holds that engine where it runs (#21 item 2), the next_step the
// refresh-only apply records names the step the plan takes over the other user and the held
// engine, and the plan warns instead of failing.
func TestAccCanary_refreshOnlyNextStepAgreesWithPlan(t *testing.T) {
	ctx, env, dir, run := localCanary(t, 2, `
resource "engine_canary" "c" {
  version     = var.v
  user_ids    = ["user-0001", "user-0002"]
  steps       = [50, 100]
  bake_time   = "0s"
  cohort_seed = "fixed"
}
`)
	first := upgrade.Cohort("fixed", seedUsers(2), 50, nil)[0]
	run(dir, false, "2.4.0", "apply", "-auto-approve", "-input=false")
	if _, err := (&rollout.Driver{Client: env.Client}).Upgrade(ctx, first, "by-hand", 0, api.UpgradeRequest{Version: "2.4.1"}); err != nil {
		t.Fatal(err)
	}
	run(dir, false, "2.4.0", "apply", "-refresh-only", "-auto-approve", "-input=false")
	var shown struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Values struct {
						NextStep string `json:"next_step"`
					} `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(run(dir, false, "2.4.0", "show", "-json")), &shown); err != nil || len(shown.Values.RootModule.Resources) != 1 {
		t.Fatalf("terraform show -json: %v %+v", err, shown)
	}
	next := shown.Values.RootModule.Resources[0].Values.NextStep
	second := "user-0001"
	if first == second {
		second = "user-0002"
	}
	if want := "move 1 user to 50%: " + second + "; snapshot first for 1; leaves " + first + " (2.4.1) where they run, above 2.4.0"; next != want {
		t.Errorf("after apply -refresh-only, next_step is %q, want %q", next, want)
	}
	plan := strings.Join(strings.Fields(run(dir, false, "2.4.0", "plan", "-input=false")), " ")
	for _, want := range []string{"Warning: Engine Moved Above The Canary's Version", `planned_step = "move 1 user to 50%: ` + second + `; snapshot first for 1.`} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan)
		}
	}
}

// localCanary skips without TF_ACC, else starts a localrun environment of n engines on 2.3.1 with
// a workspace holding localHeader plus body, and returns a context bounding the test, the
// environment, the workspace and a runner of terraform in a workspace: the version to roll out
// (var.v), whether the command must fail, then its arguments; it returns stdout and stderr.
func localCanary(t *testing.T, n int, body string) (context.Context, *localrun.Env, string, func(dir string, wantErr bool, version string, args ...string) string) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: this test runs terraform")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	var out, errs bytes.Buffer
	env, err := localrun.Start(ctx, localrun.Options{Engines: n, TimeScale: 0.001, TempBase: t.TempDir(), NoColor: true, Out: &out, Err: &errs})
	if err != nil {
		t.Fatalf("start: %v\n%s%s", err, out.String(), errs.String())
	}
	t.Cleanup(env.Close)
	dir := workspace(t, env, "canary", body)
	return ctx, env, dir, func(dir string, wantErr bool, version string, args ...string) string {
		t.Helper()
		out.Reset()
		errs.Reset()
		stdout, err := env.TerraformOutput(ctx, dir, []string{"TF_VAR_v=" + version}, args...)
		if (err != nil) != wantErr {
			t.Fatalf("terraform %v: %v\n%s\n%s", args, err, stdout, errs.String())
		}
		return string(stdout) + errs.String()
	}
}

// workspace writes localHeader plus body as a fresh working directory of env named name.
func workspace(t *testing.T, env *localrun.Env, name, body string) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.tf"), []byte(localHeader+body), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := env.Workspace(name, src)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// An engine that fails to move aborts the canary: state keeps why in last_abort (the step, the
// user, the control plane's error code), last_analysis keeps the passing step before it, and the
// next plan says so (the warning comes from abortedWarning, checked below).
func TestAccCanary_abortReasonInState(t *testing.T) {
	h := newHarness(t, harnessOptions{Engines: 4, Faults: true})
	users := seedUsers(4)
	cfg := canaryHCL(h, 4, "2.4.0", `
  steps       = [25, 50, 100]
  bake_time   = "0s"
  cohort_seed = "fixed"
`)
	second := upgrade.Cohort("fixed", users, 50, upgrade.Cohort("fixed", users, 25, nil))
	bad := ""
	for _, u := range second {
		if u != upgrade.Cohort("fixed", users, 25, nil)[0] {
			bad = u
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{
			{
				Config:             cfg,
				ExpectNonEmptyPlan: true,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_abort"), knownvalue.Null()),
				},
			},
			{
				PreConfig: func() {
					if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultHealthNeverOK, UserID: bad, Version: "2.4.0"}); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(canaryAddr, tfjsonpath.New("last_abort"), knownvalue.Null()),
				}},
				ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*aborted at the 50% step.*HEALTH_CHECK_FAILED`),
			},
			{
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.step", "50"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.cause", "engine_failed"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.user_id", bad),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.error_code", "HEALTH_CHECK_FAILED"),
					resource.TestCheckResourceAttr(canaryAddr, "last_abort.rolled_back", "true"),
					resource.TestMatchResourceAttr(canaryAddr, "last_abort.detail", regexp.MustCompile(`^Moving user `+bad+`'s engine at the 50% step failed: .*HEALTH_CHECK_FAILED`)),
					// The analysis record is the 25% step's: no analysis ran at 50%.
					resource.TestCheckResourceAttr(canaryAddr, "last_analysis.step", "25"),
					checkFn(func() error { return expectFleet(h, users, map[string]int{"2.3.1/running": 4}) }),
				),
			},
		},
	})
}

// The plan after an abort carries its reason in a warning.
func TestCanaryAbortedWarning(t *testing.T) {
	f := &rollout.StepFailure{Step: 50, Engine: "user-0021", EngineErr: &rollout.OperationError{Op: api.Operation{ID: "op-1", Kind: api.OpUpgrade, UserID: "user-0021", Status: api.OpFailed,
		Error: &api.ErrorDetail{Code: api.CodeHealthCheckFailed, Message: "2.4.0 on user user-0021 never reported healthy"}}}}
	m := canaryModel{ID: types.StringValue("canary-x"), Version: types.StringValue("2.4.0"), LastAbort: abortObject(f, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	d, ok := abortedWarning(m)
	if !ok || d.Summary() != "Canary Aborted" {
		t.Fatalf("no abort warning: %v", d)
	}
	for _, want := range []string{"aborted at the 50% step on 2026-01-02T03:04:05Z (engine_failed)", "user-0021", "HEALTH_CHECK_FAILED: 2.4.0 on user user-0021 never reported healthy", "went back to its stable version"} {
		if !strings.Contains(d.Detail(), want) {
			t.Errorf("abort warning does not say %q:\n%s", want, d.Detail())
		}
	}
	if code, ok := m.LastAbort.Attributes()["error_code"].(types.String); !ok || code.ValueString() != api.CodeHealthCheckFailed {
		t.Errorf("error_code %v", code)
	}
}

// localHeader starts a configuration for localrun: the provider from the registry address that
// dev_overrides points at this checkout's build, and the version to roll out as var.v.
const localHeader = `
terraform {
  required_providers {
    engine = { source = "septemberai/engine" }
  }
}
provider "engine" {}
variable "v" {
  type = string
}
`

// What a user reads in terraform's own output, with the provider built from this checkout: the
// apply of a canary does not print a "step planned" warning after the step has run (Terraform
// plans again while applying and prints those diagnostics last; planned_step carries it in the
// plan instead), and after a create that aborts, the next plan says why and that the tainted
// canary is replaced.
func TestAccCanary_terraformOutput(t *testing.T) {
	ctx, env, dir, run := localCanary(t, 10, `
resource "engine_canary" "c" {
  version   = var.v
  user_ids  = [for i in range(1, 11) : format("user-%04d", i)]
  steps     = [10, 50, 100]
  bake_time = "0s"
  analysis  = { max_error_rate = 0.05 }
}
`)

	applied := run(dir, false, "2.4.0", "apply", "-auto-approve", "-input=false")
	if !strings.Contains(applied, `planned_step        = "move 1 user to 10%: user-`) {
		t.Errorf("the plan of the apply does not show planned_step:\n%s", applied)
	}
	if after := applied[strings.Index(applied, "Creating..."):]; strings.Contains(after, "Planned") {
		t.Errorf("after the step ran, the apply still printed a warning that it is planned:\n%s", after)
	}

	run(dir, false, "2.4.1", "apply", "-auto-approve", "-input=false", "-destroy")
	aborted := run(dir, true, "2.4.1", "apply", "-auto-approve", "-input=false")
	if !strings.Contains(aborted, "Error: Canary Aborted") {
		t.Fatalf("2.4.1 did not abort:\n%s", aborted)
	}
	plan := run(dir, false, "2.4.1", "plan", "-input=false")
	for _, want := range []string{"is tainted, so must be replaced", "Warning: Canary Aborted", "aborted at the 10% step", "(analysis_failed): The analysis of the 10% step failed:", "max_error_rate 0.05"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan after the aborted create does not say %q:\n%s", want, plan)
		}
	}

	// The documented filter: a moved user that leaves 2.4.0 too (moved on to 2.4.1 by hand) is
	// named by the plan.
	dir = workspace(t, env, "left", `
data "engine_instances" "on_231" {
  version = "2.3.1"
}
resource "engine_canary" "c" {
  version   = var.v
  user_ids  = data.engine_instances.on_231.user_ids
  steps     = [50, 100]
  hold_at   = 50
  bake_time = "0s"
}
`)
	run(dir, false, "2.4.0", "apply", "-auto-approve", "-input=false")
	all, err := env.Client.AllEngines(ctx, client.ListEnginesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	moved := ""
	for _, e := range all {
		if e.EngineVersion == "2.4.0" {
			moved = e.UserID
		}
	}
	if moved == "" {
		t.Fatal("the canary moved no engine")
	}
	if _, err := (&rollout.Driver{Client: env.Client}).Upgrade(ctx, moved, "by-hand", 0, api.UpgradeRequest{Version: "2.4.1"}); err != nil {
		t.Fatal(err)
	}
	plan = run(dir, false, "2.4.0", "plan", "-input=false")
	for _, want := range []string{"Warning: Moved Users Left The Canary", "- " + moved + ": runs 2.4.1 (running); it ran 2.3.1 before this canary moved it"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan after %s moved on to 2.4.1 does not say %q:\n%s", moved, want, plan)
		}
	}
}
