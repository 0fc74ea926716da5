package upgrade

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Problem is one finding of a plan check: an error or a warning, with the configuration attribute
// it concerns (empty for the resource as a whole). Summary is short Title Case; Detail says what
// was found, with identifiers, and what to do next.
type Problem struct {
	Attribute string
	Summary   string
	Detail    string
}

// ReleaseIntent is what an engine_release asks for, with what is known about the engine.
type ReleaseIntent struct {
	Engine api.Engine // at least UserID, EngineVersion, SchemaVersion; LastMigrationAt when known
	Target string
	// SnapshotID is the configured snapshot_id; SnapshotUnknown when it is not known yet (plan).
	SnapshotID      string
	SnapshotUnknown bool
	// Snapshot is the configured snapshot as read from the control plane, when SnapshotID is known.
	Snapshot       *api.Snapshot
	AutoSnapshot   bool
	AllowMajor     bool
	AllowDowngrade bool
	// RestoreSnapshot is the snapshot a downgrade below the brain's schema would restore
	// (snapshot_id when set, else the resource's pre_upgrade_snapshot_id).
	RestoreSnapshot *api.Snapshot
	// Deadline is when the upgrade could at latest finish (now + timeout); a snapshot expiring
	// before it cannot protect the upgrade. Zero skips the check.
	Deadline time.Time
	// Held is the version the resource holds the engine at when someone moved the engine above
	// it outside the resource (see HoldsDrift); empty when there is no such drift.
	Held string
	// PreviousVersion is the version the resource found when it adopted the engine (what
	// destroy rolls back to); empty on create.
	PreviousVersion string
}

// ReleaseDecision is what the provider will do, and what stands in its way.
type ReleaseDecision struct {
	Path api.UpgradePath
	// Action: "none", "upgrade", "downgrade" (same schema, no restore) or "restore" (downgrade
	// by snapshot restore).
	Action   string
	Errors   []Problem
	Warnings []Problem
	// TakeSnapshot is true when the provider must take the snapshot itself (auto_snapshot).
	TakeSnapshot bool
}

// Release actions.
const (
	ActionNone      = "none"
	ActionUpgrade   = "upgrade"
	ActionDowngrade = "downgrade"
	ActionRestore   = "restore"
)

// PlanRelease decides an engine_release change. It is pure: the provider calls it at plan with
// what it knows then, and again at apply with fresh reads, so both enforce the same rules.
func PlanRelease(c *Catalog, in ReleaseIntent) ReleaseDecision {
	d := ReleaseDecision{Action: ActionNone}
	e := in.Engine
	path, err := c.Path(e.EngineVersion, in.Target)
	if err != nil {
		var uv *UnknownVersionError
		if errors.As(err, &uv) && uv.Version == in.Target {
			targets, _, _ := c.Targets(e.EngineVersion)
			var names []string
			for _, t := range targets {
				names = append(names, t.Version)
			}
			next := "no newer version is in the catalog"
			if len(names) > 0 {
				next = "valid targets from " + e.EngineVersion + ": " + strings.Join(names, ", ")
			}
			d.Errors = append(d.Errors, unknownVersion(in.Target, next))
			return d
		}
		d.Errors = append(d.Errors, Problem{"", "Engine Runs An Unknown Version",
			fmt.Sprintf("User %s's engine runs %q, which is not in the release catalog: %v. Restore the engine to a catalog version first.", e.UserID, e.EngineVersion, err)})
		return d
	}
	d.Path = path
	switch path.Kind {
	case KindNone:
		return d
	case KindDowngrade:
		if in.Held != "" && in.Target == in.Held && !in.AllowDowngrade {
			// The resource asks for nothing new: leave the engine where someone else put it.
			d.Warnings = append(d.Warnings, DriftAbove(e.UserID, in.Held, e.EngineVersion, path))
			return d
		}
		return planDowngrade(in, d)
	}
	d.Action = ActionUpgrade
	if path.Kind == KindMajor {
		if !in.AllowMajor {
			d.Errors = append(d.Errors, Problem{"allow_major_upgrade", "Major Upgrade Not Allowed",
				fmt.Sprintf("Moving user %s's engine from %s to %s is a major upgrade with breaking changes%s. Read the migration guide%s, then set allow_major_upgrade = true to proceed.",
					e.UserID, path.From, path.To, listSuffix(path.BreakingChanges), guideSuffix(path.MigrationGuideURLs))})
		} else {
			d.Warnings = append(d.Warnings, Problem{"version", "Major Upgrade With Breaking Changes",
				fmt.Sprintf("%s → %s is a major upgrade%s. Migration guide%s.", path.From, path.To, listSuffix(path.BreakingChanges), guideSuffix(path.MigrationGuideURLs))})
		}
	}
	if !path.RequiresSnapshot {
		return d
	}
	for _, m := range path.Migrations {
		if m.Destructive {
			d.Warnings = append(d.Warnings, Problem{"version", "Destructive Brain Migration",
				fmt.Sprintf("Migration %s (%s) rewrites data in user %s's brain. It cannot be undone: the only way back is restoring the pre-upgrade snapshot, which loses every write made after it.", m.ID, m.Description, e.UserID)})
		}
	}
	snapName := "the snapshot the provider takes (auto_snapshot)"
	switch {
	case in.SnapshotUnknown:
		snapName = "the snapshot in snapshot_id"
	case in.SnapshotID != "":
		snapName = "snapshot " + in.SnapshotID
		if in.Snapshot != nil {
			if p := CheckSnapshot(e, *in.Snapshot, in.Deadline); p != nil {
				d.Errors = append(d.Errors, Problem{"snapshot_id", "Snapshot Cannot Protect This Upgrade",
					p.Reason + ". Snapshot-before-migrate needs a verified snapshot of this engine at its current version and schema: create an engine_brain_snapshot for user " + e.UserID + " and reference it, or set auto_snapshot = true."})
			}
		}
	case in.AutoSnapshot:
		d.TakeSnapshot = true
	default:
		d.Errors = append(d.Errors, Problem{"snapshot_id", "Snapshot Required Before Migration",
			fmt.Sprintf("Upgrading user %s's engine from %s to %s migrates the brain (schema %d → %d: %s), and the migration is forward-only: the old version cannot read the brain afterwards. Set snapshot_id to an engine_brain_snapshot of this engine taken at %s, or set auto_snapshot = true to let the provider take and verify one.",
				e.UserID, path.From, path.To, path.FromSchema, path.ToSchema, migrationIDs(path.Migrations), e.EngineVersion)})
	}
	if path.ForwardOnly {
		d.Warnings = append(d.Warnings, Problem{"version", "Forward-Only Brain Migration",
			fmt.Sprintf("%s → %s applies forward-only migrations %s to user %s's brain. After this, rolling back needs %s and loses every brain write made after it.", path.From, path.To, migrationIDs(path.Migrations), e.UserID, snapName)})
	}
	return d
}

func planDowngrade(in ReleaseIntent, d ReleaseDecision) ReleaseDecision {
	e, path := in.Engine, d.Path
	if !in.AllowDowngrade {
		next := fmt.Sprintf("Set allow_downgrade = true to move it back on purpose%s, or set version = %q to keep it as it runs.", restoreHint(path), path.From)
		switch {
		case in.Held != "":
			next = fmt.Sprintf("Someone moved user %s's engine from %s to %s outside this resource: this resource did not make that upgrade. ", e.UserID, in.Held, path.From) + next
		case in.PreviousVersion != "":
			next += fmt.Sprintf(" Destroying this resource rolls the engine back to %s, the version it found.", in.PreviousVersion)
		}
		d.Errors = append(d.Errors, Problem{"allow_downgrade", "Downgrade Not Allowed",
			fmt.Sprintf("Version %s is lower than %s, which user %s's engine runs. %s", path.To, path.From, e.UserID, next)})
		return d
	}
	if !path.RequiresRestore {
		d.Action = ActionDowngrade
		return d
	}
	d.Action = ActionRestore
	s := in.RestoreSnapshot
	switch {
	case in.SnapshotUnknown:
		return d
	case s == nil:
		d.Errors = append(d.Errors, Problem{"snapshot_id", "Downgrade Needs A Snapshot",
			fmt.Sprintf("%s. No snapshot of user %s's brain at schema %d is known to this resource: set snapshot_id to a verified snapshot taken on %s.", path.Reason, e.UserID, path.ToSchema, path.To)})
	case s.SchemaVersion != path.ToSchema || s.Status != api.SnapshotVerified || s.UserID != e.UserID:
		d.Errors = append(d.Errors, Problem{"snapshot_id", "Snapshot Cannot Be Restored",
			fmt.Sprintf("Snapshot %s (user %s, version %s, schema %d, status %s) cannot bring user %s's engine back to %s, which needs a verified brain at schema %d.", s.ID, s.UserID, s.EngineVersion, s.SchemaVersion, s.Status, e.UserID, path.To, path.ToSchema)})
	default:
		d.Warnings = append(d.Warnings, Problem{"version", "Downgrade Restores A Snapshot",
			fmt.Sprintf("Going back from %s to %s restores snapshot %s (taken %s): %d brain writes made since then will be lost.", path.From, path.To, s.ID, s.CreatedAt.UTC().Format(time.RFC3339), WritesSince(e, *s))})
	}
	return d
}

// HoldsDrift says whether a resource that holds an engine at version (with allowDowngrade off)
// keeps holding it there after someone moved the engine up to running outside the resource:
// then the resource leaves the engine alone and plans warn (DriftAbove), instead of every plan
// of the workspace failing on a downgrade nobody asked for. With allowDowngrade on, the drift
// is planned as the downgrade it asks for.
func HoldsDrift(version, running string, allowDowngrade bool) bool {
	if allowDowngrade || version == "" {
		return false
	}
	k, err := Kind(version, running)
	return err == nil && k != KindNone && k != KindDowngrade
}

// DriftAbove is the plan warning for an engine someone moved from held up to running outside
// the resource: the plan leaves it there, and names the two ways out. path, when known, is the
// way back (running → held), for whether going back restores a snapshot.
func DriftAbove(userID, held, running string, path api.UpgradePath) Problem {
	return Problem{"version", "Engine Moved Above Its Version",
		fmt.Sprintf("Someone moved user %s's engine from %s to %s outside this resource. This plan leaves the engine on %s and changes nothing on it. "+
			"To keep %s, set version = %q; to go back to %s, set allow_downgrade = true%s.", userID, held, running, running, running, running, held, restoreHint(path))}
}

// restoreHint is what a downgrade along path needs besides allow_downgrade.
func restoreHint(path api.UpgradePath) string {
	if !path.RequiresRestore {
		return ""
	}
	return fmt.Sprintf(" and snapshot_id to a verified snapshot of the engine taken on %s (schema %d), which the downgrade restores", path.To, path.ToSchema)
}

// RollbackLoss is how many brain writes rolling e back with snapshot s would lose: none when the
// rollback redeploys the older version on the same brain (the schema did not move and the
// engine has not failed), else the writes since s, which the restore drops.
func RollbackLoss(e api.Engine, s api.Snapshot) int64 {
	if s.SchemaVersion == e.SchemaVersion && e.Status != api.StatusFailed {
		return 0
	}
	return WritesSince(e, s)
}

// WritesSince is how many brain writes a restore of s would lose.
func WritesSince(e api.Engine, s api.Snapshot) int64 {
	if n := e.BrainWrites - s.BrainWrites; n > 0 {
		return n
	}
	return 0
}

func migrationIDs(ms []api.Migration) string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}

func listSuffix(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return " (" + strings.Join(items, "; ") + ")"
}

func guideSuffix(urls []string) string {
	if len(urls) == 0 {
		return ""
	}
	return ": " + strings.Join(urls, ", ")
}

// unknownVersion is the error for a version the catalog does not hold; known says which it does.
func unknownVersion(version, known string) Problem {
	return Problem{"version", "Unknown Engine Version",
		fmt.Sprintf("Version %q is not in the control plane's release catalog (%s). Set version to a catalog version; data \"engine_versions\" lists them.", version, known)}
}
