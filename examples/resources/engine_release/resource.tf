# Upgrade one engine from 2.3.1 to 2.4.0. The path migrates the brain (forward-only), so the
# provider takes and verifies a snapshot first; evals gate the upgrade and a regression rolls
# it back automatically. Destroying this resource returns the engine to the version it ran
# when the resource was created, restoring that snapshot.
resource "engine_release" "user_0042" {
  user_id       = "user-0042"
  version       = "2.4.0"
  auto_snapshot = true

  eval_gate = {
    suite          = "golden"
    max_regression = 0.05
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
