package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// terraformBlock matches an example's top-level terraform { required_providers { … } } block,
// which names the registry source; the acceptance framework serves the provider in-process under
// its own address instead.
var terraformBlock = regexp.MustCompile(`(?s)\nterraform \{.*?\n\}\n`)

var providerBlock = regexp.MustCompile(`(?m)^provider "engine" \{\}\n`)

// exampleConfig reads an example for an acceptance test: without its terraform block and empty
// provider block, with the harness's provider block instead.
func exampleConfig(t *testing.T, h *harness, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s (%v)", dir, err)
	}
	out := h.ProviderBlock()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := terraformBlock.ReplaceAllString("\n"+string(b), "\n")
		out += providerBlock.ReplaceAllString(s, "")
	}
	return out
}

// TestAccExamples applies the quick start and the data source and function examples against a
// local control plane, so the examples in the docs cannot rot.
func TestAccExamples(t *testing.T) {
	t.Parallel()
	cases := []struct {
		dir       string
		vars      map[string]string
		checks    []statecheck.StateCheck
		rollsBack string // a user whose engine destroy must return to 2.3.1
	}{
		// The quick start upgrades user-0001 to 2.4.0 behind a snapshot; destroy must bring it
		// back to 2.3.1 (checked by rolledBack below).
		{dir: "examples/quickstart", rollsBack: "user-0001", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("fleet", knownvalue.MapSizeExact(4)),
			statecheck.ExpectKnownOutputValue("major_needs_intent", knownvalue.StringExact("major")),
			statecheck.ExpectKnownOutputValueAtPath("upgrade_path", tfjsonpath.New("requires_snapshot"), knownvalue.Bool(true)),
			statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("version"), knownvalue.StringExact("2.4.0")),
			statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("schema_version"), knownvalue.Int64Exact(5)),
			statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("last_attempt").AtMapKey("status"), knownvalue.StringExact("succeeded")),
		}},
		{dir: "examples/data-sources/engine_instance", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValueAtPath("alice_engine", tfjsonpath.New("version"), knownvalue.StringExact("2.3.1")),
		}},
		{dir: "examples/data-sources/engine_instances", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("to_upgrade", knownvalue.ListSizeExact(3)),
			statecheck.ExpectKnownOutputValue("team_a_versions", knownvalue.MapExact(map[string]knownvalue.Check{"team-a-1": knownvalue.StringExact("2.4.0")})),
		}},
		{dir: "examples/data-sources/engine_versions", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("latest", knownvalue.StringExact("3.0.0")),
		}},
		{dir: "examples/data-sources/engine_upgrade_path", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValueAtPath("to_v3", tfjsonpath.New("destructive"), knownvalue.Bool(true)),
		}},
		{dir: "examples/functions/upgrade_kind", vars: map[string]string{"target_version": "2.4.1"}, checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("kind", knownvalue.StringExact("minor")),
		}},
		{dir: "examples/functions/version_satisfies", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("on_2_4_line", knownvalue.Bool(true)),
			statecheck.ExpectKnownOutputValue("still_on_2_3", knownvalue.ListSizeExact(3)),
		}},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{Engines: 3})
			if err := h.Server.CreateEngine("team-a-1", "2.4.0"); err != nil {
				t.Fatal(err)
			}
			step := resource.TestStep{Config: exampleConfig(t, h, tc.dir), ConfigStateChecks: tc.checks}
			if tc.vars != nil {
				step.ConfigVariables = configVariables(tc.vars)
			}
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: h.Factories(nil), Steps: []resource.TestStep{step},
				CheckDestroy: func(*terraform.State) error {
					if tc.rollsBack == "" {
						return nil
					}
					return rolledBack(h, tc.rollsBack, "2.3.1")
				},
			})
		})
	}
}

// rolledBack checks that a user's engine runs version again, on the brain schema that version
// uses: what destroying an engine_release promises.
func rolledBack(h *harness, userID, version string) error {
	e, err := h.Client.GetEngine(context.Background(), userID)
	if err != nil {
		return err
	}
	if e.EngineVersion != version || e.Status != api.StatusRunning {
		return fmt.Errorf("after destroy %s's engine runs %s (%s), want %s running", userID, e.EngineVersion, e.Status, version)
	}
	return nil
}

// TestAccExampleMajorUpgrade applies examples/major-upgrade: it refuses to plan until the
// migration guide is acknowledged and the destructive migration approved, then moves the engine
// across two hops to 3.0.0 (schema 6) behind one snapshot, and destroy restores 2.3.1 with the
// turns written before the upgrade.
func TestAccExampleMajorUpgrade(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 2})
	if _, err := h.Client.WriteTurns(context.Background(), "user-0002", api.TurnsRequest{Count: 4, Content: "before 3.0.0"}); err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, h, "examples/major-upgrade")
	const guide = "https://internal.september.wtf/platform/resources/migration-guides#v2-to-v3"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		CheckDestroy: func(*terraform.State) error {
			if err := rolledBack(h, "user-0002", "2.3.1"); err != nil {
				return err
			}
			turns, err := h.Client.Turns(context.Background(), "user-0002")
			if err != nil {
				return err
			}
			if len(turns) != 4 || turns[0].Content != "before 3.0.0" {
				return fmt.Errorf("after destroy user-0002's brain holds %d turns, want the 4 written before the upgrade", len(turns))
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config:          cfg,
				ConfigVariables: configVariables(map[string]string{"user_id": "user-0002"}),
				PlanOnly:        true,
				ExpectError:     errorLike("set acknowledged_migration_guide to its URL"),
			},
			{
				Config: cfg,
				ConfigVariables: config.Variables{
					"user_id":                         config.StringVariable("user-0002"),
					"acknowledged_migration_guide":    config.StringVariable(guide),
					"approved_destructive_migrations": config.ListVariable(config.StringVariable("user-0001")),
				},
				PlanOnly:    true,
				ExpectError: errorLike("add user-0002 to approved_destructive_migrations"),
			},
			{
				Config: cfg,
				ConfigVariables: config.Variables{
					"user_id":                         config.StringVariable("user-0002"),
					"acknowledged_migration_guide":    config.StringVariable(guide),
					"approved_destructive_migrations": config.ListVariable(config.StringVariable("user-0002")),
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("path", tfjsonpath.New("kind"), knownvalue.StringExact("major")),
					statecheck.ExpectKnownOutputValueAtPath("path", tfjsonpath.New("hops"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("version"), knownvalue.StringExact("3.0.0")),
					statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("schema_version"), knownvalue.Int64Exact(6)),
					statecheck.ExpectKnownOutputValueAtPath("release", tfjsonpath.New("status"), knownvalue.StringExact("succeeded")),
					statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("verdict"), knownvalue.StringExact("pass")),
					statecheck.ExpectKnownOutputValueAtPath("rehearsal", tfjsonpath.New("migrations"), knownvalue.MapSizeExact(2)),
				},
				Check: func(*terraform.State) error {
					if e := h.Engine("user-0002"); e.EngineVersion != "3.0.0" || e.SchemaVersion != 6 {
						return fmt.Errorf("user-0002 runs %s on schema %d, want 3.0.0 on 6", e.EngineVersion, e.SchemaVersion)
					}
					if e := h.Engine("user-0001"); e.EngineVersion != "2.3.1" {
						return fmt.Errorf("user-0001 was moved to %s: only user-0002 is in the configuration", e.EngineVersion)
					}
					return nil
				},
			},
		},
	})
}
