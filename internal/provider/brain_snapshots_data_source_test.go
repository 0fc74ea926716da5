package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccBrainSnapshotsDataSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.ProviderBlock() + `
resource "engine_brain_snapshot" "a" {
  user_id       = "user-0001"
  description   = "first"
  force_destroy = true
}
resource "engine_brain_snapshot" "b" {
  user_id       = "user-0001"
  description   = "second"
  force_destroy = true
  depends_on    = [engine_brain_snapshot.a]
}
`,
		}, {
			Config: h.ProviderBlock() + `
resource "engine_brain_snapshot" "a" {
  user_id       = "user-0001"
  description   = "first"
  force_destroy = true
}
resource "engine_brain_snapshot" "b" {
  user_id       = "user-0001"
  description   = "second"
  force_destroy = true
  depends_on    = [engine_brain_snapshot.a]
}
data "engine_brain_snapshots" "all" {
  user_id    = "user-0001"
  depends_on = [engine_brain_snapshot.b]
}
data "engine_brain_snapshots" "corrupt" {
  user_id    = "user-0001"
  status     = "corrupt"
  depends_on = [engine_brain_snapshot.b]
}
data "engine_brain_snapshots" "old_version" {
  user_id        = "user-0001"
  engine_version = "2.2.0"
  depends_on     = [engine_brain_snapshot.b]
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.engine_brain_snapshots.all", tfjsonpath.New("snapshots"), knownvalue.ListSizeExact(2)),
				statecheck.ExpectKnownValue("data.engine_brain_snapshots.all", tfjsonpath.New("snapshots").AtSliceIndex(0).AtMapKey("description"), knownvalue.StringExact("second")),
				statecheck.ExpectKnownValue("data.engine_brain_snapshots.all", tfjsonpath.New("snapshots").AtSliceIndex(1).AtMapKey("status"), knownvalue.StringExact("verified")),
				statecheck.ExpectKnownValue("data.engine_brain_snapshots.corrupt", tfjsonpath.New("snapshots"), knownvalue.ListSizeExact(0)),
				statecheck.ExpectKnownValue("data.engine_brain_snapshots.old_version", tfjsonpath.New("snapshots"), knownvalue.ListSizeExact(0)),
			},
		}, {
			Config: h.ProviderBlock() + `
data "engine_brain_snapshots" "x" {
  user_id = "nobody"
}
`,
			ExpectError: errorLike(`no engine for user "nobody"`),
		}},
	})
}
