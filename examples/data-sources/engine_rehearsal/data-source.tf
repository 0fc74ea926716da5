# A rehearsal made in another workspace (for example the staging team's), read by its id: its
# verdict, path, measured migration time and failed checks. To gate this workspace's upgrade on
# it, name the same id in engine_release.rehearsal_id.
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
