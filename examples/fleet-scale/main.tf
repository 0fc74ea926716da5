# The large-fleet canary pattern: thousands of per-user engines, one canary.
#
#   ENGINE_ENDPOINT=... ENGINE_API_KEY=... terraform apply
#
# The provider takes its configuration from the environment. The canary's scope is a selector the
# control plane evaluates at every plan (one request per 10,000 engines), and each moved engine's
# stable version and snapshot are kept on the control plane in the canary's record, so the state
# does not grow with the fleet. The canary moves the fleet step by step in cohorts ranked by its
# seed; each `terraform apply` takes one step (stepwise), and the plan names who moves next.
# `make bench` measures this configuration at 1,000 and 10,000 engines (the benchmarks guide).

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
  default     = "2.4.0"
}

variable "user_id_prefix" {
  description = "Which engines the canary covers, by user id prefix."
  type        = string
  default     = "user-"
}

variable "steps" {
  description = "The cumulative percentages of the fleet each step reaches."
  type        = list(number)
  default     = [10, 50, 100]
}

variable "bake_time" {
  description = "How long each step bakes before its analysis."
  type        = string
  default     = "5m"
}

variable "max_parallel" {
  description = "How many engines move at once."
  type        = number
  default     = 50
}

resource "engine_canary" "fleet" {
  version = var.canary_version
  selector = {
    user_id_prefix = var.user_id_prefix
  }
  steps        = var.steps
  mode         = "stepwise"
  bake_time    = var.bake_time
  max_parallel = var.max_parallel
}

output "moved" {
  description = "How many engines run the new version."
  value       = engine_canary.fleet.moved_count
}

output "phase" {
  description = "progressing, holding, promoted or aborted."
  value       = engine_canary.fleet.phase
}

output "current_percent" {
  value = engine_canary.fleet.current_percent
}

output "next_step" {
  description = "What the next apply does: the step, how many engines move and the first of them."
  value       = engine_canary.fleet.next_step
}
