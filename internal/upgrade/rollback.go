package upgrade

import (
	"fmt"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// RollbackPlan is how an engine returns to a version.
type RollbackPlan struct {
	To         string
	SnapshotID string
	// Restore is true when the brain must be restored from SnapshotID (the schema moved, or the
	// engine failed); false for a plain redeploy of the older version on the same brain.
	Restore bool
}

// PlanRollback decides how an engine returns to version to. Where the brain moved to another
// schema, or the engine failed (a half-applied migration leaves its brain dirty), only a restore
// of snapshotID is safe; otherwise the older version is redeployed on the same brain, which
// loses nothing. A failed engine with no snapshot gets a redeploy attempt when the schema allows.
func PlanRollback(cat *Catalog, e api.Engine, to, snapshotID string) (RollbackPlan, error) {
	v, ok := cat.Get(to)
	if !ok {
		return RollbackPlan{}, &UnknownVersionError{Version: to, Known: cat.Names()}
	}
	p := RollbackPlan{To: to, SnapshotID: snapshotID}
	sameSchema := v.SchemaVersion == e.SchemaVersion
	switch {
	case sameSchema && e.Status != api.StatusFailed:
		return p, nil
	case snapshotID != "":
		p.Restore = true
		return p, nil
	case sameSchema:
		return p, nil
	}
	return p, fmt.Errorf("user %s's brain is at schema %d (engine %s) but %s needs schema %d, and no snapshot is recorded to restore", e.UserID, e.SchemaVersion, e.Status, to, v.SchemaVersion)
}
