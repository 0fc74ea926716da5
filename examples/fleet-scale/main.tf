# The large-fleet canary pattern: thousands of per-user engines, one canary.
#
#   ENGINE_ENDPOINT=... ENGINE_API_KEY=... terraform apply
#
# The provider takes its configuration from the environment. engine_instances reads only the
# user ids of the fleet (include_instances = false): one request per 10,000 engines and about
# 12 bytes of state per engine, instead of every engine's details. The canary moves the fleet
# step by step in cohorts ranked by its seed; each `terraform apply` takes one step (stepwise).
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
  default     = "2.3.1"
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

data "engine_instances" "fleet" {
  user_id_prefix    = var.user_id_prefix
  include_instances = false
}

resource "engine_canary" "fleet" {
  version      = var.canary_version
  user_ids     = data.engine_instances.fleet.user_ids
  steps        = var.steps
  mode         = "stepwise"
  bake_time    = var.bake_time
  max_parallel = var.max_parallel
}

output "fleet_size" {
  value = data.engine_instances.fleet.engine_count
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
