package provider

// One owner per engine: which Terraform resource instance manages an engine is recorded on the
// control plane (PUT /v1/engines/{user_id}/owner). Each engine_release instance has an owner
// token, kept in private state; conflicts are decided on the token, and the manager label (the
// provider's `manager`, ENGINE_MANAGER, or one derived from the workspace and directory) names
// the owner for humans. A create, or an upgrade, over an engine another token owns is a
// plan-time error naming the owner, unless take_ownership is set or the release was imported;
// destroy releases the engine, and leaves alone an engine another manager has taken over.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

const (
	attrManager = "manager"
	envManager  = "ENGINE_MANAGER"

	// privateOwner is the private-state key of a resource instance's ownership record.
	privateOwner = "owner"

	resourceTypeRelease = "engine_release"
)

// ownerRecord is what private state keeps of an instance's ownership: its token, and whether the
// next apply must claim the engine even from another owner (set by import).
type ownerRecord struct {
	Token    string `json:"token"`
	TakeOver bool   `json:"take_over,omitempty"`
}

// managerLabel is the name this provider instance claims engines under: the configured one, else
// ENGINE_MANAGER, else HCP Terraform's workspace, else "<workspace> in <working directory>" (the
// workspace from TF_WORKSPACE or .terraform/environment, "default" without either).
func managerLabel(configured types.String, lookupEnv func(string) (string, bool)) string {
	if v := strings.TrimSpace(configured.ValueString()); v != "" {
		return v
	}
	for _, env := range []string{envManager, "TFC_WORKSPACE_SLUG", "TFC_WORKSPACE_NAME"} {
		if v, ok := lookupEnv(env); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		dir = "an unknown directory"
	}
	ws := "default"
	if v, ok := lookupEnv("TF_WORKSPACE"); ok && strings.TrimSpace(v) != "" {
		ws = strings.TrimSpace(v)
	} else if b, err := os.ReadFile(filepath.Join(dir, ".terraform", "environment")); err == nil && strings.TrimSpace(string(b)) != "" {
		ws = strings.TrimSpace(string(b))
	}
	label := ws + " in " + dir
	if len(label) > 256 {
		label = "…" + label[len(label)-250:]
	}
	return label
}

// ownerToken is the token a new instance claims with: derived from the resource type, the engine
// and the manager label, so a create that a kill cut off claims with the same token when it is
// applied again, and two managers (two labels) never share one.
func ownerToken(resourceType, resourceID, manager string) string {
	sum := sha256.Sum256([]byte(resourceType + "\x00" + resourceID + "\x00" + manager))
	return "tok-" + hex.EncodeToString(sum[:16])
}

// releaseOwner is the release instance's ownership record: private state's, else a new one.
func (r *releaseResource) releaseOwner(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, userID string) ownerRecord {
	var rec ownerRecord
	if priv != nil && getPrivateJSON(ctx, priv, privateOwner, &rec) && rec.Token != "" {
		return rec
	}
	return ownerRecord{Token: ownerToken(resourceTypeRelease, userID, r.data.manager)}
}

// ownedByOther is the engine's owner when a token other than token owns it.
func ownedByOther(e api.Engine, token string) *api.EngineOwner {
	if e.Owner != nil && e.Owner.Token != token {
		return e.Owner
	}
	return nil
}

// describeOwner names an owner for an error or a warning.
func describeOwner(o *api.EngineOwner) string {
	return fmt.Sprintf("manager %q (an %s, since %s)", o.Manager, o.ResourceType, o.Since.UTC().Format(time.RFC3339))
}

// ownerPlanDiags is the plan's verdict on ownership for a create or an upgrade by the instance with
// rec: an error when another manager owns the engine and nothing says to take it over, a warning
// when the apply will take it over.
func ownerPlanDiags(e api.Engine, rec ownerRecord, take bool, manager string) diag.Diagnostics {
	var diags diag.Diagnostics
	o := ownedByOther(e, rec.Token)
	switch {
	case o == nil:
	case take || rec.TakeOver:
		diags.AddAttributeWarning(path.Root("take_ownership"), "Taking Over The Engine",
			fmt.Sprintf("User %s's engine is owned by %s. Applying takes it over for manager %q: from then on that manager's plans refuse to "+
				"move it, and its destroy leaves it alone.", e.UserID, describeOwner(o), manager))
	default:
		diags.AddAttributeError(path.Root("user_id"), "Engine Managed Elsewhere",
			fmt.Sprintf("User %s's engine is owned by %s, not by this resource (manager %q). Two managers of one engine undo each other's work: "+
				"a destroy in one rolls back the upgrade the other made. Nothing was changed.\n\nEither have the other manager give it up "+
				"(on_destroy = \"keep\" and a destroy there), or take it over explicitly: set take_ownership = true here, or terraform "+
				"import this resource. After a take-over that manager's plans refuse to move the engine and its destroy leaves it alone; "+
				"drop it from that configuration with a removed block (lifecycle { destroy = false }).", e.UserID, describeOwner(o), manager))
	}
	return diags
}

// claimRelease claims m's engine for this instance before an apply changes it, and records the
// token in private state. It reports false (with an error) when the engine is someone else's.
func (r *releaseResource) claimRelease(ctx context.Context, m *releaseModel, priv privateState, diags *diag.Diagnostics) bool {
	userID := m.UserID.ValueString()
	rec := r.releaseOwner(ctx, priv, userID)
	_, err := r.data.Client.ClaimOwner(ctx, userID, api.ClaimOwnerRequest{Token: rec.Token, Manager: r.data.manager,
		ResourceType: resourceTypeRelease, Resource: userID, TakeOver: rec.TakeOver || m.TakeOwnership.ValueBool()})
	if client.HasCode(err, api.CodeEngineOwned) {
		diags.AddAttributeError(path.Root("user_id"), "Engine Managed Elsewhere", fmt.Sprintf("User %s's engine was claimed by another manager "+
			"after the plan: %s. Nothing was changed. Run terraform plan again to see its owner; set take_ownership = true to take it over.",
			userID, errText(err)))
		return false
	}
	if err != nil {
		diags.Append(clientErrorDiag("Engine Ownership Not Claimed", err))
		return false
	}
	rec.TakeOver = false
	diags.Append(setPrivateJSON(ctx, priv, privateOwner, rec)...)
	m.Owner = types.StringValue(r.data.manager)
	return !diags.HasError()
}

// releaseOnDestroy gives the engine up after a destroy (any on_destroy). An engine another
// manager owns stays theirs.
func (r *releaseResource) releaseOnDestroy(ctx context.Context, userID string, priv privateState) {
	rec := r.releaseOwner(ctx, priv, userID)
	if err := r.data.Client.ReleaseOwner(ctx, userID, rec.Token); err != nil && !client.IsNotFound(err) {
		tflog.Warn(ctx, "engine ownership not released", map[string]any{"user_id": userID, "error": err.Error()})
	}
}

// destroyLeavesAlone reports (with a warning) whether a destroy must leave e alone because another
// manager has taken it over: rolling it back would undo that manager's work.
func destroyLeavesAlone(e api.Engine, token string, diags *diag.Diagnostics) bool {
	o := ownedByOther(e, token)
	if o == nil {
		return false
	}
	diags.AddWarning("Destroy Leaves The Engine Alone", fmt.Sprintf("User %s's engine is now owned by %s, not by this resource: "+
		"destroying this release "+
		"removes it from state and leaves the engine on %s, without a rollback.", e.UserID, describeOwner(o), e.EngineVersion))
	return true
}

// ownerLabel is the owner attribute's value for what a read of e found.
func ownerLabel(e api.Engine) types.String {
	if e.Owner == nil {
		return types.StringNull()
	}
	return types.StringValue(e.Owner.Manager)
}

// managerAttribute is the provider's manager attribute.
func managerAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		MarkdownDescription: fmt.Sprintf("The name this configuration's resources own engines under on the control plane, shown to any other "+
			"configuration whose plan would move an engine this one manages, for example the workspace's name (`team-a`). Give each "+
			"workspace its own: two configurations with the same `manager` count as one owner. Falls back to `%s`, then to HCP Terraform's "+
			"`TFC_WORKSPACE_SLUG` / `TFC_WORKSPACE_NAME`, then to `<workspace> in <working directory>` (the workspace from `TF_WORKSPACE` or "+
			"`.terraform/environment`).", envManager),
		Optional:   true,
		Validators: []validator.String{stringvalidator.LengthBetween(1, 256)},
	}
}

// claimPending says whether private state holds a take-over the next apply must make (an import's).
func claimPending(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}) bool {
	var rec ownerRecord
	return getPrivateJSON(ctx, priv, privateOwner, &rec) && rec.TakeOver
}

// plannedOwner is owner in a plan that moves no version: this provider's manager when the apply
// takes the engine over (take_ownership, or an import's pending claim), else what state holds.
func (r *releaseResource) plannedOwner(plan releaseModel, held types.String, pending bool) types.String {
	if pending || plan.TakeOwnership.ValueBool() {
		return types.StringValue(r.data.manager)
	}
	return held
}

// updateClaims says whether an update claims the engine: when it moves the version, takes the
// engine back from a drift with allow_downgrade, or takes it over. An update of settings only
// leaves the owner as it is.
func (r *releaseResource) updateClaims(plan, state releaseModel) bool {
	return !plan.Version.Equal(state.Version) || !plan.Owner.Equal(state.Owner) || (state.holdsDrift() && plan.AllowDowngrade.ValueBool())
}

// releaseUntracked gives up the claim of a create that failed with nothing to track (the engine
// is where the create found it), unless the create took the engine over from another manager.
func (r *releaseResource) releaseUntracked(ctx context.Context, plan releaseModel, priv privateState) {
	if !plan.TakeOwnership.ValueBool() {
		r.releaseOnDestroy(ctx, plan.UserID.ValueString(), priv)
	}
}

// setOwner sets *dst to the owner a read of e found and reports whether that changed it.
func setOwner(dst *types.String, e api.Engine) bool {
	o := ownerLabel(e)
	if dst.Equal(o) {
		return false
	}
	*dst = o
	return true
}

// operationKey is the idempotency key of the upgrade or restore a create (or an update) starts:
// its prefix and the instance's owner token, by which the instance, and only it, finds the
// operation again after a kill (interruptedCreate, adoptKilledUpdate).
func (r *releaseResource) operationKey(ctx context.Context, priv privateState, userID string, create bool) string {
	prefix := updateKeyPrefix
	if create {
		prefix = createKeyPrefix
	}
	return prefix + r.releaseOwner(ctx, priv, userID).Token + "-" + client.NewIdempotencyKey()
}

// takenOver reads userID's engine and reports (with the warning) whether destroy must leave it
// alone because another manager has taken it over.
func (r *releaseResource) takenOver(ctx context.Context, userID string, priv privateState, diags *diag.Diagnostics) bool {
	e, err := r.data.Client.GetEngine(ctx, userID)
	return err == nil && destroyLeavesAlone(e, r.releaseOwner(ctx, priv, userID).Token, diags)
}
