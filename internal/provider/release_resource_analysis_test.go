package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// analysisBody is an engine_release body upgrading to version behind an auto snapshot, with the
// given analysis settings.
func analysisBody(version, analysis string) string {
	return fmt.Sprintf(`
  version       = %q
  auto_snapshot = true
  analysis = {
%s
  }`, version, analysis)
}

const checklist = `
    max_error_rate      = 0.05
    max_p99_latency_ms  = 1500
    min_cache_hit_ratio = 0.5
    bake_time           = "1s"
    window              = "1s"`

// The control plane's bad patch (2.4.1: errors and P99 up) passes health, fails the analysis after
// its bake, and rolls back to 2.3.1 from the pre-upgrade snapshot, turns and all.
func TestAccRelease_analysisRollsBackBadPatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.writeTurns("user-0001", "before the bad patch", 4)
	start := time.Now()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(analysisBody("2.3.1", checklist)),
		}, {
			Config: h.releaseConfig(analysisBody("2.4.1", checklist)),
			ExpectError: regexp.MustCompile(`(?s)Engine Upgrade Rolled Back.*analysis\s+after\s+a\s+bake\s+of\s+1s\s+failed.*` +
				`error_rate:\s+0\.0[6-9]\d*\s+after\s+the\s+upgrade\s+\(0\.0\d+\s+before\)\s+breaches\s+max_error_rate\s+0\.05.*` +
				`p99_latency_ms:\s+2\d+(\.\d+)?\s+ms\s+after\s+the\s+upgrade\s+\(\d+(\.\d+)?\s+ms\s+before\)\s+breaches\s+max_p99_latency_ms\s+1500.*rolled\s+back\s+automatically.*restored\s+from\s+snapshot.*at\s+2\.3\.1.*runs\s+2\.3\.1`),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(releaseAddr, "version", "2.3.1"),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.status", "rolled_back"),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.version", "2.4.1"),
				h.expectEngine("user-0001", "2.3.1"),
				h.expectTurns("user-0001", "before the bad patch", 4),
				h.expectOperations("user-0001", api.OpUpgrade, 1),
				h.expectOperations("user-0001", api.OpRestore, 1),
				resource.TestMatchResourceAttr(releaseAddr, "last_attempt.error", regexp.MustCompile(`(?s)error_rate: .* after the upgrade \(.* before\).*p99_latency_ms: .* ms after the upgrade \(.* ms before\)`)),
				func(*terraform.State) error {
					if d := time.Since(start); d < time.Second {
						return fmt.Errorf("the failed release took %s: it cannot have baked 1s", d)
					}
					return nil
				},
			),
		}},
	})
}

// A good patch (2.3.0 -> 2.3.1) passes the same analysis, and the plan after it is empty. The plan
// states the watch.
func TestAccRelease_analysisPassesGoodPatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(analysisBody("2.3.0", checklist)),
		}, {
			Config: h.releaseConfig(analysisBody("2.3.1", checklist)),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("analysis").AtMapKey("bake_time"), knownvalue.StringExact("1s")),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("analysis").AtMapKey("baseline_tolerance"), knownvalue.Float64Exact(0.5)),
				plancheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("analysis").AtMapKey("max_new_warning_kinds"), knownvalue.Int64Exact(0)),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("version"), knownvalue.StringExact("2.3.1")),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
		}, {
			Config:           h.releaseConfig(analysisBody("2.3.1", checklist)),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
		}},
	})
}

// A warning kind the old version never logged fails the analysis on its own: 2.4.0 -> 2.4.1 with
// a tolerance loose enough for its errors and latency, and max_new_warning_kinds = 0.
func TestAccRelease_analysisNewWarningKindFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	loose := `
    baseline_tolerance    = 10
    max_new_warning_kinds = 0
    bake_time             = "0s"
    window                = "1s"`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(analysisBody("2.4.0", loose)),
		}, {
			Config:      h.releaseConfig(analysisBody("2.4.1", loose)),
			ExpectError: errorLike("new_warning_kinds: after the upgrade the engine logs 1 warning kinds it did not log before (retrieval_timeout), above max_new_warning_kinds 0"),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				h.expectEngine("user-0001", "2.4.0"),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.status", "rolled_back"),
				// The warning kind is the only failed check.
				resource.TestMatchResourceAttr(releaseAddr, "last_attempt.error", regexp.MustCompile(`failed \(metrics over 1s, after the upgrade against before it\):\n- new_warning_kinds: [^\n]*$`)),
			),
		}},
	})
}

// Bad analysis values are plan errors naming the attribute; nothing is read or changed.
func TestAccRelease_analysisBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, c := range []struct{ analysis, want string }{
		{`max_error_rate = 2`, `analysis.max_error_rate`},
		{`max_p99_latency_ms = 0`, `analysis.max_p99_latency_ms`},
		{`min_cache_hit_ratio = -0.1`, `analysis.min_cache_hit_ratio`},
		{`max_new_warning_kinds = -1`, `analysis.max_new_warning_kinds`},
		{`baseline_tolerance = -1`, `analysis.baseline_tolerance`},
		{`bake_time = "forever"`, `analysis.bake_time`},
		{`window = "0s"`, `analysis.window`},
		{`bake_time = "2h"`, `(?s)Analysis Bake Exceeds The Timeout.*analysis.bake_time`},
	} {
		t.Run(c.want, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: h.Factories(nil),
				Steps: []resource.TestStep{{
					Config:      h.releaseConfig(analysisBody("2.4.0", c.analysis)),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(c.want),
				}},
			})
		})
	}
	if n := h.operations("user-0001", api.OpUpgrade) + h.operations("user-0001", api.OpSnapshot); n != 0 {
		t.Fatalf("bad input started %d operations", n)
	}
}

// An apply stopped during the bake attaches to it on re-apply: the bake goes on for what is left
// of it and the upgrade is judged once; nothing is upgraded twice.
func TestAccRelease_analysisInterruptedBakeResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0", Faults: true})
	// The bake is just shorter than the timeout (the plan's check lets it through) and starts at
	// least slowUpgradeAnswer after the apply does, so the timeout always stops the apply in it.
	const bake = 2990 * time.Millisecond
	body := func(timeout string) string {
		return analysisBody("2.3.1", fmt.Sprintf("    bake_time = %q\n    window = \"1s\"", bake)) + fmt.Sprintf(`
  timeouts {
    update = %q
  }`, timeout)
	}
	metrics := func() int { return h.Requests("GET /v1/engines/user-0001/metrics") }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`version = "2.3.0"`),
		}, {
			PreConfig:   func() { slowUpgradeAnswer(t, h) },
			Config:      h.releaseConfig(body("3s")),
			ExpectError: errorLike("Engine Upgrade Analysis Interrupted"),
		}, {
			PreConfig: func() {
				if n := metrics(); n != 1 {
					t.Fatalf("the interrupted apply read metrics %d times, want 1 (before the drain only)", n)
				}
			},
			Config: h.releaseConfig(body("5m")),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionUpdate),
				plancheck.ExpectUnknownValue(releaseAddr, tfjsonpath.New("last_attempt")),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1),
				func(*terraform.State) error {
					if n := metrics(); n != 2 {
						return fmt.Errorf("metrics were read %d times, want 2: once before the upgrade, once after the (single) bake", n)
					}
					return nil
				}),
		}, {
			Config:           h.releaseConfig(body("5m")),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
		}},
	})
}

// The same on create: an apply that creates the release and upgrades the engine, stopped during
// the bake, keeps the release in state with the attempt in progress (a warning, so Terraform does
// not taint it); the next apply resumes the bake and judges once.
func TestAccRelease_analysisInterruptedCreateBakeResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.0", Faults: true})
	slowUpgradeAnswer(t, h)
	body := func(timeout string) string {
		return analysisBody("2.3.1", "    bake_time = \"2990ms\"\n    window = \"1s\"") + fmt.Sprintf(`
  timeouts {
    create = %q
  }`, timeout)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:             h.releaseConfig(body("3s")),
			ExpectNonEmptyPlan: true,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("in_progress")),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("previous_version"), knownvalue.StringExact("2.3.0")),
			},
		}, {
			Config: h.releaseConfig(body("3s")),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(releaseAddr, plancheck.ResourceActionUpdate),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
				statecheck.ExpectKnownValue(releaseAddr, tfjsonpath.New("previous_version"), knownvalue.StringExact("2.3.0")),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 1),
				func(*terraform.State) error {
					if n := h.Requests("GET /v1/engines/user-0001/metrics"); n != 2 {
						return fmt.Errorf("metrics were read %d times, want 2: once before the upgrade, once after the (single) bake", n)
					}
					return nil
				}),
		}},
	})
}

// The plan states the watch: how long it bakes and what it compares; no analysis or no upgrade
// states nothing, and a bake longer than the timeout is an error on analysis.bake_time.
func TestReleaseWatchPlanDiags(t *testing.T) {
	ctx := context.Background()
	var sr fwresource.SchemaResponse
	(&releaseResource{}).Schema(ctx, fwresource.SchemaRequest{}, &sr)
	objType, ok := sr.Schema.Attributes["analysis"].GetType().(basetypes.ObjectType)
	if !ok {
		t.Fatal("analysis is not an object")
	}
	analysis := func(bake string, maxErr attr.Value) types.Object {
		vals := map[string]attr.Value{}
		for k, ty := range objType.AttrTypes {
			v, err := ty.ValueFromTerraform(ctx, tftypes.NewValue(ty.TerraformType(ctx), nil))
			if err != nil {
				t.Fatal(err)
			}
			vals[k] = v
		}
		vals["bake_time"], vals["window"], vals["max_error_rate"] = types.StringValue(bake), types.StringValue("5m"), maxErr
		vals["baseline_tolerance"], vals["max_new_warning_kinds"] = types.Float64Value(0.5), types.Int64Value(0)
		return types.ObjectValueMust(objType.AttrTypes, vals)
	}
	m := releaseModel{Version: types.StringValue("2.4.1"), AutoRollback: types.BoolValue(true), Analysis: analysis("10m", types.Float64Value(0.05)),
		Timeouts: timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType})}}
	diags := m.watchPlanDiags(ctx, "user-0001", "2.3.1", upgrade.ActionUpgrade, false)
	if diags.HasError() || len(diags) != 1 {
		t.Fatalf("want one warning: %v", diags)
	}
	for _, s := range []string{"bake_time 10m0s", "error_rate (max_error_rate 0.05)", "p99_latency_ms", "cache_hit_ratio", "warning kinds (max_new_warning_kinds 0)",
		"over a 5m0s window with its own figures over the 5m0s before the upgrade", "rolls the engine back to 2.3.1"} {
		if !strings.Contains(diags[0].Detail(), s) {
			t.Errorf("the warning lacks %q: %s", s, diags[0].Detail())
		}
	}
	if d := m.watchPlanDiags(ctx, "user-0001", "2.4.1", upgrade.ActionNone, false); len(d) != 0 {
		t.Errorf("a plan without an upgrade states a watch: %v", d)
	}
	m.Analysis = types.ObjectNull(objType.AttrTypes)
	if d := m.watchPlanDiags(ctx, "user-0001", "2.3.1", upgrade.ActionUpgrade, false); len(d) != 0 {
		t.Errorf("a release without analysis states a watch: %v", d)
	}
	m.Analysis = analysis("2h", types.Float64Null())
	d := m.watchPlanDiags(ctx, "user-0001", "2.3.1", upgrade.ActionUpgrade, true)
	if !d.HasError() || !strings.Contains(d[0].Summary(), "Analysis Bake Exceeds The Timeout") {
		t.Errorf("a 2h bake in a 30m create timeout: %v", d)
	}
}

// slowUpgradeAnswer delays the answer to user-0001's next upgrade request by 600ms, so a bake of
// 2990ms that starts after it cannot end before a 3s timeout, however fast the machine is.
func slowUpgradeAnswer(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultSlowResponse, Method: "POST",
		PathPrefix: "/v1/engines/user-0001/upgrade", DelayMS: 600, Count: 1}); err != nil {
		t.Fatalf("add fault: %v", err)
	}
}

// A terraform killed (SIGKILL) after its update reached the version but before the analysis
// judged it saves neither state nor the bake's private record. The next refresh finds the update
// in the engine's operations (by the key an engine_release update uses) and keeps it unjudged;
// the next apply judges it by the thresholds alone (the figures from before died with the apply)
// and rolls the bad 2.4.1 back, upgrading nothing again.
func TestAccRelease_analysisKilledDuringBakeIsJudged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	h.writeTurns("user-0001", "before the bad patch", 3)
	toBadPatch := func() int {
		ops, err := h.Client.ListOperations(context.Background(), "user-0001")
		if err != nil {
			t.Fatalf("list operations: %v", err)
		}
		n := 0
		for _, op := range ops {
			if op.Kind == api.OpUpgrade && op.ToVersion == "2.4.1" {
				n++
			}
		}
		return n
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(analysisBody("2.4.0", checklist)),
		}, {
			// What a killed apply of version = "2.4.1" leaves behind: its update ran to the end
			// on the control plane, and nothing reached state.
			PreConfig: func() {
				ctx := context.Background()
				op, err := h.Client.Upgrade(ctx, "user-0001", ownUpdateKey("user-0001"), 0, api.UpgradeRequest{Version: "2.4.1"})
				if err == nil {
					op, err = h.Client.WaitOperation(ctx, op.ID, nil)
				}
				if err != nil || op.Status != api.OpSucceeded {
					t.Fatalf("the killed apply's update: %v (%+v)", err, op)
				}
			},
			Config:      h.releaseConfig(analysisBody("2.4.1", checklist)),
			ExpectError: regexp.MustCompile(`(?s)Engine Upgrade Rolled Back.*error_rate:\s+0\.0[6-9]\d*\s+after\s+the\s+upgrade\s+\(no\s+figures\s+from\s+before\)\s+breaches\s+max_error_rate\s+0\.05`),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.status", "rolled_back"),
				h.expectEngine("user-0001", "2.4.0"),
				h.expectTurns("user-0001", "before the bad patch", 3),
				func(*terraform.State) error {
					if n := toBadPatch(); n != 1 {
						return fmt.Errorf("%d upgrades to 2.4.1, want 1 (the killed apply's): the judging apply must not upgrade again", n)
					}
					return nil
				}),
		}},
	})
}
