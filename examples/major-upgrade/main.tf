# A major upgrade: one engine from 2.3.1 to 3.0.0, following "Major upgrades, step by step"
# (docs/guides/major-upgrades.md).
#
#   go run ./internal/cmd/engine-demo -example examples/major-upgrade
#
# 3.0.0 is a major release with breaking changes and a destructive, forward-only brain migration
# (0006_knowledge_json). The provider refuses it unless allow_major_upgrade is set; this
# configuration also refuses to plan until whoever runs it names the migration guide they read
# (var.acknowledged_migration_guide must equal the guide the release catalog points to), and it
# lists the engine in var.approved_destructive_migrations — the approval the example policy in
# examples/policy looks for in `terraform show -json`. The upgrade is rehearsed first on a copy
# of the engine's brain (engine_rehearsal); the release names the rehearsal, and its plan fails
# unless the rehearsal passed for this engine, this path and today's brain. The path crosses
# 2.4.0 (two hops, two migrations); one snapshot taken before the first protects both, and
# destroy restores it.

terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "user_id" {
  description = "The engine to move to 3.0.0."
  type        = string
  default     = "user-0001"
}

variable "acknowledged_migration_guide" {
  description = "The URL of the migration guide you read. Must match the one the 3.0.0 release points to."
  type        = string
  default     = ""
}

variable "approved_destructive_migrations" {
  description = "User ids whose destructive brain migration a reviewer approved (read by examples/policy)."
  type        = list(string)
  default     = []
}

variable "keep_staging_engine" {
  description = "Leave the rehearsal's staging engine running at staging_url for spot-checks by hand (step 3)."
  type        = bool
  default     = false
}

# Step 1: the path, its breaking changes and its migration guide, in the plan.
data "engine_upgrade_path" "to_v3" {
  from = "2.3.1"
  to   = "3.0.0"
}

# Step 2: rehearse on a copy of the brain. The migrations run on the copy only (timed), the
# brain's last user turns are replayed to a staging engine at 3.0.0, and its figures and evals
# are compared with the engine's own. A failing verdict fails the apply before the release runs.
resource "engine_rehearsal" "major" {
  user_id      = var.user_id
  version      = "3.0.0"
  replay_turns = 20
  eval_suite   = "golden"
  keep_engine  = var.keep_staging_engine # step 3: spot-check staging_url by hand

  analysis = {
    max_error_rate      = 0.05
    max_p99_latency_ms  = 1500
    min_cache_hit_ratio = 0.6
    window              = "5s"
  }

  lifecycle {
    precondition {
      condition     = contains(data.engine_upgrade_path.to_v3.migration_guide_urls, var.acknowledged_migration_guide)
      error_message = "3.0.0 rewrites the knowledge store and drops debug events. Read the migration guide (${join(", ", data.engine_upgrade_path.to_v3.migration_guide_urls)}) and set acknowledged_migration_guide to its URL."
    }
  }
}

# Steps 5 to 7: the upgrade, gated on the rehearsal, watched after, rolled back by destroy.
resource "engine_release" "major" {
  user_id             = var.user_id
  version             = "3.0.0"
  allow_major_upgrade = true # the intent a major move needs, in the reviewed diff
  auto_snapshot       = true # kept 7 days (step 6); destroy restores it (step 7)
  rehearsal_id        = engine_rehearsal.major.id
  require_rehearsal   = true

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

  lifecycle {
    precondition {
      condition     = contains(data.engine_upgrade_path.to_v3.migration_guide_urls, var.acknowledged_migration_guide)
      error_message = "3.0.0 rewrites the knowledge store and drops debug events. Read the migration guide (${join(", ", data.engine_upgrade_path.to_v3.migration_guide_urls)}) and set acknowledged_migration_guide to its URL."
    }
    precondition {
      condition     = !data.engine_upgrade_path.to_v3.destructive || contains(var.approved_destructive_migrations, var.user_id)
      error_message = "The path to 3.0.0 runs a destructive migration on ${var.user_id}'s brain: add ${var.user_id} to approved_destructive_migrations once a reviewer has approved it."
    }
  }
}

output "path" {
  description = "What the move implies."
  value = {
    kind             = data.engine_upgrade_path.to_v3.kind
    hops             = [for h in data.engine_upgrade_path.to_v3.hops : "${h.from} -> ${h.to} (${h.kind})"]
    destructive      = data.engine_upgrade_path.to_v3.destructive
    breaking_changes = data.engine_upgrade_path.to_v3.breaking_changes
  }
}

output "rehearsal" {
  description = "The rehearsal: its verdict, each migration's measured duration on the copy, and the staging engine while kept."
  value = {
    verdict     = engine_rehearsal.major.verdict
    migrations  = { for m in engine_rehearsal.major.migrations : m.id => m.duration_ms }
    staging_url = engine_rehearsal.major.staging_url
  }
}

output "release" {
  description = "The engine after the upgrade."
  value = {
    version                 = engine_release.major.version
    schema_version          = engine_release.major.schema_version
    pre_upgrade_snapshot_id = engine_release.major.pre_upgrade_snapshot_id
    status                  = engine_release.major.last_attempt.status
  }
}
