package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
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

// The fault matrix: every resource's create, update, read and destroy with a fault the control
// plane injects into the provider's requests. The bar (DESIGN.md §5): the apply succeeds, exactly
// one operation ran per intended change, and no brain row is lost. `make chaos` runs it with the
// terraform child-process suite in internal/chaos, which prints the tally this feeds.

// chaosFault is one column of the matrix: a certain burst first (so every cell is sure to
// meet the fault) and then the fault at its rate for the rest of the test.
type chaosFault struct {
	name   string
	faults []api.Fault
	// provider lines: a slow response past the client's timeout needs a short request_timeout.
	provider []string
}

var chaosFaults = []chaosFault{
	{name: "5xx-20pct", faults: []api.Fault{
		{Kind: api.FaultServerError, Count: 2}, {Kind: api.FaultServerError, Probability: 0.2}}},
	{name: "429-storm-retry-after", faults: []api.Fault{
		{Kind: api.FaultRateLimit, Count: 3, RetryAfterSeconds: 1}, {Kind: api.FaultRateLimit, Probability: 0.3, Count: 12, RetryAfterSeconds: 1}}},
	{name: "429-storm-no-retry-after", faults: []api.Fault{
		{Kind: api.FaultRateLimit, Count: 3}, {Kind: api.FaultRateLimit, Probability: 0.3}}},
	// The first POST's answer is lost after the operation started: the retry must replay it.
	{name: "dropped-after-work-20pct", faults: []api.Fault{
		{Kind: api.FaultDropResponse, Method: "POST", Count: 1}, {Kind: api.FaultDropResponse, Probability: 0.2}}},
	{name: "slow-past-client-timeout", faults: []api.Fault{
		{Kind: api.FaultSlowResponse, Count: 1, DelayMS: 2500}, {Kind: api.FaultSlowResponse, Probability: 0.2, Count: 5, DelayMS: 2500}},
		provider: []string{`request_timeout = "1s"`}},
}

// chaosSide is a side channel that shrugs faults off (many retries, a long timeout), so a check
// never fails because the fault under test hit the test's own reads.
func chaosSide(t *testing.T, h *harness) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: h.Endpoint, APIKey: h.Key, RequestTimeout: 20 * time.Second, MaxRetries: 12,
		RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 200 * time.Millisecond, UserAgent: "engine-acceptance-harness"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chaosCheck holds the expectations of one matrix cell and reports it to the chaos tally.
type chaosCheck struct {
	t    *testing.T
	h    *harness
	side *client.Client
	name string
	dups int
	lost int
}

// ops is a check that user's engine ran exactly want[kind] operations of each kind.
func (c *chaosCheck) ops(user string, want map[string]int64) resource.TestCheckFunc {
	return func(*terraform.State) error {
		st, err := c.side.Stats(context.Background())
		if err != nil {
			return err
		}
		var errs []string
		for kind, n := range want {
			if got := st.OperationsByUser[user+"/"+kind]; got != n {
				errs = append(errs, fmt.Sprintf("%d %s operations ran on %s, want exactly %d", got, kind, user, n))
				if got > n {
					c.dups += int(got - n)
				}
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	}
}

// turns is a check that user's brain still holds the n turns "kept".
func (c *chaosCheck) turns(user string, n int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		ts, err := c.side.Turns(context.Background(), user)
		if err != nil {
			return err
		}
		got := 0
		for _, x := range ts {
			if x.Content == "kept" {
				got++
			}
		}
		if got != n {
			c.lost += max(n-got, 0)
			return fmt.Errorf("user %s's brain holds %d of the %d turns written before the faults", user, got, n)
		}
		return nil
	}
}

func (c *chaosCheck) version(user, version string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		e, err := c.side.GetEngine(context.Background(), user)
		if err != nil {
			return err
		}
		if e.EngineVersion != version || e.Status != api.StatusRunning {
			return fmt.Errorf("user %s's engine runs %s (%s), want %s running", user, e.EngineVersion, e.Status, version)
		}
		return nil
	}
}

// fired is how many times the injected faults fired; a cell whose fault never fired proved
// nothing and fails.
func (c *chaosCheck) fired() int {
	fs, err := c.side.Faults(context.Background())
	if err != nil {
		c.t.Fatalf("read faults: %v", err)
	}
	n := 0
	for _, f := range fs {
		n += f.Fired
	}
	return n
}

// finish verifies the fault fired and appends the cell to CHAOS_TALLY_FILE (JSON lines) for the
// summary `make chaos` prints.
func (c *chaosCheck) finish() {
	if c.t.Skipped() {
		return // resource.Test skips without TF_ACC: nothing ran, nothing to check
	}
	n := c.fired()
	if n == 0 {
		c.t.Errorf("the fault never fired: this cell proved nothing")
	}
	c.t.Logf("%s: faults fired %d, duplicate operations %d, rows lost %d", c.name, n, c.dups, c.lost)
	path := os.Getenv("CHAOS_TALLY_FILE")
	if path == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{"name": "fault matrix: " + c.name, "faults": n, "failed": c.t.Failed(),
		"duplicate_ops": c.dups, "rows_lost": c.lost})
	chaosTallyMu.Lock()
	defer chaosTallyMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Errorf("chaos tally: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		c.t.Errorf("chaos tally: %v", err)
	}
}

var chaosTallyMu sync.Mutex

func newChaosCheck(t *testing.T, name string, opts harnessOptions) *chaosCheck {
	opts.Faults = true
	h := newHarness(t, opts)
	c := &chaosCheck{t: t, h: h, side: chaosSide(t, h), name: name}
	t.Cleanup(c.finish)
	return c
}

// addFaults starts injecting fs (PreConfig of the first step: the setup writes are done).
func (c *chaosCheck) addFaults(fs []api.Fault) func() {
	return func() {
		for _, f := range fs {
			if _, err := c.side.AddFault(context.Background(), f); err != nil {
				c.t.Fatalf("add fault: %v", err)
			}
		}
	}
}

func chaosProvider(h *harness, f chaosFault) string {
	return h.ProviderBlock(append([]string{"max_retries = 8"}, f.provider...)...)
}

func TestAccChaos_releaseFaultMatrix(t *testing.T) {
	for _, f := range chaosFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c := newChaosCheck(t, "engine_release/"+f.name, harnessOptions{Version: "2.3.0"})
			h := c.h
			h.writeTurns("user-0001", "kept", 3)
			cfg := func(body string) string {
				return chaosProvider(h, f) + fmt.Sprintf("\nresource \"engine_release\" \"r\" {\n  user_id = \"user-0001\"\n%s\n}\n", body)
			}
			upgraded := cfg("  version = \"2.4.0\"\n  auto_snapshot = true")
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: h.Factories(nil),
				Steps: []resource.TestStep{{
					// create: adopt and patch.
					PreConfig: c.addFaults(f.faults),
					Config:    cfg(`  version = "2.3.1"`),
					Check: resource.ComposeTestCheckFunc(c.version("user-0001", "2.3.1"), c.turns("user-0001", 3),
						c.ops("user-0001", map[string]int64{api.OpUpgrade: 1, api.OpSnapshot: 0})),
				}, {
					// update: a migrating minor with the provider's own snapshot.
					Config: upgraded,
					Check: resource.ComposeTestCheckFunc(c.version("user-0001", "2.4.0"), c.turns("user-0001", 3),
						c.ops("user-0001", map[string]int64{api.OpUpgrade: 2, api.OpSnapshot: 1})),
				}, {
					// read: refresh and plan, nothing to do, nothing started.
					Config:           upgraded,
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
					Check:            c.ops("user-0001", map[string]int64{api.OpUpgrade: 2, api.OpSnapshot: 1, api.OpRestore: 0}),
				}},
				// destroy: the rollback restores the snapshot at 2.3.1's schema, once.
				CheckDestroy: resource.ComposeTestCheckFunc(c.version("user-0001", "2.3.0"), c.turns("user-0001", 3),
					c.ops("user-0001", map[string]int64{api.OpUpgrade: 2, api.OpSnapshot: 1, api.OpRestore: 1})),
			})
		})
	}
}

func TestAccChaos_brainSnapshotFaultMatrix(t *testing.T) {
	for _, f := range chaosFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c := newChaosCheck(t, "engine_brain_snapshot/"+f.name, harnessOptions{Version: "2.3.1"})
			h := c.h
			h.writeTurns("user-0001", "kept", 3)
			cfg := func(body string) string {
				return chaosProvider(h, f) + fmt.Sprintf("\nresource \"engine_brain_snapshot\" \"s\" {\n  user_id = \"user-0001\"\n  force_destroy = true\n%s\n}\n", body)
			}
			var id string
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: h.Factories(nil),
				Steps: []resource.TestStep{{
					PreConfig: c.addFaults(f.faults),
					Config:    cfg(`  description = "chaos"`),
					Check: resource.ComposeTestCheckFunc(c.ops("user-0001", map[string]int64{api.OpSnapshot: 1}), c.turns("user-0001", 3),
						func(s *terraform.State) error {
							id = s.RootModule().Resources["engine_brain_snapshot.s"].Primary.ID
							return nil
						}),
				}, {
					// update in place: retention and description, no new snapshot.
					Config: cfg("  description = \"chaos, kept longer\"\n  retention_days = 30"),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("engine_brain_snapshot.s", plancheck.ResourceActionUpdate)}},
					Check: resource.ComposeTestCheckFunc(c.ops("user-0001", map[string]int64{api.OpSnapshot: 1}),
						func(*terraform.State) error {
							s, err := c.side.GetSnapshot(context.Background(), id)
							if err != nil {
								return err
							}
							if s.RetentionDays != 30 || s.Description != "chaos, kept longer" {
								return fmt.Errorf("snapshot %s has retention %d and description %q after the update", id, s.RetentionDays, s.Description)
							}
							return nil
						}),
				}, {
					Config:           cfg("  description = \"chaos, kept longer\"\n  retention_days = 30"),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				}},
				CheckDestroy: resource.ComposeTestCheckFunc(c.turns("user-0001", 3), c.ops("user-0001", map[string]int64{api.OpSnapshot: 1}),
					func(*terraform.State) error {
						if _, err := c.side.GetSnapshot(context.Background(), id); !client.IsNotFound(err) {
							return fmt.Errorf("snapshot %s still exists after destroy (err: %w)", id, err)
						}
						return nil
					}),
			})
		})
	}
}

func TestAccChaos_canaryFaultMatrix(t *testing.T) {
	users := seedUsers(4)
	for _, f := range chaosFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c := newChaosCheck(t, "engine_canary/"+f.name, harnessOptions{Engines: 4, Version: "2.3.1"})
			h := c.h
			for _, u := range users {
				h.writeTurns(u, "kept", 2)
			}
			cfg := func(extra string) string {
				return chaosProvider(h, f) + fmt.Sprintf(`
resource "engine_canary" "c" {
  version   = "2.4.0"
  user_ids  = ["user-0001", "user-0002", "user-0003", "user-0004"]
  steps     = [50, 100]
  mode      = "auto"
  bake_time = "0s"
%s
}
`, extra)
			}
			// moved checks that exactly n engines run 2.4.0, each moved one after exactly one
			// snapshot and one upgrade, the others untouched, and every brain whole.
			moved := func(n int, restores int64) resource.TestCheckFunc {
				return func(*terraform.State) error {
					on := 0
					for _, u := range users {
						e, err := c.side.GetEngine(context.Background(), u)
						if err != nil {
							return err
						}
						want := map[string]int64{api.OpUpgrade: 0, api.OpSnapshot: 0, api.OpRestore: restores}
						if e.EngineVersion == "2.4.0" {
							on++
							want[api.OpUpgrade], want[api.OpSnapshot] = 1, 1
						} else if restores > 0 {
							want[api.OpUpgrade], want[api.OpSnapshot] = 1, 1
						}
						if err := resource.ComposeTestCheckFunc(c.turns(u, 2), c.ops(u, want))(nil); err != nil {
							return err
						}
					}
					if on != n {
						return fmt.Errorf("%d engines run 2.4.0, want %d", on, n)
					}
					return nil
				}
			}
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: h.Factories(nil),
				Steps: []resource.TestStep{{
					// create: the first step only.
					PreConfig: c.addFaults(f.faults),
					Config:    cfg("  hold_at = 50"),
					Check:     moved(2, 0),
				}, {
					// update: release the hold, the rest move.
					Config: cfg(""),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("engine_canary.c", plancheck.ResourceActionUpdate)}},
					Check: moved(4, 0),
				}, {
					// read: nothing to do, nothing started.
					Config:           cfg(""),
					ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
					Check:            moved(4, 0),
				}},
				// destroy: every engine rolled back once, its brain whole.
				CheckDestroy: moved(0, 1),
			})
		})
	}
}

// A create applied while another run moves the engine to the same version: Terraform plans the
// create twice (at plan and again at apply), and both plans must say the same thing even though
// the engine already reports the new version while the other run's operation boots it. The plan
// is made from where that operation started; the apply attaches to it and starts nothing.
func TestAccChaos_createWhileAnotherRunMovesTheEngine(t *testing.T) {
	t.Parallel()
	// Nominal durations: the boot and health steps, during which the engine already reports the
	// target version, last seconds.
	h := newHarness(t, harnessOptions{Version: "2.3.0", TimeScale: 1})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			PreConfig: func() {
				ctx := context.Background()
				if _, err := h.Client.Upgrade(ctx, "user-0001", client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.3.1"}); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
					e := h.Engine("user-0001")
					if e.EngineVersion == "2.3.1" && e.CurrentOperationID != "" {
						return // booting the new version: the moment the two plans used to differ
					}
					if time.Now().After(deadline) || e.CurrentOperationID == "" {
						t.Fatalf("never saw the engine booting 2.3.1: %+v", e)
					}
				}
			},
			Config: h.releaseConfig(`version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("previous_version"), knownvalue.StringExact("2.3.0")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("planned_upgrade").AtMapKey("action"), knownvalue.StringExact("upgrade")),
			}},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
		}},
	})
}
