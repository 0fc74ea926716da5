# Everything the move from 2.3.1 to 3.0.0 implies, for review before anything runs.
data "engine_upgrade_path" "to_v3" {
  from = "2.3.1"
  to   = "3.0.0"
}

output "to_v3" {
  value = {
    kind              = data.engine_upgrade_path.to_v3.kind # "major"
    hops              = [for h in data.engine_upgrade_path.to_v3.hops : "${h.from} -> ${h.to} (${h.kind})"]
    requires_snapshot = data.engine_upgrade_path.to_v3.requires_snapshot
    forward_only      = data.engine_upgrade_path.to_v3.forward_only
    destructive       = data.engine_upgrade_path.to_v3.destructive
    breaking_changes  = data.engine_upgrade_path.to_v3.breaking_changes
    guides            = data.engine_upgrade_path.to_v3.migration_guide_urls
  }
}

# Stop a plan that would run a destructive migration without review.
check "no_destructive_migrations" {
  assert {
    condition     = !data.engine_upgrade_path.to_v3.destructive
    error_message = "The path to 3.0.0 runs a destructive migration: read the migration guide first."
  }
}
