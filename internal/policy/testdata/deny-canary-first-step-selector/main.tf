# A canary scoped by a selector whose first step is 10%: the plan cannot count the users the
# control plane will select, so the policy checks the percentage.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

resource "engine_canary" "fleet" {
  version = "2.4.0"
  selector = {
    version = "2.3.1"
  }
  steps     = [10, 50, 100]
  bake_time = "1s"
}
