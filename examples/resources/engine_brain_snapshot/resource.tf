# A verified snapshot of user-0042's brain, kept for two weeks: the rollback insurance
# for the upgrade below.
resource "engine_brain_snapshot" "pre_240" {
  user_id        = "user-0042"
  description    = "before 2.4.0"
  retention_days = 14
}

resource "engine_release" "user_0042" {
  user_id     = "user-0042"
  version     = "2.4.0"
  snapshot_id = engine_brain_snapshot.pre_240.id
}
