package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/localrun"
)

// fencedHCL matches a fenced code block of Terraform configuration in Markdown, indented or not
// (a block inside a list item is indented).
var fencedHCL = regexp.MustCompile("(?ms)^([ \t]*)```(?:terraform|hcl|tf)[ \t]*\n(.*?)^[ \t]*```")

// docSnippet is one fenced block of HCL in a Markdown file.
type docSnippet struct {
	file string
	line int
	body string
}

func (s docSnippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// cliConfig reports whether the snippet is a Terraform CLI configuration (~/.terraformrc), not a
// module: terraform fmt and validate do not apply (quoted argument names are fine there).
func (s docSnippet) cliConfig() bool { return strings.Contains(s.body, "provider_installation") }

// docSnippets reads every fenced HCL block of the README and the generated docs (the guides and
// index are rendered from templates/, so this covers those too).
func docSnippets(t *testing.T) []docSnippet {
	t.Helper()
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []docSnippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fencedHCL.FindAllSubmatchIndex(b, -1) {
			indent, body := string(b[m[2]:m[3]]), string(b[m[4]:m[5]])
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				lines = append(lines, strings.TrimPrefix(l, indent))
			}
			rel, _ := filepath.Rel(root, f)
			out = append(out, docSnippet{file: rel, line: 1 + bytes.Count(b[:m[0]], []byte("\n")), body: strings.Join(lines, "\n")})
		}
	}
	return out
}

var varRef = regexp.MustCompile(`\bvar\.([A-Za-z_][A-Za-z0-9_-]*)`)

// snippetStubs is what a snippet leaves to its surroundings: the provider's source, when the
// snippet does not name it, and the variables it uses without declaring.
func snippetStubs(body string) string {
	var b strings.Builder
	if !strings.Contains(body, "required_providers") {
		b.WriteString("terraform {\n  required_providers {\n    engine = {\n      source = \"septemberai/engine\"\n    }\n  }\n}\n")
	}
	seen := map[string]bool{}
	for _, m := range varRef.FindAllStringSubmatch(body, -1) {
		if name := m[1]; !seen[name] && !strings.Contains(body, fmt.Sprintf("variable %q", name)) {
			seen[name] = true
			fmt.Fprintf(&b, "variable %q {}\n", name)
		}
	}
	return b.String()
}

var (
	resourceRef  = regexp.MustCompile(`(?:^|[^.\w])(engine_[a-z_]+)\.([A-Za-z_][A-Za-z0-9_-]*)\.`)
	resourceDecl = regexp.MustCompile(`(?m)^resource "(engine_[a-z_]+)" "([A-Za-z_][A-Za-z0-9_-]*)"`)
)

// earlierDeclarations is what a guide that builds one configuration step by step has declared
// before s: for each resource s refers to without declaring, the nearest earlier snippet of the
// same file that declares it, whole (a reader following the guide in order has it). A reference
// no earlier snippet declares is left for validate to report.
func earlierDeclarations(earlier []docSnippet, s docSnippet) string {
	declared := map[string]bool{}
	for _, m := range resourceDecl.FindAllStringSubmatch(s.body, -1) {
		declared[m[1]+"."+m[2]] = true
	}
	var b strings.Builder
	included := map[int]bool{}
	for _, m := range resourceRef.FindAllStringSubmatch(s.body, -1) {
		ref := m[1] + "." + m[2]
		if declared[ref] {
			continue
		}
		for i := len(earlier) - 1; i >= 0; i-- {
			e := earlier[i]
			if e.file != s.file || !strings.Contains(e.body, fmt.Sprintf("resource %q %q", m[1], m[2])) {
				continue
			}
			if !included[i] {
				included[i] = true
				b.WriteString(e.body + "\n")
				for _, d := range resourceDecl.FindAllStringSubmatch(e.body, -1) {
					declared[d[1]+"."+d[2]] = true
				}
			}
			break
		}
	}
	return b.String()
}

// TestAccDocSnippets runs every HCL snippet of the README and docs through real terraform: fmt
// -check (syntax and layout) and validate against the provider built from this checkout, so a
// snippet that cannot work as written (such as `timeouts = { … }` where timeouts is a block)
// fails here rather than for a reader.
func TestAccDocSnippets(t *testing.T) {
	t.Parallel()
	snippets := docSnippets(t)
	if len(snippets) < 15 {
		t.Fatalf("found %d HCL snippets in README.md and docs/, expected at least 15: is the pattern still right?", len(snippets))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localrun.Start(ctx, localrun.Options{Engines: 1, NoColor: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for i, s := range snippets {
		dir := filepath.Join(env.Dir, fmt.Sprintf("snippet-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "snippet.tf"), []byte(s.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if s.cliConfig() {
			continue // TestAccDocs_localBuild runs these
		}
		if out, err := env.TerraformCombined(ctx, dir, nil, "fmt", "-check", "-diff", "snippet.tf"); err != nil {
			t.Errorf("%s: terraform fmt -check: %v\n%s", s, err, out)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "stubs.tf"), []byte(snippetStubs(s.body)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "earlier.tf"), []byte(earlierDeclarations(snippets[:i], s)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := env.TerraformCombined(ctx, dir, nil, "validate"); err != nil {
			t.Errorf("%s: terraform validate: %v\n%s\nthe snippet:\n%s", s, err, out, s.body)
		}
	}
}

// quotedPath is an absolute path in a snippet ("/home/you/go/bin"), which a reader replaces
// with their own.
var quotedPath = regexp.MustCompile(`"(/[^"]*)"`)

// localBuildConfig is a configuration a reader runs on a local build: one data source, so a
// plan proves the provider was found and talks to the control plane.
const localBuildConfig = `terraform {
%s  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

data "engine_versions" "catalog" {}

output "latest" {
  value = data.engine_versions.catalog.latest
}
`

// TestAccDocs_localBuild follows the docs' way of running one's own configuration on a local
// build, literally: `make install` and `make mirror` into directories of the test's, then every
// CLI configuration snippet of the README, docs/index.md and the local control plane guide with
// its path replaced. dev_overrides must plan without init; with a backend, init must work from
// the mirror (the filesystem_mirror snippet and `terraform init -plugin-dir`), and init under
// dev_overrides must exit 1, as the docs say.
func TestAccDocs_localBuild(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localrun.Start(ctx, localrun.Options{Engines: 1, NoColor: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	gobin, mirror := filepath.Join(env.Dir, "gobin"), filepath.Join(env.Dir, "mirror")
	runMake(t, "install", "GOBIN="+gobin)
	runMake(t, "mirror", "MIRROR="+mirror)
	if _, err := os.Stat(filepath.Join(gobin, "terraform-provider-engine")); err != nil {
		t.Fatalf("make install GOBIN=%s: %v", gobin, err)
	}
	if _, err := os.Stat(filepath.Join(mirror, "registry.terraform.io/septemberai/engine/0.1.0/linux_amd64/terraform-provider-engine_v0.1.0")); err != nil && runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		t.Fatalf("make mirror did not write the layout the docs show: %v", err)
	}

	tf := func(dir, cliConfig string, args ...string) (string, error) {
		out, err := env.TerraformCombined(ctx, dir, []string{"TF_CLI_CONFIG_FILE=" + cliConfig}, args...)
		return string(out), err
	}
	workspace := func(name string, backend bool) string {
		dir := filepath.Join(env.Dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b := ""
		if backend {
			b = fmt.Sprintf("  backend \"local\" {\n    path = %q\n  }\n", filepath.Join(dir, "state", "terraform.tfstate"))
		}
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(fmt.Sprintf(localBuildConfig, b)), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	plans := func(what, dir, cliConfig string) {
		t.Helper()
		out, err := tf(dir, cliConfig, "plan", "-input=false")
		if err != nil || !strings.Contains(out, `latest = "3.0.0"`) {
			t.Errorf("%s: terraform plan: %v\n%s", what, err, out)
		}
	}

	seen := map[string]int{}
	for i, s := range docSnippets(t) {
		kind := ""
		switch {
		case !s.cliConfig():
			continue
		case strings.Contains(s.body, "dev_overrides"):
			kind = "dev_overrides"
		case strings.Contains(s.body, "filesystem_mirror"):
			kind = "filesystem_mirror"
		default:
			t.Errorf("%s: a CLI configuration this test does not know: add it here", s)
			continue
		}
		seen[s.file+" "+kind]++
		path := gobin
		if kind == "filesystem_mirror" {
			path = mirror
		}
		cliConfig := filepath.Join(env.Dir, fmt.Sprintf("snippet-%d.tfrc", i))
		if err := os.WriteFile(cliConfig, []byte(quotedPath.ReplaceAllString(s.body, strconv.Quote(path))), 0o600); err != nil {
			t.Fatal(err)
		}
		if kind == "dev_overrides" {
			plans(s.String()+" without init", workspace(fmt.Sprintf("dev-%d", i), false), cliConfig)
			dir := workspace(fmt.Sprintf("dev-backend-%d", i), true)
			// Terraform says "Failed to query available provider packages", OpenTofu "Failed
			// to resolve provider packages".
			if out, err := tf(dir, cliConfig, "init", "-input=false"); err == nil || !strings.Contains(out, "provider packages") {
				t.Errorf("%s: the docs say terraform init with a backend exits 1 under dev_overrides; it did not (%v):\n%s", s, err, out)
			}
			continue
		}
		dir := workspace(fmt.Sprintf("mirror-%d", i), true)
		if out, err := tf(dir, cliConfig, "init", "-input=false"); err != nil {
			t.Errorf("%s: terraform init with a backend: %v\n%s", s, err, out)
			continue
		}
		plans(s.String()+" after init", dir, cliConfig)
	}
	for _, want := range []string{
		"README.md dev_overrides", "docs/index.md dev_overrides",
		"docs/guides/local-control-plane.md dev_overrides", "docs/guides/local-control-plane.md filesystem_mirror",
	} {
		if seen[want] == 0 {
			t.Errorf("no %s snippet found (found %v)", want, seen)
		}
	}

	// `terraform init -plugin-dir=MIRROR`, as the guide shows, with no CLI configuration of the
	// reader's.
	empty := filepath.Join(env.Dir, "empty.tfrc")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := workspace("plugin-dir", true)
	if out, err := tf(dir, empty, "init", "-input=false", "-plugin-dir="+mirror); err != nil {
		t.Fatalf("terraform init -plugin-dir=%s: %v\n%s", mirror, err, out)
	}
	plans("init -plugin-dir", dir, empty)
}

// runMake runs a make target of the checkout, as a reader would, without an outer make's flags.
func runMake(t *testing.T, args ...string) {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if k := strings.SplitN(kv, "=", 2)[0]; k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			env = append(env, kv)
		}
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir, cmd.Env = filepath.Join("..", ".."), env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAccDocs_stepwiseCanaryHoldsLockThroughBake checks the Atlantis guide's locking table: a
// stepwise canary's apply holds the state lock through its step's bake, so a plan of the same
// workspace started while the moved engine bakes fails to acquire the lock, and one started after
// the apply succeeds.
func TestAccDocs_stepwiseCanaryHoldsLockThroughBake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs bytes.Buffer // the apply's output; read once it has ended
	env, err := localrun.Start(ctx, localrun.Options{Engines: 2, TimeScale: 0.001, NoColor: true, Out: &logs, Err: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	dir := filepath.Join(env.Dir, "canary")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const bake = 6 * time.Second
	cfg := fmt.Sprintf(`terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

data "engine_instances" "fleet" {}

resource "engine_canary" "fleet" {
  version   = "2.4.0"
  user_ids  = data.engine_instances.fleet.user_ids
  steps     = [50, 100]
  bake_time = %q
}
`, bake)
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	applied := make(chan error, 1)
	start := time.Now()
	go func() { applied <- env.Terraform(ctx, dir, nil, "apply", "-input=false", "-auto-approve") }()

	// The first step moves one engine of two; once it runs 2.4.0 the apply bakes.
	for moved := false; !moved; {
		select {
		case err := <-applied:
			t.Fatalf("the apply ended (%v) before an engine was seen on 2.4.0:\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		engines, err := env.Client.AllEngines(ctx, client.ListEnginesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range engines {
			moved = moved || (e.EngineVersion == "2.4.0" && e.CurrentOperationID == "")
		}
	}
	out, err := env.TerraformCombined(ctx, dir, nil, "plan", "-input=false", "-lock-timeout=0s")
	if err == nil || !strings.Contains(string(out), "Error acquiring the state lock") {
		t.Errorf("a plan during the canary's bake did not fail on the state lock (%v):\n%s", err, out)
	}
	if err := <-applied; err != nil {
		t.Fatalf("the canary's apply: %v\n%s", err, logs.String())
	}
	if took := time.Since(start); took < bake {
		t.Errorf("the stepwise apply took %s, less than its bake_time %s", took, bake)
	}
	if out, err := env.TerraformCombined(ctx, dir, nil, "plan", "-input=false", "-lock-timeout=0s"); err != nil {
		t.Errorf("a plan after the apply: %v\n%s", err, out)
	}
}
