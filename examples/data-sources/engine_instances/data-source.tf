# Every engine of the fleet that still runs 2.3.1 and is up.
data "engine_instances" "on_2_3_1" {
  version = "2.3.1"
  status  = "running"
}

# A team's engines, by user id prefix.
data "engine_instances" "team_a" {
  user_id_prefix = "team-a-"
}

output "to_upgrade" {
  value = data.engine_instances.on_2_3_1.user_ids
}

output "team_a_versions" {
  value = { for e in data.engine_instances.team_a.instances : e.user_id => e.version }
}

# Only ids and a count, for a large fleet: about 12 bytes of state per engine and one request per
# 10,000 engines, instead of every engine's details.
data "engine_instances" "fleet_ids" {
  include_instances = false
}

output "fleet_size" {
  value = data.engine_instances.fleet_ids.engine_count
}
