# A canary across a 20-engine fleet that catches a bad release.
#
#   go run ./internal/cmd/engine-demo -example examples/fleet-canary -engines 20
#
# 2.4.1 is a known-bad patch: elevated error rate and P99 latency, a new warning kind. The first
# step moves 5% of the fleet (one engine, snapshotted first because the path migrates the brain),
# the analysis compares it with the 19 engines not moved, and the apply fails with "Canary
# Aborted" naming error_rate, p99_latency_ms and the new warning kind. By then that engine is back
# on 2.3.1, its snapshot restored. Run it again with TF_VAR_canary_version=2.4.0 to watch a good
# release walk every step to "promoted".

terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "canary_version" {
  description = "The version to roll out."
  type        = string
  default     = "2.4.1"
}

variable "bake_time" {
  description = "How long each step bakes before its analysis."
  type        = string
  default     = "2s"
}

data "engine_instances" "fleet" {}

resource "engine_canary" "fleet" {
  version      = var.canary_version
  user_ids     = data.engine_instances.fleet.user_ids
  steps        = [5, 25, 50, 100]
  mode         = "auto"
  bake_time    = var.bake_time
  max_parallel = 5

  analysis = {
    max_error_rate     = 0.05
    max_p99_latency_ms = 1500
  }
}

output "phase" {
  description = "progressing, holding, promoted or aborted."
  value       = engine_canary.fleet.phase
}

output "current_percent" {
  value = engine_canary.fleet.current_percent
}

output "moved" {
  description = "Who runs the new version, and what they ran before."
  value       = { for u in engine_canary.fleet.moved_user_ids : u => engine_canary.fleet.stable_versions[u] }
}

output "last_analysis" {
  value = engine_canary.fleet.last_analysis
}
