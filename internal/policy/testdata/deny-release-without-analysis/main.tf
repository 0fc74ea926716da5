# A migrating upgrade behind a snapshot, with no analysis: nothing watches the engine after the
# upgrade, so the policy denies it. Adopting an engine at the version it runs moves nothing and
# needs none.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

resource "engine_release" "user_0001" {
  user_id       = "user-0001"
  version       = "2.4.0"
  auto_snapshot = true
}

resource "engine_release" "user_0002" {
  user_id = "user-0002"
  version = "2.3.1"
}
