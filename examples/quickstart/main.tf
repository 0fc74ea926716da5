# The quick start: read a fleet of Engines and what upgrading it would take.
# `make demo` runs it against the local control plane; the provider reads ENGINE_ENDPOINT and
# ENGINE_API_KEY from the environment.

terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

# Every engine of the fleet.
data "engine_instances" "fleet" {}

# The release catalog, with the upgrade targets of the version the fleet runs.
data "engine_versions" "catalog" {
  from = "2.3.1"
}

# What moving the fleet to 2.4.0 implies.
data "engine_upgrade_path" "next" {
  from = "2.3.1"
  to   = "2.4.0"
}

output "fleet" {
  description = "Each user's engine: version, brain schema, status and brain writes."
  value = {
    for e in data.engine_instances.fleet.instances :
    e.user_id => "${e.version} (schema ${e.schema_version}, ${e.status}, ${e.brain_writes} brain writes)"
  }
}

output "upgrade_targets" {
  description = "The versions 2.3.1 can move to, and the kind of each move."
  value       = { for t in data.engine_versions.catalog.targets : t.version => t.kind }
}

output "upgrade_to_2_4_0" {
  description = "What the upgrade to 2.4.0 implies: a snapshot is required because the brain migrates forward-only."
  value = {
    kind              = data.engine_upgrade_path.next.kind
    requires_snapshot = data.engine_upgrade_path.next.requires_snapshot
    forward_only      = data.engine_upgrade_path.next.forward_only
    migrations        = [for m in data.engine_upgrade_path.next.migrations : "${m.id}: ${m.description}"]
  }
}

output "major_needs_intent" {
  description = "Functions work offline: a 3.0.0 move is a major upgrade and needs allow_major_upgrade."
  value       = provider::engine::upgrade_kind("2.3.1", "3.0.0")
}
