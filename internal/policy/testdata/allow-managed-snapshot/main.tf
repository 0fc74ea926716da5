# A migrating upgrade protected by a snapshot resource created in the same plan: its id is
# unknown until apply, but the plan shows the snapshot it comes from.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

resource "engine_brain_snapshot" "pre_240" {
  user_id     = "user-0001"
  description = "before 2.4.0"
}

resource "engine_release" "user_0001" {
  user_id     = "user-0001"
  version     = "2.4.0"
  snapshot_id = engine_brain_snapshot.pre_240.id

  analysis = {}
}
