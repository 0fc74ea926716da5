// Package upgrade owns the pure domain logic of Engine upgrades, shared by the provider's plan and
// apply and by the local control plane: version ordering and kinds, the release catalog and the
// upgrade path between two versions, snapshot lineage rules, rollout windows and canary cohort
// math. It does no I/O and imports nothing from Terraform or HTTP.
package upgrade

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	goversion "github.com/hashicorp/go-version"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Upgrade kinds, as returned by Kind and the upgrade_kind function.
const (
	KindNone      = "none"
	KindPatch     = "patch"
	KindMinor     = "minor"
	KindMajor     = "major"
	KindDowngrade = "downgrade"
)

// Kinds lists every upgrade kind.
var Kinds = []string{KindNone, KindPatch, KindMinor, KindMajor, KindDowngrade}

// VersionGrammar describes the one version syntax every attribute, function, catalog and
// control-plane request accepts.
const VersionGrammar = "MAJOR.MINOR.PATCH, optionally followed by -PRERELEASE and +BUILD (for example 2.4.0 or 2.5.0-rc.1)"

// versionRE is the whole grammar. go-version alone would also read "v2.4.0", "2.4" and
// " 2.4.0" as versions, but the control plane matches version strings, so those must not pass
// in one place and fail in another.
var versionRE = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// ParseVersion parses a version written in VersionGrammar. Its error is the one message every
// caller shows, with a suggestion made from the input where one can be ("v2.4.0" and "2.4" give
// "2.4.0").
func ParseVersion(s string) (*goversion.Version, error) {
	if versionRE.MatchString(s) {
		if v, err := goversion.NewSemver(s); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%q is not a valid version: write MAJOR.MINOR.PATCH, for example %q", s, suggestVersion(s))
}

// suggestVersion repairs the usual slips (spaces, a "v" prefix, missing parts) when that yields
// a valid version, and otherwise offers a plain example.
func suggestVersion(s string) string {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "v"), "V")
	core, suffix := t, ""
	if i := strings.IndexAny(t, "-+"); i >= 0 {
		core, suffix = t[:i], t[i:]
	}
	if parts := strings.Split(core, "."); len(parts) < 3 {
		core += strings.Repeat(".0", 3-len(parts))
	}
	if fixed := core + suffix; fixed != s && versionRE.MatchString(fixed) {
		return fixed
	}
	return "2.4.0"
}

// Kind classifies the move from one version to another.
func Kind(from, to string) (string, error) {
	f, err := ParseVersion(from)
	if err != nil {
		return "", err
	}
	t, err := ParseVersion(to)
	if err != nil {
		return "", err
	}
	return kindOf(f, t), nil
}

func kindOf(f, t *goversion.Version) string {
	switch c := t.Compare(f); {
	case c == 0:
		return KindNone
	case c < 0:
		return KindDowngrade
	}
	fs, ts := f.Segments(), t.Segments()
	switch {
	case ts[0] != fs[0]:
		return KindMajor
	case ts[1] != fs[1]:
		return KindMinor
	default:
		return KindPatch
	}
}

// Satisfies reports whether version meets a go-version constraint such as ">= 2.3, < 3.0".
func Satisfies(version, constraint string) (bool, error) {
	v, err := ParseVersion(version)
	if err != nil {
		return false, err
	}
	c, err := goversion.NewConstraint(constraint)
	if err != nil {
		return false, fmt.Errorf("%q is not a valid version constraint (examples: \">= 2.3.0\", \"~> 2.4\", \">= 2.3, < 3.0\"): %w", constraint, err)
	}
	return c.Check(v), nil
}

// Catalog is the release catalog, kept sorted oldest first.
type Catalog struct {
	versions []api.Version
	parsed   []*goversion.Version
	index    map[string]int
}

// NewCatalog validates and sorts a catalog: every version parses, none repeats, and schema
// versions never go down as versions go up.
func NewCatalog(vs []api.Version) (*Catalog, error) {
	c := &Catalog{index: map[string]int{}}
	type pair struct {
		v api.Version
		p *goversion.Version
	}
	ps := make([]pair, 0, len(vs))
	for _, v := range vs {
		p, err := ParseVersion(v.Version)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		ps = append(ps, pair{v, p})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].p.LessThan(ps[j].p) })
	for i, p := range ps {
		key := p.p.String()
		if _, dup := c.index[key]; dup {
			return nil, fmt.Errorf("catalog: version %s appears twice", p.v.Version)
		}
		if i > 0 && p.v.SchemaVersion < ps[i-1].v.SchemaVersion {
			return nil, fmt.Errorf("catalog: version %s has schema %d, lower than %s's %d", p.v.Version, p.v.SchemaVersion, ps[i-1].v.Version, ps[i-1].v.SchemaVersion)
		}
		c.index[key] = i
		c.versions = append(c.versions, p.v)
		c.parsed = append(c.parsed, p.p)
	}
	return c, nil
}

// Versions returns the catalog, oldest first.
func (c *Catalog) Versions() []api.Version { return append([]api.Version(nil), c.versions...) }

// Names returns the catalog's version strings, oldest first.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.versions))
	for i, v := range c.versions {
		out[i] = v.Version
	}
	return out
}

// Get finds a version by its string (normalised, so "2.4" does not match but "2.4.0" does).
func (c *Catalog) Get(version string) (api.Version, bool) {
	i, ok := c.lookup(version)
	if !ok {
		return api.Version{}, false
	}
	return c.versions[i], true
}

func (c *Catalog) lookup(version string) (int, bool) {
	p, err := ParseVersion(version)
	if err != nil {
		return 0, false
	}
	i, ok := c.index[p.String()]
	return i, ok
}

// UnknownVersionError says a version is not in the catalog and lists what is.
type UnknownVersionError struct {
	Version string
	Known   []string
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("version %q is not in the release catalog (known versions: %s)", e.Version, strings.Join(e.Known, ", "))
}

// Path computes the upgrade path from one catalog version to another. A path to a lower version
// is a downgrade: Valid only when the target's schema equals the source's, otherwise it needs a
// snapshot restore (RequiresRestore). Unknown versions return an *UnknownVersionError.
func (c *Catalog) Path(from, to string) (api.UpgradePath, error) {
	fi, ok := c.lookup(from)
	if !ok {
		return api.UpgradePath{}, &UnknownVersionError{Version: from, Known: c.Names()}
	}
	ti, ok := c.lookup(to)
	if !ok {
		return api.UpgradePath{}, &UnknownVersionError{Version: to, Known: c.Names()}
	}
	fv, tv := c.versions[fi], c.versions[ti]
	p := api.UpgradePath{
		From: fv.Version, To: tv.Version,
		Kind:       kindOf(c.parsed[fi], c.parsed[ti]),
		Valid:      true,
		FromSchema: fv.SchemaVersion, ToSchema: tv.SchemaVersion,
		Hops: []api.Hop{}, Migrations: []api.Migration{},
		BreakingChanges: []string{}, MigrationGuideURLs: []string{},
	}
	switch {
	case fi == ti:
		return p, nil
	case ti < fi:
		if tv.SchemaVersion < fv.SchemaVersion {
			// Not an upgrade at all, as the doc comment says: only a restore gets there.
			p.Valid = false
			p.RequiresRestore = true
			p.Reason = fmt.Sprintf("%s uses brain schema %d but %s only reads schema %d: going back needs a snapshot restore taken on %s or earlier", fv.Version, fv.SchemaVersion, tv.Version, tv.SchemaVersion, tv.Version)
		}
		p.Hops = append(p.Hops, api.Hop{From: fv.Version, To: tv.Version, Kind: KindDowngrade, Migrations: []api.Migration{}})
		return p, nil
	}
	// Forward: a hop ends at every version that changes the schema, and at the target.
	hopFrom := fi
	for i := fi + 1; i <= ti; i++ {
		v := c.versions[i]
		if v.Breaking {
			p.BreakingChanges = append(p.BreakingChanges, v.BreakingChanges...)
		}
		if v.MigrationGuideURL != "" {
			p.MigrationGuideURLs = append(p.MigrationGuideURLs, v.MigrationGuideURL)
		}
		if len(v.Migrations) == 0 && i != ti {
			continue
		}
		hop := api.Hop{From: c.versions[hopFrom].Version, To: v.Version, Kind: kindOf(c.parsed[hopFrom], c.parsed[i]), Migrations: []api.Migration{}}
		for _, m := range v.Migrations {
			m.SQL = ""
			hop.Migrations = append(hop.Migrations, m)
			p.Migrations = append(p.Migrations, m)
			p.ForwardOnly = p.ForwardOnly || m.ForwardOnly
			p.Destructive = p.Destructive || m.Destructive
		}
		p.Hops = append(p.Hops, hop)
		hopFrom = i
	}
	p.RequiresSnapshot = len(p.Migrations) > 0
	return p, nil
}

// Targets lists the versions reachable from a version by upgrade (every newer version), with
// their kinds, oldest first.
func (c *Catalog) Targets(from string) ([]api.Version, []string, error) {
	fi, ok := c.lookup(from)
	if !ok {
		return nil, nil, &UnknownVersionError{Version: from, Known: c.Names()}
	}
	var vs []api.Version
	var kinds []string
	for i := fi + 1; i < len(c.versions); i++ {
		vs = append(vs, c.versions[i])
		kinds = append(kinds, kindOf(c.parsed[fi], c.parsed[i]))
	}
	return vs, kinds, nil
}
