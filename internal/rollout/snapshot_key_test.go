package rollout

import (
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// The key must replay across a killed apply (same engine, no write: same key) and must not
// replay a snapshot that would miss data or belong to another upgrade.
func TestPreUpgradeSnapshotKey(t *testing.T) {
	e := api.Engine{UserID: "user-0001", EngineID: "eng-1", EngineVersion: "2.3.1", SchemaVersion: 4, BrainWrites: 7, Generation: 3}
	k := PreUpgradeSnapshotKey("engine_release", e, "2.4.0")
	same := e
	same.Generation = 9 // a finished snapshot or eval moves the generation, not the data
	if PreUpgradeSnapshotKey("engine_release", same, "2.4.0") != k {
		t.Fatal("the key changed with the generation: a re-run after a kill would take a second snapshot")
	}
	for name, other := range map[string]string{
		"a brain write":   PreUpgradeSnapshotKey("engine_release", func() api.Engine { x := e; x.BrainWrites++; return x }(), "2.4.0"),
		"another version": PreUpgradeSnapshotKey("engine_release", func() api.Engine { x := e; x.EngineVersion = "2.3.0"; return x }(), "2.4.0"),
		"another engine":  PreUpgradeSnapshotKey("engine_release", func() api.Engine { x := e; x.EngineID = "eng-2"; return x }(), "2.4.0"),
		"another target":  PreUpgradeSnapshotKey("engine_release", e, "3.0.0"),
		"another purpose": PreUpgradeSnapshotKey("engine_canary", e, "2.4.0"),
		// A restore brings the old write counter back; the migration time moved.
		"a restore since": PreUpgradeSnapshotKey("engine_release", func() api.Engine { x := e; at := time.Unix(1700000000, 0); x.LastMigrationAt = &at; return x }(), "2.4.0"),
	} {
		if other == k {
			t.Errorf("%s gives the same key: a stale snapshot would be replayed", name)
		}
	}
	if len(k) > 255 {
		t.Fatalf("key %q is longer than the control plane accepts", k)
	}
}
