# The first canary of the guide "Canary rollouts across a per-user fleet": roll 2.4.0 out across
# every engine still on 2.3.1, one step per apply, and hold at half the fleet.
#
# The data source lists only the engines still on 2.3.1, so an engine the canary moves leaves
# user_ids at the next plan. It stays in the canary's scope all the same (the scope is user_ids
# plus every engine this canary moved that still runs 2.4.0), so each step's percentage is of the
# whole fleet and each apply moves one step's share of it.

terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

data "engine_instances" "on_231" {
  version = "2.3.1"
}

resource "engine_canary" "v240" {
  version   = "2.4.0"
  user_ids  = data.engine_instances.on_231.user_ids
  steps     = [10, 25, 50, 100]
  hold_at   = 50
  mode      = "stepwise"
  bake_time = "15m"

  analysis = {
    max_error_rate     = 0.02
    max_p99_latency_ms = 1200
  }
}

output "rollout" {
  description = "Where the rollout stands and what the next apply does."
  value = {
    phase           = engine_canary.v240.phase
    current_percent = engine_canary.v240.current_percent
    next_step       = engine_canary.v240.next_step
  }
}
