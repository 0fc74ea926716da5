# The release catalog, and where an engine on 2.3.1 can go.
data "engine_versions" "catalog" {
  from = "2.3.1"
}

output "latest" {
  value = data.engine_versions.catalog.latest
}

# For example { "2.4.0" = "minor", "2.4.1" = "minor", "3.0.0" = "major" }.
output "targets" {
  value = { for t in data.engine_versions.catalog.targets : t.version => t.kind }
}

# Versions whose upgrade migrates the brain (and so needs a snapshot first).
output "migrating_versions" {
  value = [for v in data.engine_versions.catalog.versions : v.version if v.has_migrations]
}
