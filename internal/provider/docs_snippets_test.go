package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

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
// module: terraform fmt checks its syntax, validate does not apply.
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

// TestAccDocSnippets runs every HCL snippet of the README and docs through real terraform: fmt
// -check (syntax and layout) and validate against the provider built from this checkout, so a
// snippet that cannot work as written (such as `timeouts = { … }` where timeouts is a block)
// fails here rather than for a reader.
func TestAccDocSnippets(t *testing.T) {
	snippets := docSnippets(t)
	if len(snippets) < 15 {
		t.Fatalf("found %d HCL snippets in README.md and docs/, expected at least 15: is the pattern still right?", len(snippets))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	env, err := localrun.Start(ctx, localrun.Options{Engines: 1, NoColor: true, Err: &stderr})
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
		stderr.Reset()
		if out, err := env.TerraformOutput(ctx, dir, nil, "fmt", "-check", "-diff", "snippet.tf"); err != nil {
			t.Errorf("%s: terraform fmt -check: %v\n%s%s", s, err, out, stderr.String())
			continue
		}
		if s.cliConfig() {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "stubs.tf"), []byte(snippetStubs(s.body)), 0o600); err != nil {
			t.Fatal(err)
		}
		stderr.Reset()
		if out, err := env.TerraformOutput(ctx, dir, nil, "validate"); err != nil {
			t.Errorf("%s: terraform validate: %v\n%s%s\nthe snippet:\n%s", s, err, out, stderr.String(), s.body)
		}
	}
}
