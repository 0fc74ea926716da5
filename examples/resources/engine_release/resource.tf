# Upgrade one engine from 2.3.1 to 2.4.0. The path migrates the brain (forward-only), so the
# provider takes and verifies a snapshot first; evals gate the upgrade and a regression rolls
# it back automatically, and so does the post-upgrade analysis: after a 10-minute bake, the
# engine's error rate, P99 latency, cache-hit ratio and warning kinds are compared with the
# thresholds and with its own figures before the upgrade. Destroying this resource returns the
# engine to the version it ran when the resource was created, restoring that snapshot.
resource "engine_release" "user_0042" {
  user_id       = "user-0042"
  version       = "2.4.0"
  auto_snapshot = true

  eval_gate = {
    suite          = "golden"
    max_regression = 0.05
  }

  analysis = {
    max_error_rate        = 0.05
    max_p99_latency_ms    = 1500
    min_cache_hit_ratio   = 0.5
    max_new_warning_kinds = 0
    baseline_tolerance    = 0.5 # at most 1.5x its own error rate and P99 before the upgrade
    bake_time             = "10m"
    window                = "5m"
  }

  health_timeout = "2m"
  drain_timeout  = "30s"

  # Upgrades may only start on weekday nights (UTC).
  rollout_window = {
    days  = ["mon", "tue", "wed", "thu"]
    start = "22:00"
    end   = "04:00"
  }
}

# A fleet: one release per engine, from the engine_instances data source.
data "engine_instances" "on_231" {
  version = "2.3.1"
}

resource "engine_release" "fleet" {
  for_each      = toset(data.engine_instances.on_231.user_ids)
  user_id       = each.value
  version       = "2.3.1" # adopt first; raise in a reviewed change
  auto_snapshot = true
}
