# The quick start: upgrade one Engine from 2.3.1 to 2.4.0 the reviewed way, then roll it back.
#
#   make demo
#
# runs it against the local control plane (the provider reads ENGINE_ENDPOINT and ENGINE_API_KEY
# from the environment). The plan shows what the upgrade implies before anything runs
# (planned_upgrade: the brain migration, forward-only, requires_snapshot); the apply snapshots the
# brain, drains the engine, migrates, health-checks and eval-gates it; destroy returns the engine
# to 2.3.1 by restoring the pre-upgrade snapshot, and its plan says how many brain writes that
# loses.

terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "user_id" {
  description = "The user whose engine the quick start upgrades."
  type        = string
  default     = "user-0001"
}

variable "target_version" {
  description = "The version to move that engine to."
  type        = string
  default     = "2.4.0"
}

# Every engine of the fleet, read after the release is applied (so the output shows the upgraded
# engine, and a second plan is empty).
data "engine_instances" "fleet" {
  depends_on = [engine_release.quickstart]
}

# What the move implies, readable in the plan before any engine is touched.
data "engine_upgrade_path" "next" {
  from = "2.3.1"
  to   = var.target_version
}

resource "engine_release" "quickstart" {
  user_id = var.user_id
  version = var.target_version

  # The path migrates the brain forward-only: the provider takes and verifies a snapshot first,
  # and destroy restores it.
  auto_snapshot = true

  # A regression of more than 5% on the golden suite rolls the upgrade back automatically.
  eval_gate = {
    suite          = "golden"
    max_regression = 0.05
  }

  # The post-upgrade checklist: after a bake, error rate, P99 latency, cache-hit ratio and
  # warning kinds against thresholds and against this engine's own figures before the upgrade;
  # a failing analysis rolls the engine back. Against a real Engine, watch the first hour:
  # bake_time = window = "1h", with timeouts { create = "90m" } (the bake must fit in the apply's
  # timeout, 30m by default).
  analysis = {
    max_error_rate     = 0.05
    max_p99_latency_ms = 1500
    bake_time          = "5s"
    window             = "5s"
  }
}

output "fleet" {
  description = "Each user's engine after the apply: version, brain schema, status and brain writes."
  value = {
    for e in data.engine_instances.fleet.instances :
    e.user_id => "${e.version} (schema ${e.schema_version}, ${e.status}, ${e.brain_writes} brain writes)"
  }
}

output "upgrade_path" {
  description = "What the upgrade implies: a snapshot is required because the brain migrates forward-only."
  value = {
    kind              = data.engine_upgrade_path.next.kind
    requires_snapshot = data.engine_upgrade_path.next.requires_snapshot
    forward_only      = data.engine_upgrade_path.next.forward_only
    migrations        = [for m in data.engine_upgrade_path.next.migrations : "${m.id}: ${m.description}"]
  }
}

output "release" {
  description = "The upgraded engine, the snapshot protecting it and how the gates went."
  value = {
    version                 = engine_release.quickstart.version
    previous_version        = engine_release.quickstart.previous_version
    schema_version          = engine_release.quickstart.schema_version
    pre_upgrade_snapshot_id = engine_release.quickstart.pre_upgrade_snapshot_id
    last_attempt            = engine_release.quickstart.last_attempt
  }
}

output "major_needs_intent" {
  description = "Functions work offline: a 3.0.0 move is a major upgrade and needs allow_major_upgrade."
  value       = provider::engine::upgrade_kind("2.3.1", "3.0.0")
}
