package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// planDestroy spells out what destroying the canary does: every moved engine back to its stable
// version, which ones restore a snapshot and how many brain writes that loses; and fails the plan
// when a rollback cannot be done.
func (r *canaryResource) planDestroy(ctx context.Context, state canaryModel, token string) diag.Diagnostics {
	var diags diag.Diagnostics
	if state.OnDestroy.ValueString() == onDestroyKeep {
		return diags
	}
	stable, snaps := mapStrings(state.StableVersions), mapStrings(state.Snapshots)
	var users []string
	for u, v := range stable {
		if v != state.Version.ValueString() {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return diags
	}
	sort.Strings(users)
	cat, err := r.data.Catalog(ctx)
	if err != nil {
		diags.Append(clientErrorDiag("Release Catalog Read Failed", err))
		return diags
	}
	engines, err := rollout.Fleet(ctx, r.data.Client, users)
	if err != nil {
		diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return diags
	}
	users = keepTakenOver(users, engines, token, &diags)
	var lines, impossible []string
	for _, u := range users {
		e, ok := engines[u]
		if !ok || (e.EngineVersion == stable[u] && e.Status == api.StatusRunning) {
			continue
		}
		rb, err := upgrade.PlanRollback(cat, e, stable[u], snaps[u])
		if err != nil {
			impossible = append(impossible, err.Error())
			continue
		}
		line := fmt.Sprintf("- %s: %s -> %s", u, e.EngineVersion, stable[u])
		if rb.Restore {
			s, err := r.data.Client.GetSnapshot(ctx, rb.SnapshotID)
			switch {
			case err != nil || s.Status != api.SnapshotVerified:
				impossible = append(impossible, fmt.Sprintf("user %s needs snapshot %s restored, but it is unusable (%v %s)",
					u, rb.SnapshotID, err, s.Status))
				continue
			default:
				line += fmt.Sprintf(", restoring snapshot %s (%d brain writes since it will be lost)", s.ID, upgrade.WritesSince(e, s))
			}
		}
		lines = append(lines, line)
	}
	if len(impossible) > 0 {
		diags.AddError("Canary Rollback Impossible",
			fmt.Sprintf("Destroying canary %s must roll every moved engine back, but:\n- %s\n\nNothing was changed. Set on_destroy = \"keep\" and "+
				"apply to drop the canary without rolling back, or restore those engines by hand first.",
				state.ID.ValueString(), strings.Join(impossible, "\n- ")))
		return diags
	}
	if len(lines) > 0 {
		diags.AddWarning("Destroy Rolls The Canary Back",
			fmt.Sprintf("Destroying canary %s returns %d engines to their stable versions, each verified healthy "+
				"before the canary leaves state:\n%s",
				state.ID.ValueString(), len(lines), strings.Join(firstNames(lines, 50), "\n")))
	}
	return diags
}
