package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
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
		dir    string
		vars   map[string]string
		checks []statecheck.StateCheck
	}{
		{dir: "examples/quickstart", checks: []statecheck.StateCheck{
			statecheck.ExpectKnownOutputValue("fleet", knownvalue.MapSizeExact(4)),
			statecheck.ExpectKnownOutputValue("major_needs_intent", knownvalue.StringExact("major")),
			statecheck.ExpectKnownOutputValueAtPath("upgrade_to_2_4_0", tfjsonpath.New("requires_snapshot"), knownvalue.Bool(true)),
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
			resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: h.Factories(nil), Steps: []resource.TestStep{step}})
		})
	}
}
