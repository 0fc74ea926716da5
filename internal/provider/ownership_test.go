package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// ownedConfig is one workspace's release of user-0001 under the provider's manager label.
func (h *harness) ownedConfig(manager, body string) string {
	return h.ProviderBlock(fmt.Sprintf("manager = %q", manager)) + fmt.Sprintf(`
resource "engine_release" "r" {
  user_id = "user-0001"
%s
}
`, body)
}

// expectOwner is a check that user's engine is owned by manager on the control plane ("" = nobody).
func (h *harness) expectOwner(user, manager string) func(*terraform.State) error {
	return func(*terraform.State) error {
		e, err := h.Client.GetEngine(context.Background(), user)
		if err != nil {
			return err
		}
		switch {
		case manager == "" && e.Owner != nil:
			return fmt.Errorf("user %s's engine is owned by %+v, want nobody", user, *e.Owner)
		case manager != "" && (e.Owner == nil || e.Owner.Manager != manager):
			return fmt.Errorf("user %s's engine is owned by %+v, want manager %q", user, e.Owner, manager)
		}
		return nil
	}
}

// handoff orders the steps of two workspaces that run as parallel subtests: a step waits for
// what the other workspace signals. A wait gives up (failing its test) when the other side failed.
type handoff struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// watch makes every wait give up as soon as t fails.
func (o *handoff) watch(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			o.signal("failed")
		}
	})
}

func (o *handoff) get(name string) chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ch == nil {
		o.ch = map[string]chan struct{}{}
	}
	if o.ch[name] == nil {
		o.ch[name] = make(chan struct{})
	}
	return o.ch[name]
}

func (o *handoff) signal(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ch == nil {
		o.ch = map[string]chan struct{}{}
	}
	if c := o.ch[name]; c != nil {
		select {
		case <-c:
			return // signalled already
		default:
		}
	} else {
		o.ch[name] = make(chan struct{})
	}
	close(o.ch[name])
}

func (o *handoff) wait(t *testing.T, name string) {
	t.Helper()
	select {
	case <-o.get(name):
	case <-o.get("failed"):
		t.Fatalf("the other workspace failed before %q: see its output", name)
	case <-time.After(5 * time.Minute):
		t.Fatalf("the other workspace never got to %q (it failed: see its output)", name)
	}
}

// Two workspaces, one control plane, one engine: team-a upgrades user-0001 (with a snapshot,
// across a schema change) and owns it. team-c's plan to manage the same engine fails naming
// team-a; team-c takes it over explicitly; team-a's destroy then leaves the engine alone instead
// of rolling it back under team-c; team-c's next plan and apply succeed, and its destroy releases
// the engine.
func TestAccOwnership_twoWorkspaces(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	o := &handoff{}
	body := `version = "2.4.0"
  auto_snapshot = true`
	ops := func(upgrades, restores int64) resource.TestCheckFunc {
		return resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.0"),
			h.expectOperations("user-0001", api.OpUpgrade, upgrades), h.expectOperations("user-0001", api.OpRestore, restores))
	}
	t.Run("team-a", func(t *testing.T) {
		o.watch(t)
		resource.ParallelTest(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(nil),
			Steps: []resource.TestStep{{
				Config: h.ownedConfig("team-a", body),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("owner"), knownvalue.StringExact("team-a")),
				},
				Check: resource.ComposeTestCheckFunc(ops(1, 0), h.expectOwner("user-0001", "team-a"),
					func(*terraform.State) error { o.signal("team-a owns"); return nil }),
			}, {
				PreConfig: func() { o.wait(t, "team-c took over") },
				Config:    h.ownedConfig("team-a", body),
				Destroy:   true,
				// The engine runs what team-c manages: no rollback, no restore, team-c still owns it.
				Check: resource.ComposeTestCheckFunc(ops(1, 0), h.expectOwner("user-0001", "team-c"),
					func(*terraform.State) error { o.signal("team-a destroyed"); return nil }),
			}},
		})
	})
	t.Run("team-c", func(t *testing.T) {
		o.watch(t)
		resource.ParallelTest(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(nil),
			Steps: []resource.TestStep{{
				PreConfig:   func() { o.wait(t, "team-a owns") },
				Config:      h.ownedConfig("team-c", body),
				ExpectError: regexp.MustCompile(`Engine Managed Elsewhere[\s\S]*owned\s+by\s+manager\s+"team-a"\s+\(an\s+engine_release,\s+since`),
			}, {
				Config: h.ownedConfig("team-c", body+"\n  take_ownership = true"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("engine_release.r", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("owner"), knownvalue.StringExact("team-c")),
				}},
				// Adopting the engine where team-a left it starts nothing.
				Check: resource.ComposeTestCheckFunc(ops(1, 0), h.expectOwner("user-0001", "team-c"),
					func(*terraform.State) error { o.signal("team-c took over"); return nil }),
			}, {
				PreConfig: func() { o.wait(t, "team-a destroyed") },
				Config:    h.ownedConfig("team-c", body),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("owner"), knownvalue.StringExact("team-c")),
					statecheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("running_version"), knownvalue.StringExact("2.4.0")),
				},
				Check: resource.ComposeTestCheckFunc(ops(1, 0), h.expectOwner("user-0001", "team-c")),
			}},
			// team-c adopted the engine on 2.4.0: its destroy has nothing to roll back, and gives the engine up.
			CheckDestroy: resource.ComposeTestCheckFunc(ops(1, 0), h.expectOwner("user-0001", "")),
		})
	})
}

// An upgrade plan by a release whose engine another manager took over fails and names it; a plan
// that does not move the engine stays quiet, and shows the new owner from refresh.
func TestAccOwnership_upgradeOfATakenEngineFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ownedConfig("team-a", `version = "2.3.1"`),
			Check:  h.expectOwner("user-0001", "team-a"),
		}, {
			PreConfig: func() { h.claim("user-0001", "pipeline-7", true) },
			Config:    h.ownedConfig("team-a", `version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectEmptyPlan(),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("owner"), knownvalue.StringExact("pipeline-7")),
			},
		}, {
			Config:      h.ownedConfig("team-a", `version = "2.4.0"`+"\n  auto_snapshot = true"),
			ExpectError: regexp.MustCompile(`Engine Managed Elsewhere[\s\S]*owned\s+by\s+manager\s+"pipeline-7"`),
		}, {
			// Nothing moved; and team-a's destroy leaves pipeline-7's engine alone.
			Config:  h.ownedConfig("team-a", `version = "2.3.1"`),
			Destroy: true,
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectOperations("user-0001", api.OpUpgrade, 0),
				h.expectOwner("user-0001", "pipeline-7")),
		}},
	})
}

// Import takes ownership explicitly: the plan after an import shows owner changing to this
// workspace, and its apply claims the engine from the manager that had it, moving nothing.
func TestAccOwnership_importTakesOver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			PreConfig:          func() { h.claim("user-0001", "team-a", false) },
			Config:             h.ownedConfig("team-c", `version = "2.3.1"`),
			ResourceName:       "engine_release.r",
			ImportState:        true,
			ImportStateId:      "user-0001",
			ImportStatePersist: true,
			ImportStateCheck: func(s []*terraform.InstanceState) error {
				if len(s) != 1 || s[0].Attributes["owner"] != "team-a" {
					return fmt.Errorf("imported state = %v, want owner team-a (the owner before the first apply)", s)
				}
				return h.expectOwner("user-0001", "team-a")(nil)
			},
		}, {
			Config: h.ownedConfig("team-c", `version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("engine_release.r", plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue("engine_release.r", tfjsonpath.New("owner"), knownvalue.StringExact("team-c")),
			}},
			Check: resource.ComposeTestCheckFunc(h.expectOwner("user-0001", "team-c"), h.expectOperations("user-0001", api.OpUpgrade, 0)),
		}, {
			Config: h.ownedConfig("team-c", `version = "2.3.1"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectEmptyPlan(),
			}},
		}},
		CheckDestroy: h.expectOwner("user-0001", ""),
	})
}

// claim makes manager own user's engine, as another workspace's release would.
func (h *harness) claim(user, manager string, takeOver bool) {
	h.t.Helper()
	_, err := h.Client.ClaimOwner(context.Background(), user, api.ClaimOwnerRequest{Token: "tok-" + manager, Manager: manager,
		ResourceType: resourceTypeRelease, Resource: user, TakeOver: takeOver})
	if err != nil {
		h.t.Fatalf("claim %s for %s: %v", user, manager, err)
	}
}

func TestManagerLabel(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ws := "default"
	if b, err := os.ReadFile(filepath.Join(wd, ".terraform", "environment")); err == nil {
		ws = strings.TrimSpace(string(b))
	}
	for _, c := range []struct {
		name       string
		configured types.String
		env        func(string) (string, bool)
		want       string
	}{
		{"configured wins", types.StringValue("team-a"), env(envManager, "x", "TFC_WORKSPACE_NAME", "y"), "team-a"},
		{"ENGINE_MANAGER", types.StringNull(), env(envManager, " ops ", "TFC_WORKSPACE_NAME", "y"), "ops"},
		{"HCP Terraform slug", types.StringNull(),
			env("TFC_WORKSPACE_SLUG", "acme/engines-prod", "TFC_WORKSPACE_NAME", "engines-prod"), "acme/engines-prod"},
		{"HCP Terraform name", types.StringNull(), env("TFC_WORKSPACE_NAME", "engines-prod"), "engines-prod"},
		{"TF_WORKSPACE and directory", types.StringNull(), env("TF_WORKSPACE", "staging"), "staging in " + wd},
		{"directory", types.StringNull(), env(), ws + " in " + wd},
	} {
		if got := managerLabel(c.configured, c.env); got != c.want {
			t.Errorf("%s: managerLabel = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestOwnerToken(t *testing.T) {
	a := ownerToken(resourceTypeRelease, "user-0001", "team-a")
	if a != ownerToken(resourceTypeRelease, "user-0001", "team-a") {
		t.Fatal("the token of one instance changes between runs: a resumed create would conflict with itself")
	}
	for _, other := range []string{
		ownerToken(resourceTypeRelease, "user-0001", "team-c"),
		ownerToken(resourceTypeRelease, "user-0002", "team-a"),
		ownerToken("engine_canary", "user-0001", "team-a"),
	} {
		if other == a {
			t.Fatalf("two owners share token %s", a)
		}
	}
	if !strings.HasPrefix(a, "tok-") || len(a) > 128 {
		t.Fatalf("token %q is not a valid owner token", a)
	}
}

// ownUpdateKey is the idempotency key an update of user's release would send from a provider with
// no manager configured and no environment (the harness's Factories(nil)).
func ownUpdateKey(user string) string {
	label := managerLabel(types.StringNull(), func(string) (string, bool) { return "", false })
	return updateKeyPrefix + ownerToken(resourceTypeRelease, user, label) + "-" + client.NewIdempotencyKey()
}

// canaryOwnedConfig is a canary over users (under manager "fleet-ws") plus, optionally, extra HCL.
func (h *harness) canaryOwnedConfig(users, extra string) string {
	return h.ProviderBlock(`manager = "fleet-ws"`) + fmt.Sprintf(`
resource "engine_canary" "c" {
  version   = "2.4.0"
  user_ids  = %s
  steps     = [100]
  bake_time = "0s"
}
%s`, users, extra)
}

// expectOwnerType is a check that user's engine is owned by manager through a resource of type typ.
func (h *harness) expectOwnerType(user, manager, typ string) func(*terraform.State) error {
	return func(s *terraform.State) error {
		if err := h.expectOwner(user, manager)(s); err != nil {
			return err
		}
		if o := h.Engine(user).Owner; o.ResourceType != typ {
			return fmt.Errorf("user %s's engine is owned through a %s, want %s", user, o.ResourceType, typ)
		}
		return nil
	}
}

// A canary refuses at plan to move an engine a release elsewhere owns, naming it; it claims the
// engines it moves, so a release (even in its own workspace) cannot adopt them without the
// take-over; its destroy rolls back and gives up only its own engines.
func TestAccOwnership_canary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			PreConfig:   func() { h.claim("user-0002", "team-a", false) },
			Config:      h.canaryOwnedConfig(`["user-0001", "user-0002", "user-0003"]`, ""),
			ExpectError: regexp.MustCompile(`Engines Managed Elsewhere[\s\S]*user-0002\s+\(manager\s+"team-a"\s+\(an\s+engine_release`),
		}, {
			Config: h.canaryOwnedConfig(`["user-0001", "user-0003"]`, `
data "engine_instance" "u2" {
  user_id = "user-0002"
}
`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_instance.u2", tfjsonpath.New("owner"), knownvalue.StringExact("team-a")),
				statecheck.ExpectKnownValue("data.engine_instance.u2", tfjsonpath.New("owner_resource_type"),
					knownvalue.StringExact(resourceTypeRelease)),
			},
			Check: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.0"), h.expectEngine("user-0003", "2.4.0"),
				h.expectEngine("user-0002", "2.3.1"), h.expectOwnerType("user-0001", "fleet-ws", resourceTypeCanary),
				h.expectOwnerType("user-0003", "fleet-ws", resourceTypeCanary), h.expectOwnerType("user-0002", "team-a", resourceTypeRelease)),
		}, {
			Config: h.canaryOwnedConfig(`["user-0001", "user-0003"]`, `
resource "engine_release" "r" {
  user_id = "user-0001"
  version = "2.4.0"
}
`),
			ExpectError: regexp.MustCompile(`Engine Managed Elsewhere[\s\S]*owned\s+by\s+manager\s+"fleet-ws"\s+\(an\s+engine_canary`),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.3.1"), h.expectEngine("user-0003", "2.3.1"),
			h.expectOwner("user-0001", ""), h.expectOwner("user-0003", ""), h.expectOwnerType("user-0002", "team-a", resourceTypeRelease)),
	})
}

// A canary destroyed with on_destroy = "keep" leaves its engines on the new version and gives
// them up, so another workspace can then manage them without a take-over.
func TestAccOwnership_canaryKeepReleases(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1", Engines: 2})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.canaryOwnedConfig(`["user-0001", "user-0002"]`, ""),
			Check:  resource.ComposeTestCheckFunc(h.expectOwner("user-0001", "fleet-ws"), h.expectOwner("user-0002", "fleet-ws")),
		}, {
			Config: strings.Replace(h.canaryOwnedConfig(`["user-0001", "user-0002"]`, ""), `bake_time = "0s"`, `bake_time = "0s"
  on_destroy = "keep"`, 1),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(h.expectEngine("user-0001", "2.4.0"), h.expectEngine("user-0002", "2.4.0"),
			h.expectOwner("user-0001", ""), h.expectOwner("user-0002", "")),
	})
}

// A selector canary that would move an engine another manager owns is refused at plan, and the
// error points at the selector (there is no user_ids to take the user out of).
func TestAccOwnership_canarySelector(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Version: "2.3.1"})
	cfg := strings.Replace(h.canaryOwnedConfig(`null`, ""), `user_ids  = null`, `selector  = { user_id_prefix = "user-" }`, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			PreConfig:   func() { h.claim("user-0002", "team-a", false) },
			Config:      cfg,
			ExpectError: regexp.MustCompile(`Engines Managed Elsewhere[\s\S]*1 engine that[\s\S]*user-0002[\s\S]*Narrow the selector`),
		}},
	})
	if e := h.Engine("user-0001"); e.EngineVersion != "2.3.1" {
		t.Errorf("user-0001's engine runs %s after the refused plan, want 2.3.1", e.EngineVersion)
	}
}
