package upgrade

import (
	"fmt"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// SnapshotProblem is why a snapshot cannot protect an upgrade of an engine. Code is the control
// API error code the control plane answers with for the same rule.
type SnapshotProblem struct {
	Code   string
	Reason string
}

func (p *SnapshotProblem) Error() string { return p.Reason }

// CheckSnapshot applies the snapshot-before-migrate lineage rules: the snapshot must be of this
// engine, taken at its current version and schema, after its last migration, verified, and not
// due to expire before the upgrade could finish (deadline; zero skips that check).
// The provider runs it at plan and apply; the control plane runs it again server-side.
func CheckSnapshot(e api.Engine, s api.Snapshot, deadline time.Time) *SnapshotProblem {
	mismatch := func(format string, args ...any) *SnapshotProblem {
		return &SnapshotProblem{Code: api.CodeSnapshotMismatch, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case s.UserID != e.UserID || (s.EngineID != "" && e.EngineID != "" && s.EngineID != e.EngineID):
		return mismatch("snapshot %s is of engine %s (user %s), not of user %s's engine %s", s.ID, s.EngineID, s.UserID, e.UserID, e.EngineID)
	case s.Status == api.SnapshotCorrupt:
		return &SnapshotProblem{Code: api.CodeSnapshotCorrupt, Reason: fmt.Sprintf("snapshot %s no longer matches its sha256 checksum: it cannot be trusted", s.ID)}
	case s.Status == api.SnapshotMissing:
		return &SnapshotProblem{Code: api.CodeSnapshotCorrupt, Reason: fmt.Sprintf("snapshot %s's file is missing", s.ID)}
	case s.EngineVersion != e.EngineVersion:
		return mismatch("snapshot %s was taken at version %s, but user %s's engine now runs %s", s.ID, s.EngineVersion, e.UserID, e.EngineVersion)
	case s.SchemaVersion != e.SchemaVersion:
		return mismatch("snapshot %s was taken at brain schema %d, but user %s's brain is now at schema %d", s.ID, s.SchemaVersion, e.UserID, e.SchemaVersion)
	case e.LastMigrationAt != nil && s.CreatedAt.Before(*e.LastMigrationAt):
		return mismatch("snapshot %s (taken %s) is older than the engine's last migration (%s)", s.ID, s.CreatedAt.UTC().Format(time.RFC3339), e.LastMigrationAt.UTC().Format(time.RFC3339))
	case !deadline.IsZero() && s.RetainUntil.Before(deadline):
		return mismatch("snapshot %s's retention ends %s, before the upgrade could finish; raise its retention_days", s.ID, s.RetainUntil.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckRestore applies the rules for restoring a snapshot at a version: the snapshot is of this
// engine, intact, and the version reads the snapshot's schema exactly (an older version refuses a
// newer brain; a newer one would migrate it, which a restore never does).
func CheckRestore(e api.Engine, s api.Snapshot, v api.Version) *SnapshotProblem {
	switch {
	case s.UserID != e.UserID:
		return &SnapshotProblem{Code: api.CodeSnapshotMismatch, Reason: fmt.Sprintf("snapshot %s is of user %s, not %s", s.ID, s.UserID, e.UserID)}
	case s.Status != api.SnapshotVerified && s.Status != "":
		return &SnapshotProblem{Code: api.CodeSnapshotCorrupt, Reason: fmt.Sprintf("snapshot %s is %s and cannot be restored", s.ID, s.Status)}
	case v.SchemaVersion != s.SchemaVersion:
		return &SnapshotProblem{Code: api.CodeSnapshotMismatch, Reason: fmt.Sprintf("snapshot %s holds brain schema %d, but version %s uses schema %d: restore it at %s", s.ID, s.SchemaVersion, v.Version, v.SchemaVersion, s.EngineVersion)}
	}
	return nil
}
