# A canary whose first step moves 10% of the fleet before any analysis.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

data "engine_instances" "fleet" {}

resource "engine_canary" "fleet" {
  version   = "2.4.0"
  user_ids  = data.engine_instances.fleet.user_ids
  steps     = [10, 50, 100]
  bake_time = "1s"
}
