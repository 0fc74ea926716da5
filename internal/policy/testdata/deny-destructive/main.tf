# A move to 3.0.0 (destructive migration 0006_knowledge_json) with every provider-side intent
# given, but no reviewer's approval in approved_destructive_migrations.
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
  default = ["user-0002"]
}

resource "engine_rehearsal" "user_0001" {
  user_id = "user-0001"
  version = "3.0.0"
}

resource "engine_release" "user_0001" {
  user_id             = "user-0001"
  version             = "3.0.0"
  allow_major_upgrade = true
  auto_snapshot       = true
  rehearsal_id        = engine_rehearsal.user_0001.id

  analysis = {}
}
