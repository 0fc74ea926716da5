package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const (
	driftedAddr = "engine_release.drifted"
	otherAddr   = "engine_release.other"
)

// driftConfig is a workspace of two releases: user-0001's (the one someone moves outside
// Terraform) with body, and user-0002's at otherVersion.
func (h *harness) driftConfig(body, otherVersion string) string {
	return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_release" "drifted" {
  user_id = "user-0001"
%s
}

resource "engine_release" "other" {
  user_id = "user-0002"
  version = %q
}
`, body, otherVersion)
}

// One engine moved above its version outside Terraform does not block the workspace: the plan
// leaves that engine alone (a no-op with a warning) and the apply ships the unrelated change.
// A change to the drifted release that would not move the engine leaves it alone too; the two
// ways out (accept the version, or allow_downgrade to go back) both work.
func TestAccRelease_driftAboveDoesNotBlockTheWorkspace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	running := func(addr, version, runs string) []statecheck.StateCheck {
		return []statecheck.StateCheck{
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("version"), knownvalue.StringExact(version)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("running_version"), knownvalue.StringExact(runs)),
		}
	}
	tfresource.Test(t, tfresource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []tfresource.TestStep{{
			Config: h.driftConfig(`version = "2.4.0"`, "2.4.0"),
		}, {
			// Someone upgrades user-0001 to 2.4.1; the workspace upgrades user-0002.
			PreConfig: func() { h.upgradeOutOfBand("user-0001", "2.4.1", "") },
			Config:    h.driftConfig(`version = "2.4.0"`, "2.4.1"),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(driftedAddr, plancheck.ResourceActionNoop),
				plancheck.ExpectResourceAction(otherAddr, plancheck.ResourceActionUpdate),
			}},
			ConfigStateChecks: running(driftedAddr, "2.4.0", "2.4.1"),
			Check: tfresource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.1"), h.expectEngine("user-0002", "2.4.1"),
				h.expectOperations("user-0001", api.OpUpgrade, 1), h.expectOperations("user-0002", api.OpUpgrade, 1)),
		}, {
			// A change that does not move the engine applies without touching it.
			Config: h.driftConfig(`version = "2.4.0"
  drain_timeout = "45s"`, "2.4.1"),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(driftedAddr, plancheck.ResourceActionUpdate),
			}},
			ConfigStateChecks: running(driftedAddr, "2.4.0", "2.4.1"),
			Check:             tfresource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.1"), h.expectOperations("user-0001", api.OpUpgrade, 1)),
		}, {
			// A move that would change the engine is refused, naming the drift and the ways out.
			Config: h.driftConfig(`version = "2.3.1"`, "2.4.1"),
			ExpectError: regexp.MustCompile(errorLike(`Downgrade Not Allowed`).String() + `[\s\S]*` +
				errorLike(`moved user user-0001's engine from 2.4.0 to 2.4.1 outside this resource: this resource did not make that upgrade`).String() + `[\s\S]*` +
				errorLike(`set version = "2.4.1"`).String()),
		}, {
			// Way out 1: go back with allow_downgrade.
			Config: h.driftConfig(`version = "2.4.0"
  allow_downgrade = true`, "2.4.1"),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(driftedAddr, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(driftedAddr, tfjsonpath.New("planned_upgrade").AtMapKey("action"), knownvalue.StringExact("downgrade")),
			}},
			ConfigStateChecks: running(driftedAddr, "2.4.0", "2.4.0"),
			Check:             h.expectEngine("user-0001", "2.4.0"),
		}, {
			Config: h.driftConfig(`version = "2.4.0"`, "2.4.1"),
		}, {
			// Way out 2: accept the version someone else set; nothing runs on the engine.
			PreConfig: func() { h.upgradeOutOfBand("user-0001", "2.4.1", "") },
			Config:    h.driftConfig(`version = "2.4.1"`, "2.4.1"),
			ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(driftedAddr, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(driftedAddr, tfjsonpath.New("planned_upgrade"), knownvalue.Null()),
			}},
			ConfigStateChecks: running(driftedAddr, "2.4.1", "2.4.1"),
			// Two moves from outside and the downgrade back: none by this apply.
			Check: tfresource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.1"), h.expectOperations("user-0001", api.OpUpgrade, 3)),
		}},
	})
}

// Every plan of a release whose engine someone moved above version warns, naming the move and
// both ways out: the plan that changes nothing (answered without decoding the state) and the
// plan that changes only settings.
func TestReleasePlanWarnsOfDriftAbove(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.4.0"})
	h.upgradeOutOfBand("user-0001", "2.4.1", "")
	ctx := context.Background()
	r := &releaseResource{data: &providerData{Client: h.Client}}
	var sr resource.SchemaResponse
	r.Schema(ctx, resource.SchemaRequest{}, &sr)
	state := tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(ctx), nil)}
	for k, v := range map[string]attr.Value{
		"id": types.StringValue("user-0001"), "user_id": types.StringValue("user-0001"), "version": types.StringValue("2.4.0"),
		"running_version": types.StringValue("2.4.1"), "previous_version": types.StringValue("2.4.0"), "schema_version": types.Int64Value(5),
		"allow_downgrade": types.BoolValue(false), "drain_timeout": types.StringValue("30s"),
	} {
		if d := state.SetAttribute(ctx, path.Root(k), v); d.HasError() {
			t.Fatal(d)
		}
	}
	plan := func(drain string) []string {
		p := tfsdk.Plan{Schema: state.Schema, Raw: state.Raw.Copy()}
		if d := p.SetAttribute(ctx, path.Root("drain_timeout"), types.StringValue(drain)); d.HasError() {
			t.Fatal(d)
		}
		resp := resource.ModifyPlanResponse{Plan: p}
		r.ModifyPlan(ctx, resource.ModifyPlanRequest{State: state, Plan: p, Config: tfsdk.Config{Schema: state.Schema, Raw: p.Raw}}, &resp)
		if resp.Diagnostics.HasError() {
			t.Fatalf("plan with drain_timeout %s: %v", drain, resp.Diagnostics)
		}
		var out []string
		for _, d := range resp.Diagnostics {
			out = append(out, d.Summary()+": "+d.Detail())
		}
		return out
	}
	for _, drain := range []string{"30s", "45s"} {
		got := plan(drain)
		if len(got) != 1 {
			t.Fatalf("plan with drain_timeout %s: %d diagnostics %v, want the drift warning", drain, len(got), got)
		}
		for _, want := range []string{"Engine Moved Above Its Version", "from 2.4.0 to 2.4.1 outside this resource", "leaves the engine on 2.4.1",
			`set version = "2.4.1"`, "set allow_downgrade = true."} {
			if !strings.Contains(got[0], want) {
				t.Errorf("plan with drain_timeout %s: warning %q does not say %q", drain, got[0], want)
			}
		}
	}
}
