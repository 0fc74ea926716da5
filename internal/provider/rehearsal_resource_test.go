package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

const rehearsalAddr = "engine_rehearsal.r"

func (h *harness) rehearsalConfig(version, body string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_rehearsal" "r" {
  user_id      = "user-0001"
  version      = %q
  replay_turns = 10
  analysis = {
    max_error_rate      = 0.05
    max_p99_latency_ms  = 1500
    min_cache_hit_ratio = 0.6
  }
%s
}
`, version, body)
}

// brainSum is the sha256 of user's brain as it is on disk: its file and its WAL.
func (h *harness) brainSum(user string) string {
	h.t.Helper()
	sum := sha256.New()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(h.Server.BrainPath(user) + suffix)
		if err != nil && !os.IsNotExist(err) {
			h.t.Fatal(err)
		}
		sum.Write(b)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// allEngines lists every engine the control plane has, staging engines included.
func (h *harness) allEngines() ([]api.Engine, error) {
	req, _ := http.NewRequest(http.MethodGet, h.Endpoint+"/v1/engines?include_staging=true", nil)
	req.Header.Set(api.KeyHeader, h.Key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var l api.EngineList
	return l.Engines, json.NewDecoder(res.Body).Decode(&l)
}

// dataDirOf is the data dir of the harness's control plane (brains live in its brains/).
func dataDirOf(h *harness) string { return filepath.Dir(filepath.Dir(h.Server.BrainPath("x"))) }

// noStagingLeft checks that no staging engine, engine process or staging brain is left.
func (h *harness) noStagingLeft(staging *string) func(*terraform.State) error {
	return func(*terraform.State) error {
		es, err := h.allEngines()
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.RehearsalID != "" {
				return fmt.Errorf("staging engine %s of rehearsal %s is left", e.UserID, e.RehearsalID)
			}
		}
		if *staging != "" {
			if _, err := os.Stat(h.Server.BrainPath(*staging)); !os.IsNotExist(err) {
				return fmt.Errorf("staging brain of %s is left (%w)", *staging, err)
			}
		}
		if h.Server.Runtime() == "process" && len(enginePIDs(dataDirOf(h))) != len(es) {
			return fmt.Errorf("%d engine processes for %d engines", len(enginePIDs(dataDirOf(h))), len(es))
		}
		return nil
	}
}

// TestAccRehearsal_majorOnACopy: 2.4.0 -> 3.0.0 rehearsed on a brain with turns. The destructive
// migration runs on the copy only (the source brain's sha256 is unchanged and its schema too),
// each migration is timed, the rehearsal passes, staging_url answers /health while keep_engine
// holds it, import reads it back, and nothing is left after destroy.
func TestAccRehearsal_majorOnACopy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0", Engines: 1})
	h.writeTurns("user-0001", "plan my week", 15)
	// The snapshot checkpoints the brain's WAL into its file; from then on nothing may change it.
	snap := h.snapshotNow("user-0001")
	before := h.brainSum("user-0001")
	var staging string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		CheckDestroy:             h.noStagingLeft(&staging),
		Steps: []resource.TestStep{{
			Config: h.rehearsalConfig("3.0.0", fmt.Sprintf("  snapshot_id = %q\n  keep_engine = true\n  eval_suite = \"regression\"", snap)),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("verdict"), knownvalue.StringExact("pass")),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("from_version"), knownvalue.StringExact("2.4.0")),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("upgrade_path"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact("2.4.0"), knownvalue.StringExact("3.0.0")})),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("migrations").AtSliceIndex(0).AtMapKey("id"),
					knownvalue.StringExact("0006_knowledge_json")),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("migrations").AtSliceIndex(0).AtMapKey("destructive"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("failed_checks"), knownvalue.ListSizeExact(0)),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("staging").AtMapKey("eval_score"), knownvalue.NotNull()),
			},
			Check: func(s *terraform.State) error {
				attrs := s.RootModule().Resources[rehearsalAddr].Primary.Attributes
				staging = attrs["staging_user_id"]
				if after := h.brainSum("user-0001"); after != before {
					return fmt.Errorf("the source brain changed during the rehearsal")
				}
				if e := h.Engine("user-0001"); e.EngineVersion != "2.4.0" || e.SchemaVersion != 5 || e.Status != api.StatusRunning {
					return fmt.Errorf("source engine moved: %+v", e)
				}
				if attrs["migrations.0.duration_ms"] == "0" || attrs["migrations.0.duration_ms"] == "" {
					return fmt.Errorf("no migration duration: %q", attrs["migrations.0.duration_ms"])
				}
				res, err := http.Get(attrs["staging_url"] + "/health")
				if err != nil {
					return fmt.Errorf("staging_url %q: %w", attrs["staging_url"], err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					return fmt.Errorf("staging_url /health answered %d", res.StatusCode)
				}
				fleet, err := h.Client.AllEngines(context.Background(), client.ListEnginesOptions{})
				if err != nil || len(fleet) != 1 {
					return fmt.Errorf("GET /v1/engines lists %d engines (%w), want the fleet only", len(fleet), err)
				}
				return nil
			},
		}, {
			ResourceName: rehearsalAddr, ImportState: true, ImportStateVerify: true,
			ImportStateVerifyIgnore: []string{"replay_turns", "analysis", "timeouts"},
		}, {
			Config: h.rehearsalConfig("3.0.0", fmt.Sprintf("  snapshot_id = %q\n  eval_suite = \"regression\"", snap)),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("staging_url"), knownvalue.StringExact("")),
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("verdict"), knownvalue.StringExact("pass")),
			},
			Check: h.noStagingLeft(&staging),
		}},
	})
}

// TestAccRehearsal_badPatchFailsTheApply: the 2.4.1 rehearsal fails the apply naming the metrics
// with their figures and leaves nothing running; the source engine serves turns throughout.
func TestAccRehearsal_badPatchFailsTheApply(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0", Engines: 1})
	h.writeTurns("user-0001", "plan my week", 15)
	var served, refused int
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	staging := ""
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := h.Client.WriteTurns(context.Background(), "user-0001", api.TurnsRequest{Count: 1, Content: "during the rehearsal"})
			mu.Lock()
			if err != nil {
				refused++
			} else {
				served++
			}
			mu.Unlock()
		}
	}()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      h.rehearsalConfig("2.4.1", "  keep_engine = true"),
			ExpectError: errorLike(`Rehearsal Failed`),
		}, {
			Config:      h.rehearsalConfig("2.4.1", "  keep_engine = true"),
			ExpectError: errorLike(`p99_latency_ms: staging`),
			Check:       h.noStagingLeft(&staging),
		}},
	})
	close(stop)
	<-done
	if err := h.noStagingLeft(&staging)(nil); err != nil {
		t.Fatal(err)
	}
	if served == 0 || refused != 0 {
		t.Fatalf("the source engine during the rehearsals: %d turns served, %d refused", served, refused)
	}
	rs, err := h.Client.ListRehearsals(context.Background(), "user-0001")
	if err != nil || len(rs) != 2 || rs[0].Status != api.RehearsalFailed {
		t.Fatalf("rehearsals: %v %+v", err, rs)
	}
	for _, r := range rs {
		if _, err := os.Stat(h.Server.BrainPath(r.StagingUserID)); !os.IsNotExist(err) {
			t.Fatalf("staging brain of failed rehearsal %s is left (%v)", r.ID, err)
		}
	}
	if n := h.turnCount("user-0001", "during the rehearsal"); n != served {
		t.Fatalf("source brain holds %d of the %d turns served during the rehearsals", n, served)
	}
}

// TestAccProcess_rehearsal reruns the rehearsal tests with every engine a stand-in Engine
// process: the staging engine is a real process on the migrated copy, the replay real requests.
func TestAccProcess_rehearsal(t *testing.T) {
	t.Parallel()
	runOnProcesses(t, map[string]func(*testing.T){
		"majorOnACopy":          TestAccRehearsal_majorOnACopy,
		"badPatchFailsTheApply": TestAccRehearsal_badPatchFailsTheApply,
		"releaseCheckedAtPlan":  TestAccRelease_rehearsalCheckedAtPlan,
	})
}

// TestAccExampleRehearsal applies the engine_rehearsal resource and data source examples: the
// rehearsal passes, the release it gates upgrades the engine, destroy rolls it back and leaves
// no staging engine; the data source reads a rehearsal made elsewhere.
func TestAccExampleRehearsal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	staging := ""
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		CheckDestroy: func(s *terraform.State) error {
			if err := rolledBack(h, "user-0001", "2.3.1"); err != nil {
				return err
			}
			return h.noStagingLeft(&staging)(s)
		},
		Steps: []resource.TestStep{{
			Config: exampleConfig(t, h, "examples/resources/engine_rehearsal"),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("verdict"), knownvalue.StringExact("pass")),
				statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("migrations"), knownvalue.MapSizeExact(2)),
				statecheck.ExpectKnownValue("engine_release.v3", tfjsonpath.New("version"), knownvalue.StringExact("3.0.0")),
			},
			Check: func(s *terraform.State) error {
				staging = s.RootModule().Resources["engine_rehearsal.v3"].Primary.Attributes["staging_user_id"]
				return nil
			},
		}},
	})
	reh := h.rehearse("user-0001", api.RehearsalRequest{Version: "3.0.0", Analysis: api.RehearsalAnalysis{MaxP99LatencyMS: new(100.0),
		BaselineTolerance: 10}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:          exampleConfig(t, h, "examples/data-sources/engine_rehearsal"),
			ConfigVariables: configVariables(map[string]string{"rehearsal_id": reh.ID}),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("verdict"), knownvalue.StringExact("fail")),
				statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("path"), knownvalue.StringExact("2.3.1 -> 2.4.0 -> 3.0.0")),
				statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("failed"), knownvalue.ListSizeExact(1)),
			},
		}},
	})
}

// TestAccRehearsal_interruptedApplyAttaches: an apply that runs out of time while the rehearsal
// runs records it as running (a warning, no error); the next apply waits for that rehearsal's
// verdict instead of starting another.
func TestAccRehearsal_interruptedApplyAttaches(t *testing.T) {
	t.Parallel()
	// At a time scale of 0.2 the rehearsal's 30s window lasts 6s: longer than the create timeout.
	h := newHarness(t, harnessOptions{Version: "2.4.0", Engines: 1, TimeScale: 0.2})
	cfg := func(timeout string) string {
		return h.ProviderBlock() + `
resource "engine_rehearsal" "r" {
  user_id  = "user-0001"
  version  = "3.0.0"
  analysis = { window = "30s" }
` + timeout + "\n}\n"
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:             cfg("  timeouts {\n    create = \"2s\"\n  }"),
			ExpectNonEmptyPlan: true,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("status"), knownvalue.StringExact("running")),
			},
		}, {
			Config: cfg("  timeouts {\n    create = \"2s\"\n  }"),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(rehearsalAddr, tfjsonpath.New("verdict"), knownvalue.StringExact("pass")),
			},
			Check: func(*terraform.State) error {
				rs, err := h.Client.ListRehearsals(context.Background(), "user-0001")
				if err != nil || len(rs) != 1 {
					return fmt.Errorf("%d rehearsals (%w), want the one the interrupted apply started", len(rs), err)
				}
				return nil
			},
		}},
	})
}
