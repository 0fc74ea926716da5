# A move to 3.0.0 naming a rehearsal that already passed: the plan shows it in
# planned_upgrade.rehearsal, which the policy reads.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "rehearsal_id" {
  type = string
}

variable "approved_destructive_migrations" {
  type    = list(string)
  default = ["user-0005"]
}

resource "engine_release" "user_0005" {
  user_id             = "user-0005"
  version             = "3.0.0"
  allow_major_upgrade = true
  auto_snapshot       = true
  rehearsal_id        = var.rehearsal_id

  analysis = {}
}
