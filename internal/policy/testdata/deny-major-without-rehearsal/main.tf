# A move to 3.0.0 with every intent and approval given, but no rehearsal on a copy of the brain.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "approved_destructive_migrations" {
  type    = list(string)
  default = ["user-0004"]
}

resource "engine_release" "user_0004" {
  user_id             = "user-0004"
  version             = "3.0.0"
  allow_major_upgrade = true
  auto_snapshot       = true

  analysis = {}
}
