package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/localrun"
)

const policyDir = "../../examples/policy"

// TestAccPolicy plans real configurations with real terraform against the local control plane
// (the provider built from this checkout through dev_overrides), takes `terraform show -json` of
// each saved plan and evaluates examples/policy over it with OPA: the shipped scenarios pass, and
// each deny fixture is denied by exactly the rule it targets, with a message naming the resource.
func TestAccPolicy(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: the policy tests run terraform (make testacc sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel) // parallel subtests run after this function returns
	var logs bytes.Buffer
	env, err := localrun.Start(ctx, localrun.Options{Engines: 20, TimeScale: 0.001, TempBase: t.TempDir(), NoColor: true, Out: &logs,
		Err: &logs})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	t.Cleanup(env.Close)

	// A rehearsal that passed, for the plan that names it.
	op, err := env.Client.StartRehearsal(ctx, "user-0005", client.NewIdempotencyKey(), api.RehearsalRequest{Version: "3.0.0",
		Analysis: api.RehearsalAnalysis{BaselineTolerance: 1}})
	if err == nil {
		op, err = env.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Status != api.OpSucceeded {
		t.Fatalf("rehearsal of user-0005: %v %+v", err, op.Error)
	}
	if reh, err := env.Client.GetRehearsal(ctx, op.Result.RehearsalID); err != nil || reh.Status != api.RehearsalPassed {
		t.Fatalf("rehearsal of user-0005 did not pass: %v %+v", err, reh)
	}
	cases := []struct {
		name, dir string
		vars      []string // TF_VAR_ settings
		// want holds one substring per expected denial, in sorted-message order; empty means allow.
		want []string
	}{
		{name: "quickstart", dir: "examples/quickstart"},
		{name: "major-upgrade-approved", dir: "examples/major-upgrade", vars: []string{
			"TF_VAR_acknowledged_migration_guide=https://internal.september.wtf/platform/resources/migration-guides#v2-to-v3",
			`TF_VAR_approved_destructive_migrations=["user-0001"]`,
		}},
		{name: "fleet-canary", dir: "examples/fleet-canary"},
		{name: "managed-snapshot", dir: "internal/policy/testdata/allow-managed-snapshot"},
		{name: "unreviewable-snapshot", dir: "internal/policy/testdata/deny-unreviewable-snapshot", want: []string{
			"engine_release.user_0001: moving user user-0001 from 2.3.1 to 2.4.0 migrates the brain (0005_skill_library) but the plan does not " +
				"show what snapshot protects it",
		}},
		{name: "destructive-unapproved", dir: "internal/policy/testdata/deny-destructive", want: []string{
			`engine_release.user_0001: moving user user-0001 to 3.0.0 runs a destructive migration (0006_knowledge_json). Add "user-0001" to the variable approved_destructive_migrations`,
		}},
		{name: "passed-rehearsal", dir: "internal/policy/testdata/allow-passed-rehearsal",
			vars: []string{"TF_VAR_rehearsal_id=" + op.Result.RehearsalID}},
		{name: "major-without-rehearsal", dir: "internal/policy/testdata/deny-major-without-rehearsal", want: []string{
			"engine_release.user_0004: moving user user-0004 from 2.3.1 to 3.0.0 is a major upgrade (destructive: true) that no passed rehearsal " +
				"vouches for",
		}},
		{name: "release-without-analysis", dir: "internal/policy/testdata/deny-release-without-analysis", want: []string{
			"engine_release.user_0001: moving user user-0001 from 2.3.1 to 2.4.0 is not watched after the upgrade. Set analysis",
		}},
		{name: "canary-first-step", dir: "internal/policy/testdata/deny-canary-first-step", want: []string{
			"engine_canary.fleet: the first canary step moves 2 of 20 users (10%); at most 5% of the fleet may move",
		}},
		// 5% of 3 users is one user: a third of the canary's fleet.
		{name: "canary-first-step-headcount", dir: "internal/policy/testdata/deny-canary-first-step-headcount", want: []string{
			"engine_canary.three: the first canary step moves 1 of 3 users (33%); at most 5% of the fleet may move",
		}},
		// A selector scope: the plan has no user list to count, so the percentage is checked.
		{name: "canary-first-step-selector", dir: "internal/policy/testdata/deny-canary-first-step-selector", want: []string{
			"engine_canary.fleet: the first canary step moves 10% of the fleet; at most 5% may move before the first analysis",
		}},
	}
	t.Run("plans", func(t *testing.T) { // returns when every parallel plan has been judged
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				expectDenials(ctx, t, planJSON(ctx, t, env, tc.name, tc.dir, tc.vars), tc.want)
			})
		}
	})
	// Last, as it moves user-0001's engine, which the plans above start from.
	t.Run("destroy-data-loss", func(t *testing.T) { destroyDataLoss(ctx, t, env) })
}

// destroyDataLoss applies a migrating upgrade, writes to the brain, and plans the destroy: the
// rollback would restore the pre-upgrade snapshot and lose those writes, which the destroy plan's
// JSON carries (rollback_writes_lost) and the policy denies until approved_data_loss accepts it.
// Keeping that figure current must not make the normal plan show a change.
func destroyDataLoss(ctx context.Context, t *testing.T, env *localrun.Env) {
	work, err := env.Workspace("destroy-data-loss", "internal/policy/testdata/deny-destroy-data-loss")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := env.TerraformOutput(ctx, work, nil, "apply", "-auto-approve", "-input=false", "-no-color"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if _, err := env.Client.WriteTurns(ctx, "user-0001", api.TurnsRequest{Count: 3, Content: "after the upgrade"}); err != nil {
		t.Fatal(err)
	}
	e, err := env.Client.GetEngine(ctx, "user-0001")
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := env.Client.ListSnapshots(ctx, "user-0001", client.ListSnapshotsOptions{})
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots of user-0001: %v %v", snaps, err)
	}
	lost := e.BrainWrites - snaps[0].BrainWrites
	if lost < 3 {
		t.Fatalf("%d brain writes since the snapshot, after 3 turns", lost)
	}
	if out, err := env.TerraformOutput(ctx, work, nil, "plan", "-detailed-exitcode", "-input=false",
		"-no-color"); err != nil || strings.Contains(string(out), "outside of Terraform") {
		t.Fatalf("the plan after brain writes is not quiet (%v):\n%s", err, out)
	}
	want := fmt.Sprintf("engine_release.user_0001: destroying it rolls user user-0001 back to 2.3.1 by restoring a snapshot, which loses "+
		"%d brain writes made since", lost)
	expectDenials(ctx, t, savedPlanJSON(ctx, t, env, work, nil, "-destroy"), []string{want})
	expectDenials(ctx, t, savedPlanJSON(ctx, t, env, work, []string{`TF_VAR_approved_data_loss=["user-0001"]`}, "-destroy"), nil)
}

// expectDenials evaluates the policy over plan and checks it denies exactly want (substrings, in
// sorted-message order).
func expectDenials(ctx context.Context, t *testing.T, plan []byte, want []string) {
	t.Helper()
	got, err := Deny(ctx, policyDir, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d denials, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("denial %d is\n  %s\nwant it to contain\n  %s", i, got[i], w)
		}
	}
}

// planJSON saves a plan of the configuration in dir and returns `terraform show -json` of it,
// after checking it is a plan that changes something (a refused plan would pass every rule).
func planJSON(ctx context.Context, t *testing.T, env *localrun.Env, name, dir string, vars []string) []byte {
	t.Helper()
	work, err := env.Workspace(name, dir) // dir is relative to the checkout
	if err != nil {
		t.Fatal(err)
	}
	b := savedPlanJSON(ctx, t, env, work, vars)
	var p struct {
		ResourceChanges []struct {
			Address string `json:"address"`
			Change  struct {
				Actions []string `json:"actions"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("show -json %s: %v", dir, err)
	}
	creates := 0
	for _, rc := range p.ResourceChanges {
		if len(rc.Change.Actions) == 1 && rc.Change.Actions[0] == "create" {
			creates++
		}
	}
	if creates == 0 {
		t.Fatalf("the plan of %s creates nothing, so the policy has nothing to judge:\n%s", dir, b)
	}
	return b
}

// savedPlanJSON saves a plan of the workspace work (with extra plan arguments such as -destroy)
// and returns `terraform show -json` of it.
func savedPlanJSON(ctx context.Context, t *testing.T, env *localrun.Env, work string, vars []string, args ...string) []byte {
	t.Helper()
	if b, err := env.TerraformOutput(ctx, work, vars, append([]string{"plan", "-input=false", "-no-color", "-out=tfplan"},
		args...)...); err != nil {
		t.Fatalf("plan %s: %v\n%s", work, err, b)
	}
	b, err := env.TerraformOutput(ctx, work, vars, "show", "-json", "tfplan")
	if err != nil {
		t.Fatalf("show -json %s: %v", work, err)
	}
	return b
}
