package provider

// engine_canary's side of one owner per engine (ownership_helpers.go has the rest): a canary
// claims each engine just before it moves it, refuses at plan to move an engine another manager
// owns (from the engine reads the plan makes anyway: no extra request), leaves alone at destroy the
// engines another manager has taken over, and gives up the engines it owns when it is destroyed.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

const resourceTypeCanary = "engine_canary"

// canaryClaim is what a canary instance claims its engines with.
type canaryClaim struct {
	c       *client.Client
	token   string
	manager string
	id      string
}

// canaryOwner is the canary instance's claim: the token in private state, else the manager's
// canary token. It does not depend on the canary's id (which follows version and user_ids), so a
// canary replaced after a failed create, or one that succeeds another in the same workspace, is
// not refused the engines its predecessor claimed; canaries of one manager share one owner.
func (r *canaryResource) canaryOwner(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, id string) *canaryClaim {
	var rec ownerRecord
	if priv == nil || !getPrivateJSON(ctx, priv, privateOwner, &rec) || rec.Token == "" {
		rec.Token = ownerToken(resourceTypeCanary, "", r.data.manager)
	}
	return &canaryClaim{c: r.data.Client, token: rec.Token, manager: r.data.manager, id: id}
}

// bindOwner makes run claim each engine for the canary before it moves it, and keeps the token in
// private state, so a later change of the manager name does not make the canary a stranger to the
// engines it moved.
func (r *canaryResource) bindOwner(ctx context.Context, run *rollout.Canary, priv privateState, id string) diag.Diagnostics {
	c := r.canaryOwner(ctx, priv, id)
	run.Claim = c.claim
	return setPrivateJSON(ctx, priv, privateOwner, ownerRecord{Token: c.token})
}

// claim claims user's engine for the canary before it moves it.
func (c *canaryClaim) claim(ctx context.Context, user string) error {
	_, err := c.c.ClaimOwner(ctx, user, api.ClaimOwnerRequest{Token: c.token, Manager: c.manager,
		ResourceType: resourceTypeCanary, Resource: c.id})
	if client.HasCode(err, api.CodeEngineOwned) {
		return fmt.Errorf("user %s's engine is managed elsewhere (%s): a canary moves no engine another manager owns, "+
			"so nothing was started on it; "+
			"take it out of the canary's scope (user_ids or selector), or have its manager give it up first", user, errText(err))
	}
	return err
}

// canaryOwnerDiags fails a canary plan that would move engines another manager owns, naming them.
// bySelector says the canary's scope is a selector, so the error points there rather than at user_ids.
func canaryOwnerDiags(engines map[string]api.Engine, moves []upgrade.StepMove, token string, bySelector bool) diag.Diagnostics {
	var diags diag.Diagnostics
	var owned []string
	for _, mv := range moves {
		for _, u := range mv.Movers {
			if o := ownedByOther(engines[u], token); o != nil {
				owned = append(owned, fmt.Sprintf("%s (%s)", u, describeOwner(o)))
			}
		}
	}
	if len(owned) == 0 {
		return diags
	}
	attr, out := "user_ids", "Take those users out of user_ids"
	if bySelector {
		attr, out = "selector", "Narrow the selector (and user_ids, if set) so that the canary no longer covers those users"
	}
	diags.AddAttributeError(path.Root(attr), "Engines Managed Elsewhere",
		fmt.Sprintf("This canary would move %d %s that another manager owns:\n- %s\n\n"+
			"Two managers of one engine undo each other's work. Nothing was changed. "+
			"%s, or have their manager give them up first (on_destroy = \"keep\" and a destroy there; "+
			"a removed block alone leaves them owned). A canary never takes an engine over.",
			len(owned), engineNoun(len(owned)), strings.Join(firstNames(owned, 20), "\n- "), out))
	return diags
}

// keepTakenOver takes out of users (the engines a destroy would roll back) those another manager
// has taken over, with a warning: rolling them back would undo that manager's work.
func keepTakenOver(users []string, engines map[string]api.Engine, token string, diags *diag.Diagnostics) []string {
	var out, left []string
	for _, u := range users {
		if o := ownedByOther(engines[u], token); o != nil {
			left = append(left, fmt.Sprintf("%s (%s)", u, describeOwner(o)))
			continue
		}
		out = append(out, u)
	}
	if len(left) > 0 {
		sort.Strings(left)
		diags.AddWarning("Destroy Leaves Engines Alone", fmt.Sprintf("Another manager now owns %d %s this canary moved; "+
			"destroying the canary "+
			"leaves them where they run, without a rollback:\n- %s", len(left), engineNoun(len(left)), strings.Join(firstNames(left, 20), "\n- ")))
	}
	return out
}

// takenOver is the Skip of a destroy's rollback: the engines the canary moved (stable versions in
// state other than version) that another manager has taken over, named in a warning.
func (c *canaryClaim) takenOver(state canaryModel, engines map[string]api.Engine, diags *diag.Diagnostics) func(string) bool {
	var moved []string
	for u, v := range mapStrings(state.StableVersions) {
		if v != state.Version.ValueString() {
			moved = append(moved, u)
		}
	}
	sort.Strings(moved)
	keepTakenOver(moved, engines, c.token, diags)
	return func(u string) bool { return ownedByOther(engines[u], c.token) != nil }
}

// releaseAll gives up, after a destroy, every engine of engines the canary owns.
func (c *canaryClaim) releaseAll(ctx context.Context, engines map[string]api.Engine) {
	for u, e := range engines {
		if e.Owner == nil || e.Owner.Token != c.token {
			continue
		}
		if err := c.c.ReleaseOwner(ctx, u, c.token); err != nil && !client.IsNotFound(err) {
			tflog.Warn(ctx, "engine ownership not released", map[string]any{"user_id": u, "error": err.Error()})
		}
	}
}

// releaseKept gives up the engines a canary destroyed with on_destroy = "keep" owns: those of
// user_ids and every engine it recorded, read once.
func (r *canaryResource) releaseKept(ctx context.Context, state canaryModel, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}) {
	users, _ := listStrings(state.UserIDs)
	for u := range mapStrings(state.StableVersions) {
		users = append(users, u)
	}
	sort.Strings(users)
	engines, err := rollout.Fleet(ctx, r.data.Client, slices.Compact(users))
	if err != nil {
		tflog.Warn(ctx, "engine ownership not released: the fleet could not be read", map[string]any{"error": err.Error()})
		return
	}
	r.canaryOwner(ctx, priv, state.ID.ValueString()).releaseAll(ctx, engines)
}

// engineNoun is "engine" for one, "engines" otherwise.
func engineNoun(n int) string {
	if n == 1 {
		return "engine"
	}
	return "engines"
}
