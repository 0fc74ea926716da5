# Rehearse user-0001's major upgrade to 3.0.0 on a copy of its brain before anything touches it.
# A hidden staging engine boots 3.0.0 on a copy of a verified snapshot (the destructive
# migration runs on the copy, timed), the brain's last 20 user turns are replayed to it, and its
# figures and evals are compared with the engine's own. A failing verdict fails this apply.
resource "engine_rehearsal" "v3" {
  user_id      = "user-0001"
  version      = "3.0.0"
  replay_turns = 20
  eval_suite   = "golden"
  keep_engine  = true # leave the staging engine up for spot-checks until destroy

  analysis = {
    max_error_rate      = 0.02
    max_p99_latency_ms  = 1500
    min_cache_hit_ratio = 0.6
    window              = "5m"
  }
}

# The upgrade itself names the rehearsal: its plan fails unless the rehearsal passed for this
# engine, this path and today's brain, within the last 7 days.
resource "engine_release" "v3" {
  user_id             = "user-0001"
  version             = "3.0.0"
  allow_major_upgrade = true
  auto_snapshot       = true
  rehearsal_id        = engine_rehearsal.v3.id
  require_rehearsal   = true
}

output "rehearsal" {
  value = {
    verdict     = engine_rehearsal.v3.verdict
    staging_url = engine_rehearsal.v3.staging_url
    migrations  = { for m in engine_rehearsal.v3.migrations : m.id => "${m.duration_ms} ms" }
  }
}
