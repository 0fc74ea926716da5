package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// The scope a canary's plan walks, and the users this canary moved that left it.

// planScope is the scope a plan walks (user_ids plus the users this canary moved that still run
// version, as refresh read them), the moved users in it in rank order, and the users this canary
// moved that left both user_ids and version: they no longer count, and the plan warns about them.
func planScope(users []string, state canaryModel, version, seed string) (scope, moved, left []string) {
	stable := mapStrings(state.StableVersions)
	stateMoved, _ := listStrings(state.MovedUserIDs)
	isMoved := map[string]bool{}
	var mine []string
	for _, u := range stateMoved {
		isMoved[u] = true
		if v := stable[u]; v != "" && v != version {
			mine = append(mine, u)
		}
	}
	scope = upgrade.Scope(users, mine)
	for _, u := range upgrade.Rank(seed, scope) {
		if isMoved[u] {
			moved = append(moved, u)
		}
	}
	in := map[string]bool{}
	for _, u := range scope {
		in[u] = true
	}
	for u, v := range stable {
		if v != version && !in[u] {
			left = append(left, u)
		}
	}
	sort.Strings(left)
	return scope, moved, left
}

// leftScope warns about users this canary moved that are neither in user_ids nor on version any
// more (moved on or back out of band, or gone): they stopped counting toward the rollout. Those
// back on their stable version need no word: the canary left nothing behind on them.
func (r *canaryResource) leftScope(ctx context.Context, state canaryModel, users []string) diag.Diagnostics {
	var diags diag.Diagnostics
	engines, err := rollout.Fleet(ctx, r.data.Client, users)
	if err != nil {
		diags.Append(clientErrorAttrDiag(path.Root("user_ids"), "Engine Fleet Read Failed", err))
		return diags
	}
	stable := mapStrings(state.StableVersions)
	var lines []string
	for _, u := range users {
		e, ok := engines[u]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("- %s: the control plane no longer knows its engine", u))
		case e.EngineVersion != stable[u] || e.Status != api.StatusRunning:
			lines = append(lines, fmt.Sprintf("- %s: runs %s (%s); it ran %s before this canary moved it", u, e.EngineVersion, e.Status, stable[u]))
		}
	}
	if len(lines) == 0 {
		return diags
	}
	diags.AddAttributeWarning(path.Root("user_ids"), "Moved Users Left The Canary",
		fmt.Sprintf("Canary %s moved these users to %s, but they no longer run it and are not in user_ids, so they no longer count "+
			"toward the rollout's steps:\n%s\n\n"+
			"Users the canary moved stay in its scope while they run %s, whatever user_ids says; these left it another way (an upgrade, a restore "+
			"or a deletion outside this canary). "+
			"The canary keeps their stable versions and snapshots: destroy (or an abort) still returns them to their stable versions. Add them "+
			"back to user_ids to move them again.",
			state.ID.ValueString(), state.Version.ValueString(), strings.Join(firstNames(lines, 20), "\n"), state.Version.ValueString()))
	return diags
}
