package provider

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// One engine in a canary's scope moved above the canary's version outside Terraform does not
// block the workspace (#21 item 2): the plan warns, naming the engine, its version and the ways
// out; the apply ships the unrelated engine_release upgrade and the canary's step over the other
// users, and leaves the drifted engine alone. Only an apply that would move an engine (one that
// drifted after its plan) is refused.
func TestAccCanary_driftAboveDoesNotBlockTheWorkspace(t *testing.T) {
	body := func(users ...string) string {
		return fmt.Sprintf(`
resource "engine_canary" "c" {
  version     = "2.4.0"
  user_ids    = ["%s"]
  steps       = [25, 50, 100]
  bake_time   = "0s"
  cohort_seed = "fixed"
}

resource "engine_release" "other" {
  user_id       = "user-0005"
  version       = var.v
  auto_snapshot = true
}
`, strings.Join(users, `", "`))
	}
	ctx, env, dir, run := localCanary(t, 5, body(seedUsers(4)...))
	rank := upgrade.Rank("fixed", seedUsers(4))
	expect := func(user, version string, upgrades int) {
		t.Helper()
		e, err := env.Client.GetEngine(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		ops, err := env.Client.ListOperations(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, op := range ops {
			if op.Kind == api.OpUpgrade {
				n++
			}
		}
		if e.EngineVersion != version || e.Status != api.StatusRunning || n != upgrades {
			t.Errorf("user %s's engine runs %s (%s) after %d upgrades, want %s running after %d", user, e.EngineVersion, e.Status, n, version, upgrades)
		}
	}
	outOfBand := func(user string) {
		t.Helper()
		d := &rollout.Driver{Client: env.Client}
		snap, _, err := d.Snapshot(ctx, user, client.NewIdempotencyKey(), api.CreateSnapshotRequest{})
		if err != nil {
			t.Fatalf("snapshot of %s: %v", user, err)
		}
		if _, err := d.Upgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: "2.4.1", SnapshotID: snap.ID}); err != nil {
			t.Fatalf("out-of-band upgrade of %s: %v", user, err)
		}
	}
	run(dir, false, "2.3.1", "apply", "-auto-approve", "-input=false")
	expect(rank[0], "2.4.0", 1)

	// Someone moves the user the next step would move to 2.4.1; the workspace upgrades user-0005.
	drifted := rank[1]
	outOfBand(drifted)
	plan := strings.Join(strings.Fields(run(dir, false, "2.4.0", "plan", "-input=false")), " ")
	for _, want := range []string{"Warning: Engine Moved Above The Canary's Version", drifted + " (2.4.1)", "take them out of user_ids",
		"roll out a version at least as new", `version = "2.4.0" and allow_downgrade = true`, "engine_release.other will be updated in-place"} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan)
		}
	}
	run(dir, false, "2.4.0", "apply", "-auto-approve", "-input=false")
	expect("user-0005", "2.4.0", 1)
	expect(drifted, "2.4.1", 1) // the out-of-band upgrade only
	expect(rank[2], "2.4.0", 1) // the canary's 50% step, over the three other users
	expect(rank[3], "2.3.1", 0)
	next := canaryNextStep(t, run(dir, false, "2.4.0", "show", "-json"))
	if want := fmt.Sprintf("move 1 user to 100%%: %s; snapshot first for 1; leaves %s (2.4.1) where they run, above 2.4.0", rank[3], drifted); next != want {
		t.Errorf("next_step is %q, want %q", next, want)
	}

	// The next plan moves rank[3]; it drifts before the apply: the apply refuses, moving nothing.
	run(dir, false, "2.4.0", "plan", "-input=false", "-out=step.tfplan")
	outOfBand(rank[3])
	out := run(dir, true, "2.4.0", "apply", "-input=false", "step.tfplan")
	if !strings.Contains(out, "Error: Canary Would Downgrade") || !strings.Contains(out, rank[3]+" (2.4.1)") {
		t.Errorf("the apply did not refuse to move %s back:\n%s", rank[3], out)
	}
	expect(rank[3], "2.4.1", 1)
	expect(drifted, "2.4.1", 1)
	// Both drifts are held now: the canary has nothing left to move, and the plan still works.
	if plan := run(dir, false, "2.4.0", "plan", "-input=false"); !strings.Contains(plan, rank[3]+" (2.4.1)") {
		t.Errorf("the plan after both drifts does not warn about %s:\n%s", rank[3], plan)
	}

	// Way out: accept the moves by taking both engines out of user_ids. The warning goes, the
	// canary is promoted over the other two, and nothing moves.
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(localHeader+body(rank[0], rank[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(dir, false, "2.4.0", "apply", "-auto-approve", "-input=false"); strings.Contains(out, "Engine Moved Above") {
		t.Errorf("the apply still warns about engines taken out of user_ids:\n%s", out)
	}
	expect(drifted, "2.4.1", 1)
	expect(rank[3], "2.4.1", 1)
	if next := canaryNextStep(t, run(dir, false, "2.4.0", "show", "-json")); next != "none" {
		t.Errorf("next_step is %q once the held engines left user_ids, want none", next)
	}
}

// canaryNextStep is the next_step of the only resource of type engine_canary in terraform show -json.
func canaryNextStep(t *testing.T, showJSON string) string {
	t.Helper()
	var shown struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Type   string `json:"type"`
					Values struct {
						NextStep string `json:"next_step"`
					} `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(showJSON), &shown); err != nil {
		t.Fatalf("terraform show -json: %v", err)
	}
	for _, r := range shown.Values.RootModule.Resources {
		if r.Type == "engine_canary" {
			return r.Values.NextStep
		}
	}
	t.Fatalf("no engine_canary in terraform show -json:\n%s", showJSON)
	return ""
}
