# "none", "patch", "minor", "major" or "downgrade".
output "kind" {
  value = provider::engine::upgrade_kind("2.3.1", "2.4.0") # "minor"
}

variable "target_version" {
  type = string

  validation {
    condition     = provider::engine::upgrade_kind("2.3.1", var.target_version) != "major"
    error_message = "Majors need a reviewed change with allow_major_upgrade; pick a 2.x version here."
  }
}
