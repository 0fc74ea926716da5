# A migrating upgrade whose snapshot_id comes from something unknown at plan (a ticket system's
# output here): the provider accepts it, but the plan cannot show what protects the brain.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

resource "terraform_data" "ticket" {
  input = "CHG-1234"
}

resource "engine_release" "user_0001" {
  user_id     = "user-0001"
  version     = "2.4.0"
  snapshot_id = terraform_data.ticket.output

  analysis = {}
}
