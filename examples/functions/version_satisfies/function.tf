# Terraform's version constraint syntax.
output "on_2_4_line" {
  value = provider::engine::version_satisfies("2.4.1", "~> 2.4.0") # true
}

# Keep only the fleet's engines that are still below 2.4.
data "engine_instances" "fleet" {}

output "still_on_2_3" {
  value = [
    for e in data.engine_instances.fleet.instances : e.user_id
    if provider::engine::version_satisfies(e.version, "< 2.4.0")
  ]
}
