# The newest verified snapshot of user-0042's brain taken on 2.3.1.
data "engine_brain_snapshots" "on_231" {
  user_id        = "user-0042"
  engine_version = "2.3.1"
  status         = "verified"
}

output "latest_snapshot" {
  value = try(data.engine_brain_snapshots.on_231.snapshots[0].id, null)
}
