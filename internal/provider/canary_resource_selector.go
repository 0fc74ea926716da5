package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// A canary scoped by a selector keeps its per-engine facts on the control plane, not in state: the
// selector's matches are read at every plan (one request per 10,000 engines), each moved engine's
// stable version and snapshot live in the canary's record, and moved_user_ids, stable_versions
// and snapshots are null in state. Inside a request the model is "hydrated" with them, so the
// step logic is the same as with user_ids; "dehydrate" takes them out again before state or the
// plan is written.

var selectorAttrTypes = map[string]attr.Type{"status": types.StringType, "version": types.StringType, "user_id_prefix": types.StringType}

func selectorAttribute() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		MarkdownDescription: "The scope as a filter the control plane evaluates at every plan, for a large fleet: every engine " +
			"matching all the fields set " +
			"(as `engine_instances` filters), together with `user_ids` when both are set. With a selector the canary's state does not " +
			"grow with the fleet: " +
			"`stable_versions`, `snapshots` and `moved_user_ids` are kept on the control plane, in the canary's record (see " +
			"`moved_count`, `next_step`). " +
			"A selector on the version being replaced (`version = \"2.3.1\"`) shrinks as engines move; the engines this canary moved " +
			"stay in scope while they run `version`.",
		Optional: true,
		Attributes: map[string]schema.Attribute{
			"status": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Only engines in this status: " + backtickList(api.EngineStatuses) + ".",
				Validators: []validator.String{stringvalidator.OneOf(api.EngineStatuses...)},
			},
			"version": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Only engines running exactly this version.",
				Validators: []validator.String{versionValidator{}},
			},
			"user_id_prefix": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Only engines whose user id starts with this prefix.",
				Validators: []validator.String{stringvalidator.LengthBetween(1, 128)},
			},
		},
	}
}

// scopeKeeper remembers what hydrate replaced, for dehydrate.
type scopeKeeper struct {
	on      bool       // a selector is set: per-engine facts live on the control plane
	userIDs types.List // user_ids as configured
}

// selectorOf reads the selector; ok is false when it is unknown.
func selectorOf(m canaryModel) (sel api.Selector, set, ok bool) {
	if m.Selector.IsNull() {
		return sel, false, true
	}
	if m.Selector.IsUnknown() {
		return sel, true, false
	}
	a := m.Selector.Attributes()
	for name, dst := range map[string]*string{"status": &sel.Status, "version": &sel.Version, "user_id_prefix": &sel.UserIDPrefix} {
		v, _ := a[name].(types.String)
		if v.IsUnknown() {
			return sel, true, false
		}
		*dst = v.ValueString()
	}
	return sel, true, true
}

// selectorKey is sel as text, for the canary's id.
func selectorKey(sel api.Selector) string {
	return "selector:status=" + sel.Status + ",version=" + sel.Version + ",prefix=" + sel.UserIDPrefix
}

// idOf is the id a new canary of m gets: from version, the configured user_ids and the selector.
func (k scopeKeeper) idOf(m canaryModel) string {
	users, _ := listStrings(k.userIDs)
	if sel, set, _ := selectorOf(m); set {
		users = append(users, selectorKey(sel))
	}
	return canaryID(m.Version.ValueString(), users)
}

// Which facts hydrate reads from the control plane besides the selector's matches.
const (
	hydrateRecord = 1 << iota // stable_versions and snapshots, from the canary's record
	hydrateMoved              // moved_user_ids, from the fleet (needs hydrateRecord)
)

// hydrate fills m with the per-engine facts a selector canary keeps on the control plane.
func (r *canaryResource) hydrate(ctx context.Context, m *canaryModel, what int) (scopeKeeper, diag.Diagnostics) {
	var diags diag.Diagnostics
	k := scopeKeeper{userIDs: m.UserIDs}
	sel, set, known := selectorOf(*m)
	if !set {
		return k, nil
	}
	k.on = true
	explicit, okUsers := listStrings(m.UserIDs)
	if !known || !okUsers {
		m.UserIDs = types.ListUnknown(types.StringType)
		return k, nil
	}
	opts := client.ListEnginesOptions{Status: sel.Status, Version: sel.Version, UserIDPrefix: sel.UserIDPrefix}
	ids, err := r.data.Client.AllEngineIDs(ctx, opts)
	if err != nil {
		diags.Append(clientErrorAttrDiag(path.Root("selector"), "Engine Selector Read Failed", err))
		return k, diags
	}
	users := union(ids, explicit)
	m.UserIDs = stringListValue(users)
	if what&hydrateRecord == 0 || m.ID.IsNull() || m.ID.IsUnknown() {
		return k, diags
	}
	moved, err := r.data.Client.MovedEngines(ctx, m.ID.ValueString())
	if err != nil && !client.IsNotFound(err) {
		diags.Append(clientErrorDiag("Canary Record Read Failed", err))
		return k, diags
	}
	stable, snaps := recordMaps(moved)
	m.StableVersions, m.Snapshots = stringMap(stable), stringMap(snaps)
	if what&hydrateMoved == 0 {
		return k, diags
	}
	version := m.Version.ValueString()
	candidates := users
	for u, v := range stable {
		if v != version {
			candidates = append(candidates, u)
		}
	}
	candidates = union(candidates, nil)
	engines, err := rollout.Fleet(ctx, r.data.Client, candidates)
	if err != nil {
		diags.Append(clientErrorDiag("Engine Fleet Read Failed", err))
		return k, diags
	}
	var on []string
	for _, u := range upgrade.Rank(seedOf(*m), candidates) {
		if e, ok := engines[u]; ok && e.EngineVersion == version && e.Status != api.StatusFailed {
			on = append(on, u)
		}
	}
	m.MovedUserIDs = stringListValue(on)
	return k, diags
}

func seedOf(m canaryModel) string {
	if s := m.CohortSeed.ValueString(); s != "" {
		return s
	}
	return m.ID.ValueString()
}

// dehydrate takes the facts the control plane keeps out of m again.
func (k scopeKeeper) dehydrate(m *canaryModel) {
	if !k.on {
		return
	}
	m.UserIDs = k.userIDs
	m.StableVersions, m.Snapshots = types.MapNull(types.StringType), types.MapNull(types.StringType)
	m.MovedUserIDs = types.ListNull(types.StringType)
}

// scope is the record's scope for m: the configured user_ids and the selector.
func (k scopeKeeper) scope(m canaryModel) api.CanaryScope {
	users, _ := listStrings(k.userIDs)
	out := api.CanaryScope{UserIDs: users}
	if sel, set, _ := selectorOf(m); set {
		out.Selector = &sel
	}
	return out
}

// union is a and b, sorted, without repeats.
func union(a, b []string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, list := range [][]string{a, b} {
		for _, u := range list {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	sort.Strings(out)
	return out
}

// selectorValue is sel as the selector attribute's value.
func selectorValue(sel *api.Selector) types.Object {
	if sel == nil {
		return types.ObjectNull(selectorAttrTypes)
	}
	str := func(s string) types.String {
		if s == "" {
			return types.StringNull()
		}
		return types.StringValue(s)
	}
	return types.ObjectValueMust(selectorAttrTypes, map[string]attr.Value{
		"status": str(sel.Status), "version": str(sel.Version), "user_id_prefix": str(sel.UserIDPrefix)})
}

// noScope is ValidateConfig's error for a canary with neither user_ids nor selector.
func noScope(m canaryModel) (string, bool) {
	if !m.UserIDs.IsNull() || !m.Selector.IsNull() {
		return "", false
	}
	return fmt.Sprintf("Set user_ids (a list of users), selector (a filter the control plane evaluates: %s), or both.",
		strings.Join([]string{"status", "version", "user_id_prefix"}, ", ")), true
}

// dehydratePlan takes the facts the control plane keeps out of the plan ModifyPlan wrote.
func dehydratePlan(ctx context.Context, resp *resource.ModifyPlanResponse, k scopeKeeper) {
	if !k.on || resp.Plan.Raw.IsNull() || resp.Diagnostics.HasError() {
		return
	}
	var m canaryModel
	resp.Diagnostics.Append(resp.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	k.dehydrate(&m)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &m)...)
}

// selectorProgressUnknown leaves the progress of a selector canary's moving update to the apply:
// the apply reads the selector again, and an engine that started matching since the plan changes
// the cohort sizes, so counts promised at plan could not be kept. planned_step still names who
// moves next and how many.
func selectorProgressUnknown(m *canaryModel, k scopeKeeper) {
	if !k.on {
		return
	}
	m.MovedCount, m.CurrentPercent = types.Int64Unknown(), types.Int64Unknown()
	m.Phase, m.NextStep = types.StringUnknown(), types.StringUnknown()
}
