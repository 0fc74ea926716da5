# A rehearsal made in another workspace (for example the staging team's), read by its id: gate
# this workspace's upgrade on its verdict and show the measured migration time.
variable "rehearsal_id" {
  type = string
}

data "engine_rehearsal" "v3" {
  id = var.rehearsal_id
}

output "rehearsal" {
  value = {
    verdict = data.engine_rehearsal.v3.verdict
    path    = join(" -> ", data.engine_rehearsal.v3.upgrade_path)
    # A string: a sum of fractional numbers kept as a number can differ in its last bits from the
    # value Terraform stored, and every plan would then show an output change.
    migration_time = format("%.3f ms", sum(concat([0], [for m in data.engine_rehearsal.v3.migrations : m.duration_ms])))
    failed         = [for c in data.engine_rehearsal.v3.failed_checks : c.detail]
  }
}
