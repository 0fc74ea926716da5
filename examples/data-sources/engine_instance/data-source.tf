# One user's engine: what an upgrade would start from.
data "engine_instance" "alice" {
  user_id = "user-0001"
}

output "alice_engine" {
  value = {
    version        = data.engine_instance.alice.version
    schema_version = data.engine_instance.alice.schema_version
    status         = data.engine_instance.alice.status
    healthy        = data.engine_instance.alice.health_status == "ok"
    brain_writes   = data.engine_instance.alice.brain_writes
  }
}
