package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// canaryRehearsalAttributes are engine_canary's rehearsal settings.
func canaryRehearsalAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"rehearsal_ids": schema.ListAttribute{Optional: true, ElementType: types.StringType,
			Validators: []validator.List{listvalidator.ValueStringsAre(idValidator()), listvalidator.UniqueValues()},
			MarkdownDescription: "`engine_rehearsal` ids of representative engines of this canary. When the canary is created, or this list " +
				"changes while engines remain to move, the plan " +
				"checks each as `engine_release.rehearsal_id` is checked: it passed, its engine is one of `user_ids`, it rehearsed that engine's " +
				"move " +
				"from the version " +
				"it runs to `version`, on a snapshot at its current schema taken since its brain last changed, within the last 7 days; otherwise the " +
				"plan fails naming the reason."},
	}
}

// checkRehearsals checks the canary's rehearsals against its engines and version; only a create
// or a change of rehearsal_ids is checked (engines the rollout already moved no longer run the
// rehearsal's from version).
func (m canaryModel) checkRehearsals(ctx context.Context, c *client.Client, state *canaryModel, engines map[string]api.Engine,
	version string) diag.Diagnostics {
	var diags diag.Diagnostics
	ids, ok := listStrings(m.RehearsalIDs)
	if !ok || len(ids) == 0 || state != nil && m.RehearsalIDs.Equal(state.RehearsalIDs) {
		return diags
	}
	maxAge, _ := time.ParseDuration(defaultRehearsalMaxAge)
	for _, id := range ids {
		reh, err := c.GetRehearsal(ctx, id)
		if err != nil {
			diags.Append(clientErrorAttrDiag(path.Root("rehearsal_ids"), "Rehearsal Read Failed", err))
			continue
		}
		e, in := engines[reh.UserID]
		if !in {
			diags.AddAttributeError(path.Root("rehearsal_ids"), "Rehearsal Of Another Engine",
				fmt.Sprintf("Rehearsal %s rehearsed user %s's engine, which is not one of this canary's user_ids: name rehearsals of engines this "+
					"canary moves.", id, reh.UserID))
			continue
		}
		if reasons := rehearsalProblems(reh, e, api.UpgradePath{From: e.EngineVersion, To: version}, maxAge, time.Now()); len(reasons) > 0 {
			diags.AddAttributeError(path.Root("rehearsal_ids"), "Rehearsal Does Not Cover This Canary",
				fmt.Sprintf("Rehearsal %s cannot vouch for moving user %s's engine %s -> %s:\n- %s\nRehearse it again and name the new rehearsal in "+
					"rehearsal_ids.",
					id, e.UserID, e.EngineVersion, version, strings.Join(reasons, "\n- ")))
		}
	}
	return diags
}
