package provider

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The code-shape rules of the provider package: no function other than a Schema over 120 lines,
// and no line of non-test code over 140 characters.
const (
	maxFuncLines = 120
	maxLineChars = 140
)

func TestProviderShape(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		checked++
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if n := len([]rune(line)); n > maxLineChars {
				t.Errorf("%s:%d is %d characters long (at most %d): wrap it", name, i+1, n, maxLineChars)
			}
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fn, ok := n.(*ast.FuncDecl)
			if !ok || fn.Body == nil || fn.Name.Name == "Schema" {
				return true
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLines {
				t.Errorf("%s: %s is %d lines long (at most %d): split it", fset.Position(fn.Pos()), fn.Name.Name, lines, maxFuncLines)
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("only %d provider files checked: the test is not looking at the package", checked)
	}
}
