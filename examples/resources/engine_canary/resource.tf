# Roll 2.4.0 out across every engine on 2.3.1, one step per apply: 10% of users, then 25%, 50%,
# then hold there until someone removes hold_at. Each step snapshots every engine whose path
# migrates the brain, upgrades at most 20 engines at once, bakes 15 minutes, then compares the
# moved cohort with the engines not moved. A failing analysis rolls every moved engine back
# (restoring its snapshot) and fails the apply. Moved engines leave the data source's list but not
# the canary's scope: each step is a share of the whole fleet.
data "engine_instances" "on_231" {
  version = "2.3.1"
}

resource "engine_canary" "v240" {
  version      = "2.4.0"
  user_ids     = data.engine_instances.on_231.user_ids
  steps        = [10, 25, 50, 100]
  hold_at      = 50
  mode         = "stepwise" # each apply advances one step; the plan says which users move next
  bake_time    = "15m"
  max_parallel = 20

  analysis = {
    max_error_rate        = 0.02
    max_p99_latency_ms    = 1200
    min_cache_hit_ratio   = 0.5
    max_new_warning_kinds = 0
    baseline_tolerance    = 0.5 # at most 1.5x the baseline's error rate and P99
    eval_suite            = "golden"
    max_eval_regression   = 0.05
    window                = "10m"
  }

  # Steps only start on weekday nights (UTC).
  rollout_window = {
    days  = ["mon", "tue", "wed", "thu"]
    start = "22:00"
    end   = "04:00"
  }

  # Destroying the canary returns every moved engine to its stable version.
  on_destroy = "rollback"

  timeouts {
    update = "45m"
  }
}

# Stop at half the fleet until someone removes hold_at in a reviewed change.
resource "engine_canary" "v240_half" {
  version   = "2.4.0"
  user_ids  = ["user-0001", "user-0002", "user-0003", "user-0004"]
  steps     = [25, 50, 100]
  hold_at   = 50
  mode      = "auto"
  bake_time = "5m"
}
