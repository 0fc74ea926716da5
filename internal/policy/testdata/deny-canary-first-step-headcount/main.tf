# A canary whose first step is 5%, over 3 users: it moves 1 of them, a third of its fleet, before
# any analysis.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

resource "engine_canary" "three" {
  version   = "2.4.0"
  user_ids  = ["user-0001", "user-0002", "user-0003"]
  steps     = [5, 50, 100]
  bake_time = "1s"
}
