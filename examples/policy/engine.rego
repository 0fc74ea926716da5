# Policy for Engine upgrades, evaluated over `terraform show -json` of a saved plan:
#
#   terraform plan -out=tfplan && terraform show -json tfplan > plan.json
#   opa eval --format pretty -d examples/policy -i plan.json 'data.engine.terraform.deny'
#   conftest test --policy examples/policy --namespace engine.terraform plan.json
#
# Provider warnings do not reach `terraform show -json`, so every rule reads attributes the
# provider fills in at plan time: engine_release.planned_upgrade (requires_snapshot, destructive,
# migrations, ...) and analysis (its defaults filled in), the canary's steps, and in a destroy plan the refreshed
# engine_release.rollback_writes_lost. deny is a set of messages; an empty set passes.
package engine.terraform

import rego.v1

# Resources the plan creates or updates (not deletes, not no-ops).
changing(type) := {rc |
	some rc in input.resource_changes
	rc.type == type
	some action in rc.change.actions
	action in {"create", "update"}
}

# --- Every upgrade must be reviewable: planned_upgrade known at plan time. -------------------

deny contains msg if {
	some rc in changing("engine_release")
	rc.change.after_unknown.planned_upgrade == true
	msg := sprintf("%s: the upgrade it plans is unknown until apply (user_id or version comes from another resource), so it cannot be reviewed. Use known values, or apply that dependency first.", [rc.address])
}

# --- A migrating upgrade must be protected by a snapshot the plan shows. ---------------------
# The provider itself refuses a migrating upgrade with neither snapshot_id nor auto_snapshot. It
# accepts a snapshot_id that is unknown at plan, though, and then nobody reviewing the plan can
# see what protects the brain. This rule wants the protection visible in the plan: auto_snapshot,
# a known snapshot_id, or a reference to an engine_brain_snapshot resource in the configuration.

migrating(rc) if {
	rc.change.after.planned_upgrade.action == "upgrade"
	rc.change.after.planned_upgrade.requires_snapshot == true
}

snapshot_shown(rc) if rc.change.after.auto_snapshot == true

snapshot_shown(rc) if {
	id := rc.change.after.snapshot_id
	is_string(id)
	id != ""
}

snapshot_shown(rc) if {
	some ref in config_resource(rc).expressions.snapshot_id.references
	startswith(ref, "engine_brain_snapshot.")
}

# The configuration block a resource change comes from (root module, or the module it is in).
config_resource(rc) := res if {
	not rc.module_address
	some res in input.configuration.root_module.resources
	res.type == rc.type
	res.name == rc.name
}

deny contains msg if {
	some rc in changing("engine_release")
	migrating(rc)
	not snapshot_shown(rc)
	msg := sprintf("%s: moving user %s from %s to %s migrates the brain (%s) but the plan does not show what snapshot protects it. Set auto_snapshot = true, or snapshot_id to a known id or an engine_brain_snapshot resource.", [
		rc.address, rc.change.after.user_id, rc.change.after.planned_upgrade.from, rc.change.after.planned_upgrade.to,
		concat(", ", [m.id | some m in rc.change.after.planned_upgrade.migrations]),
	])
}

# --- Every upgrade is watched after it: an analysis on every release. ------------------------
# The Engine's post-upgrade checklist (error rate, P99 latency, cache-hit ratio, warnings the
# previous version did not emit) is engine_release's analysis. Without one, a release checks
# health and evals only, and a patch that doubles the error rate counts as succeeded.

deny contains msg if {
	some rc in changing("engine_release")
	rc.change.after.planned_upgrade.action == "upgrade"
	rc.change.after.analysis == null
	msg := sprintf("%s: moving user %s from %s to %s is not watched after the upgrade. Set analysis (at least analysis = {}): the post-upgrade checklist of error rate, P99 latency, cache-hit ratio and new warning kinds against the engine's own figures before the upgrade, rolled back when it fails.", [
		rc.address, rc.change.after.user_id, rc.change.after.planned_upgrade.from, rc.change.after.planned_upgrade.to,
	])
}

# --- A destructive migration needs an explicit approval. -------------------------------------
# The approval is the root variable approved_destructive_migrations: the user ids a reviewer
# approved, visible in the plan and in the pull request that changes it.

approved(user_id) if user_id in input.variables.approved_destructive_migrations.value

deny contains msg if {
	some rc in changing("engine_release")
	rc.change.after.planned_upgrade.destructive == true
	not approved(rc.change.after.user_id)
	msg := sprintf("%s: moving user %s to %s runs a destructive migration (%s). Add %q to the variable approved_destructive_migrations once a reviewer has approved it.", [
		rc.address, rc.change.after.user_id, rc.change.after.planned_upgrade.to,
		concat(", ", [m.id | some m in rc.change.after.planned_upgrade.migrations; m.destructive]),
		rc.change.after.user_id,
	])
}

# --- A major or destructive upgrade needs a passed rehearsal. -------------------------------
# The Engine's upgrade page asks to test a major version in staging first, on a copy of
# production's brain: engine_rehearsal. A release names it in rehearsal_id; when the id is known
# at plan the provider checks it (passed, this engine, this path, today's brain, recent enough)
# and shows it in planned_upgrade.rehearsal. When the rehearsal is created in the same run its id
# is unknown at plan: the configuration's reference to an engine_rehearsal is what the plan shows,
# and the provider checks the verdict at apply, before the upgrade starts.

needs_rehearsal(rc) if rc.change.after.planned_upgrade.kind == "major"

needs_rehearsal(rc) if rc.change.after.planned_upgrade.destructive == true

rehearsed(rc) if rc.change.after.planned_upgrade.rehearsal.status == "passed"

rehearsed(rc) if {
	rc.change.after_unknown.rehearsal_id == true
	some ref in config_resource(rc).expressions.rehearsal_id.references
	startswith(ref, "engine_rehearsal.")
}

deny contains msg if {
	some rc in changing("engine_release")
	rc.change.after.planned_upgrade.action == "upgrade"
	needs_rehearsal(rc)
	not rehearsed(rc)
	msg := sprintf("%s: moving user %s from %s to %s is a %s upgrade (destructive: %v) that no passed rehearsal vouches for. Rehearse it on a copy of the brain (resource engine_rehearsal) and set rehearsal_id to it.", [
		rc.address, rc.change.after.user_id, rc.change.after.planned_upgrade.from, rc.change.after.planned_upgrade.to,
		rc.change.after.planned_upgrade.kind, rc.change.after.planned_upgrade.destructive,
	])
}

# --- A destroy that loses brain writes needs an explicit approval. ----------------------------
# Destroying (or replacing) an engine_release rolls its engine back; where the brain schema moved,
# that restores the pre-upgrade snapshot and loses every brain write made since. The plan's
# refresh keeps the count in rollback_writes_lost, which a destroy plan shows as change.before.
# The approval is the root variable approved_data_loss: the user ids whose loss a reviewer
# accepted.

deleting(type) := {rc |
	some rc in input.resource_changes
	rc.type == type
	"delete" in rc.change.actions
}

loss_accepted(user_id) if user_id in input.variables.approved_data_loss.value

deny contains msg if {
	some rc in deleting("engine_release")
	rc.change.before.rollback_writes_lost > 0
	not loss_accepted(rc.change.before.user_id)
	msg := sprintf("%s: destroying it rolls user %s back to %s by restoring a snapshot, which loses %v brain writes made since. Add %q to the variable approved_data_loss once a reviewer has accepted the loss.", [
		rc.address, rc.change.before.user_id, rc.change.before.previous_version,
		rc.change.before.rollback_writes_lost, rc.change.before.user_id,
	])
}

# --- A canary's first step moves at most 5% of the fleet. ------------------------------------
# Head-counts, not percentages: a step covers ceil(step% x users) engines, at least one, so
# steps = [5, ...] over 3 users moves 1 of them (33%). With user_ids unknown at plan, or a
# selector scope (user_ids null: the control plane evaluates it), the step's percentage is all
# there is to check.

max_first_step := 5

percent_only(rc) if rc.change.after_unknown.user_ids == true

percent_only(rc) if {
	rc.change.after.user_ids == null
	rc.change.after.selector != null
}

deny contains msg if {
	some rc in changing("engine_canary")
	first := rc.change.after.steps[0]
	n := count(rc.change.after.user_ids)
	n > 0
	moves := ceil((first * n) / 100)
	(moves * 100) > (max_first_step * n)
	msg := sprintf("%s: the first canary step moves %v of %v users (%v%%); at most %v%% of the fleet may move before the first analysis. Start steps lower, or canary over more users.", [rc.address, moves, n, round((moves * 100) / n), max_first_step])
}

deny contains msg if {
	some rc in changing("engine_canary")
	percent_only(rc)
	first := rc.change.after.steps[0]
	first > max_first_step
	msg := sprintf("%s: the first canary step moves %v%% of the fleet; at most %v%% may move before the first analysis. Start steps with %v or less.", [rc.address, first, max_first_step, max_first_step])
}

deny contains msg if {
	some rc in changing("engine_canary")
	rc.change.after_unknown.steps == true
	msg := sprintf("%s: the canary steps are unknown at plan, so the first step size cannot be checked. Use literal steps.", [rc.address])
}
