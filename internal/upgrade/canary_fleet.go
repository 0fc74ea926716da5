package upgrade

import (
	"fmt"
	"sort"
	"strings"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// CanaryCheck is what the engines in a canary's scope say about rolling version out to them.
type CanaryCheck struct {
	// Errors are the rules that refuse the rollout: an unknown version, unknown users, a major
	// upgrade without allow_major_upgrade.
	Errors []Problem
	// Held maps each user whose engine runs a version above the canary's (someone moved it
	// outside the canary) to that version. A canary never downgrades: it leaves these engines
	// where they run and walks its steps without them (see HoldsDrift).
	Held map[string]string
}

// CheckCanary applies the canary's rules that need the engines of users, the fleet-wide form of
// PlanRelease's: version in the catalog, every user known, no major upgrade without allowMajor;
// and finds the engines it holds because they run above version (HoldsDrift).
func CheckCanary(c *Catalog, engines map[string]api.Engine, users []string, version string, allowMajor bool) CanaryCheck {
	var out CanaryCheck
	if _, ok := c.Get(version); !ok {
		out.Errors = append(out.Errors, unknownVersion(version, strings.Join(c.Names(), ", ")))
		return out
	}
	var unknown, major []string
	for _, u := range users {
		e, ok := engines[u]
		if !ok {
			unknown = append(unknown, u)
			continue
		}
		if HoldsDrift(version, e.EngineVersion, false) {
			if out.Held == nil {
				out.Held = map[string]string{}
			}
			out.Held[u] = e.EngineVersion
			continue
		}
		if k, err := Kind(e.EngineVersion, version); err == nil && k == KindMajor && !allowMajor {
			major = append(major, u+" ("+e.EngineVersion+")")
		}
	}
	if len(unknown) > 0 {
		out.Errors = append(out.Errors, Problem{"user_ids", "Unknown Users",
			fmt.Sprintf("The control plane has no engine for %d of user_ids: %s. Remove them from user_ids; data \"engine_instances\" lists the engines it knows.", len(unknown), strings.Join(unknown, ", "))})
	}
	if len(major) > 0 {
		v, _ := c.Get(version)
		guide := ""
		if v.MigrationGuideURL != "" {
			guide = " Read the migration guide first: " + v.MigrationGuideURL + "."
		}
		out.Errors = append(out.Errors, Problem{"version", "Major Upgrade Not Allowed",
			fmt.Sprintf("Rolling out %s is a major upgrade for %d engines (%s), with breaking changes: %s. Set allow_major_upgrade = true to proceed.%s",
				version, len(major), strings.Join(FirstNames(major, 10), ", "), strings.Join(v.BreakingChanges, "; "), guide)})
	}
	return out
}

// Without is users minus the held ones, in the same order.
func Without(users []string, held map[string]string) []string {
	if len(held) == 0 {
		return users
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if _, ok := held[u]; !ok {
			out = append(out, u)
		}
	}
	return out
}

// HeldList renders held as "user-0003 (2.4.1), ..." in user order, at most n named.
func HeldList(held map[string]string, n int) string {
	users := make([]string, 0, len(held))
	for u := range held {
		users = append(users, u)
	}
	sort.Strings(users)
	named := make([]string, len(users))
	for i, u := range users {
		named[i] = u + " (" + held[u] + ")"
	}
	return strings.Join(FirstNames(named, n), ", ")
}

// CanaryDriftAbove is the plan warning for engines in a canary's scope that someone moved above
// its version outside it: the canary leaves them there, and the warning names the ways out.
func CanaryDriftAbove(version string, held map[string]string) Problem {
	return Problem{"user_ids", "Engine Moved Above The Canary's Version",
		fmt.Sprintf("Someone moved %d engines in user_ids above %s outside this canary: %s. A canary only moves engines forward, so it leaves them where they run, "+
			"walks its steps over the other users, and never moves, rolls back or judges these. "+
			"To accept the move, take them out of user_ids, or roll out a version at least as new (set version). "+
			"To go back, return each engine to %s outside the canary (an engine_release with version = %q and allow_downgrade = true, which restores a snapshot where the schema moved): "+
			"the canary then counts it as on its version.", len(held), version, HeldList(held, 20), version, version)}
}

// CanaryWouldDowngrade refuses a step that would move engines someone moved above version since
// the canary last read them (the refresh before the plan): moving them would be a downgrade.
func CanaryWouldDowngrade(version string, held map[string]string) Problem {
	return Problem{"version", "Canary Would Downgrade",
		fmt.Sprintf("%d engines this step would move to %s now run a newer version, set outside this canary since it last read them: %s. A canary only moves engines forward, so nothing was moved. "+
			"Plan again (with refresh): the new plan leaves them where they run, warns about them and walks its steps over the other users.", len(held), version, HeldList(held, 10))}
}

// CanaryNewerEngines refuses a new canary over engines that already run a version above its own:
// nothing drifted yet, the configuration asks the canary to move them back.
func CanaryNewerEngines(version string, held map[string]string) Problem {
	return Problem{"version", "Canary Would Downgrade",
		fmt.Sprintf("%d engines already run a version newer than %s (%s): a canary only moves engines forward. Remove them from user_ids, or roll out a newer version.",
			len(held), version, HeldList(held, 10))}
}

// FirstNames is at most n of us, then "and K more".
func FirstNames(us []string, n int) []string {
	if len(us) <= n {
		return us
	}
	return append(append([]string(nil), us[:n]...), fmt.Sprintf("and %d more", len(us)-n))
}

// MovedAbove is the users of above that moves would move.
func MovedAbove(moves []StepMove, above map[string]string) map[string]string {
	var out map[string]string
	for _, mv := range moves {
		for _, u := range mv.Movers {
			if v, ok := above[u]; ok {
				if out == nil {
					out = map[string]string{}
				}
				out[u] = v
			}
		}
	}
	return out
}

// NewlyHeld is the users of held that planned did not hold.
func NewlyHeld(held, planned map[string]string) map[string]string {
	var out map[string]string
	for u, v := range held {
		if _, ok := planned[u]; !ok {
			if out == nil {
				out = map[string]string{}
			}
			out[u] = v
		}
	}
	return out
}
