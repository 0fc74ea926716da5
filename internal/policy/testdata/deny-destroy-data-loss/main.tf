# A migrating upgrade that the test applies, writes to, then plans to destroy: the rollback
# restores the pre-upgrade snapshot and loses those writes, which nobody approved in
# approved_data_loss.
terraform {
  required_providers {
    engine = {
      source = "septemberai/engine"
    }
  }
}

provider "engine" {}

variable "approved_data_loss" {
  type    = list(string)
  default = ["user-0002"]
}

resource "engine_release" "user_0001" {
  user_id       = "user-0001"
  version       = "2.4.0"
  auto_snapshot = true
}
