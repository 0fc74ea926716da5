package upgrade

import (
	"errors"
	"fmt"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// testCatalog mirrors the shape of the built-in catalog: a schema change at 2.3.0, 2.4.0 and a
// destructive one at 3.0.0; patches without migrations.
func testCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := NewCatalog([]api.Version{
		{Version: "3.0.0", SchemaVersion: 6, Breaking: true, BreakingChanges: []string{"request shape changed"}, MigrationGuideURL: "https://example.test/3.0",
			Migrations: []api.Migration{{ID: "0006", FromSchema: 5, ToSchema: 6, ForwardOnly: true, Destructive: true, SQL: "x"}}},
		{Version: "2.2.0", SchemaVersion: 3},
		{Version: "2.3.0", SchemaVersion: 4, Migrations: []api.Migration{{ID: "0004", FromSchema: 3, ToSchema: 4, ForwardOnly: true}}},
		{Version: "2.3.1", SchemaVersion: 4},
		{Version: "2.4.0", SchemaVersion: 5, Migrations: []api.Migration{{ID: "0005", FromSchema: 4, ToSchema: 5, ForwardOnly: true}}},
		{Version: "2.4.1", SchemaVersion: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKind(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"2.3.0", "2.3.0", KindNone},
		{"2.3.0", "2.3.1", KindPatch},
		{"2.3.1", "2.4.0", KindMinor},
		{"2.4.1", "3.0.0", KindMajor},
		{"2.4.0", "2.3.1", KindDowngrade},
		{"3.0.0", "2.4.1", KindDowngrade},
	}
	for _, c := range cases {
		got, err := Kind(c.from, c.to)
		if err != nil || got != c.want {
			t.Errorf("Kind(%s, %s) = %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{"", "1.0.0"}, {"1.0.0", "banana"}, {"1.x", "1.0.0"}} {
		if _, err := Kind(bad[0], bad[1]); err == nil {
			t.Errorf("Kind(%q, %q) accepted malformed input", bad[0], bad[1])
		}
	}
}

func TestSatisfies(t *testing.T) {
	ok, err := Satisfies("2.4.1", ">= 2.3, < 3.0")
	if err != nil || !ok {
		t.Fatalf("2.4.1 in >= 2.3, < 3.0: %v %v", ok, err)
	}
	ok, err = Satisfies("3.0.0", "~> 2.4")
	if err != nil || ok {
		t.Fatalf("3.0.0 in ~> 2.4: %v %v", ok, err)
	}
	if _, err := Satisfies("2.4.1", "=> nonsense"); err == nil {
		t.Fatal("malformed constraint accepted")
	}
	if _, err := Satisfies("v", ">= 1.0"); err == nil {
		t.Fatal("malformed version accepted")
	}
}

func TestNewCatalogRejects(t *testing.T) {
	if _, err := NewCatalog([]api.Version{{Version: "2.0.0"}, {Version: "2.0.0"}}); err == nil {
		t.Error("duplicate version accepted")
	}
	if _, err := NewCatalog([]api.Version{{Version: "2.0.0", SchemaVersion: 4}, {Version: "2.1.0", SchemaVersion: 3}}); err == nil {
		t.Error("schema going down accepted")
	}
	if _, err := NewCatalog([]api.Version{{Version: "two"}}); err == nil {
		t.Error("malformed version accepted")
	}
}

func TestPathPatchNeedsNoSnapshot(t *testing.T) {
	p, err := testCatalog(t).Path("2.3.0", "2.3.1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindPatch || p.RequiresSnapshot || len(p.Migrations) != 0 || len(p.Hops) != 1 {
		t.Fatalf("unexpected path %+v", p)
	}
}

func TestPathAcrossMigrations(t *testing.T) {
	p, err := testCatalog(t).Path("2.2.0", "3.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindMajor || !p.RequiresSnapshot || !p.Destructive || !p.ForwardOnly {
		t.Fatalf("flags wrong: %+v", p)
	}
	var hops []string
	for _, h := range p.Hops {
		hops = append(hops, h.From+">"+h.To)
	}
	want := []string{"2.2.0>2.3.0", "2.3.0>2.4.0", "2.4.0>3.0.0"}
	if len(hops) != len(want) {
		t.Fatalf("hops %v, want %v", hops, want)
	}
	for i := range want {
		if hops[i] != want[i] {
			t.Fatalf("hops %v, want %v", hops, want)
		}
	}
	if len(p.Migrations) != 3 || p.Migrations[2].ID != "0006" || p.Migrations[0].SQL != "" {
		t.Fatalf("migrations %+v (SQL must not leak into paths)", p.Migrations)
	}
	if len(p.BreakingChanges) != 1 || len(p.MigrationGuideURLs) != 1 {
		t.Fatalf("breaking/guide not collected: %+v", p)
	}
	if p.FromSchema != 3 || p.ToSchema != 6 {
		t.Fatalf("schemas %d->%d", p.FromSchema, p.ToSchema)
	}
}

func TestPathTrailingPatchIsItsOwnHop(t *testing.T) {
	p, err := testCatalog(t).Path("2.3.1", "2.4.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hops) != 2 || p.Hops[0].To != "2.4.0" || p.Hops[1].To != "2.4.1" || len(p.Hops[1].Migrations) != 0 {
		t.Fatalf("hops %+v", p.Hops)
	}
}

func TestPathDowngrade(t *testing.T) {
	c := testCatalog(t)
	same, err := c.Path("2.3.1", "2.3.0")
	if err != nil || same.Kind != KindDowngrade || same.RequiresRestore || same.RequiresSnapshot {
		t.Fatalf("same-schema downgrade %+v %v", same, err)
	}
	cross, err := c.Path("2.4.0", "2.3.1")
	if err != nil || !cross.RequiresRestore || cross.Reason == "" {
		t.Fatalf("cross-schema downgrade %+v %v", cross, err)
	}
}

func TestPathUnknownVersion(t *testing.T) {
	_, err := testCatalog(t).Path("2.3.0", "9.9.9")
	var uv *UnknownVersionError
	if !errors.As(err, &uv) || uv.Version != "9.9.9" || len(uv.Known) != 6 {
		t.Fatalf("want UnknownVersionError listing versions, got %v", err)
	}
}

func TestTargets(t *testing.T) {
	vs, kinds, err := testCatalog(t).Targets("2.3.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Version != "2.4.0" || kinds[2] != KindMajor {
		t.Fatalf("targets %v kinds %v", vs, kinds)
	}
}

// TestParseVersion_oneGrammar: one grammar and one message, with a suggestion that is itself
// a valid version ("v2.4.0" must not be told to write "v2.4.0.0").
func TestParseVersion_oneGrammar(t *testing.T) {
	for _, ok := range []string{"2.4.0", "10.20.30", "2.4.0-rc1", "2.5.0-rc.1", "1.0.0+build.5", "1.0.0-alpha-1+x"} {
		if _, err := ParseVersion(ok); err != nil {
			t.Errorf("ParseVersion(%q): %v", ok, err)
		}
	}
	for in, suggestion := range map[string]string{
		"v2.4.0": "2.4.0", "V2.4.0": "2.4.0", "2.4": "2.4.0", "v2.4": "2.4.0", "2": "2.0.0",
		" 2.4.0 ": "2.4.0", "v2.4.0-rc1": "2.4.0-rc1", "2.4.0.0": "2.4.0", "latest": "2.4.0",
		"": "2.4.0", "2.4.x": "2.4.0", "2.4.0-": "2.4.0",
	} {
		_, err := ParseVersion(in)
		want := fmt.Sprintf("%q is not a valid version: write MAJOR.MINOR.PATCH, for example %q", in, suggestion)
		if err == nil || err.Error() != want {
			t.Errorf("ParseVersion(%q) = %v, want %s", in, err, want)
			continue
		}
		if _, err := ParseVersion(suggestion); err != nil {
			t.Errorf("the suggestion for %q is not a version: %v", in, err)
		}
	}
}
