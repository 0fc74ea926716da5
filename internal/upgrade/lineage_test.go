package upgrade

import (
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestCheckSnapshot(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	migrated := now.Add(-time.Hour)
	e := api.Engine{UserID: "u1", EngineID: "e1", EngineVersion: "2.3.1", SchemaVersion: 4, LastMigrationAt: &migrated}
	good := api.Snapshot{ID: "s1", UserID: "u1", EngineID: "e1", EngineVersion: "2.3.1", SchemaVersion: 4,
		Status: api.SnapshotVerified, CreatedAt: now, RetainUntil: now.Add(7 * 24 * time.Hour)}
	if p := CheckSnapshot(e, good, now.Add(time.Hour)); p != nil {
		t.Fatalf("good snapshot rejected: %v", p)
	}
	cases := map[string]struct {
		mut  func(*api.Snapshot)
		code string
	}{
		"other engine":     {func(s *api.Snapshot) { s.UserID = "u2" }, api.CodeSnapshotMismatch},
		"other version":    {func(s *api.Snapshot) { s.EngineVersion = "2.3.0" }, api.CodeSnapshotMismatch},
		"other schema":     {func(s *api.Snapshot) { s.SchemaVersion = 3 }, api.CodeSnapshotMismatch},
		"before migrate":   {func(s *api.Snapshot) { s.CreatedAt = migrated.Add(-time.Minute) }, api.CodeSnapshotMismatch},
		"corrupt":          {func(s *api.Snapshot) { s.Status = api.SnapshotCorrupt }, api.CodeSnapshotCorrupt},
		"missing":          {func(s *api.Snapshot) { s.Status = api.SnapshotMissing }, api.CodeSnapshotCorrupt},
		"expires too soon": {func(s *api.Snapshot) { s.RetainUntil = now.Add(time.Minute) }, api.CodeSnapshotMismatch},
	}
	for name, c := range cases {
		s := good
		c.mut(&s)
		p := CheckSnapshot(e, s, now.Add(time.Hour))
		if p == nil || p.Code != c.code || p.Reason == "" {
			t.Errorf("%s: got %v, want code %s", name, p, c.code)
		}
	}
}

func TestCheckRestore(t *testing.T) {
	e := api.Engine{UserID: "u1", EngineVersion: "2.4.0", SchemaVersion: 5}
	s := api.Snapshot{ID: "s1", UserID: "u1", EngineVersion: "2.3.1", SchemaVersion: 4, Status: api.SnapshotVerified}
	if p := CheckRestore(e, s, api.Version{Version: "2.3.1", SchemaVersion: 4}); p != nil {
		t.Fatalf("valid restore rejected: %v", p)
	}
	if p := CheckRestore(e, s, api.Version{Version: "2.4.0", SchemaVersion: 5}); p == nil {
		t.Fatal("restore at a version with another schema accepted")
	}
	s.Status = api.SnapshotCorrupt
	if p := CheckRestore(e, s, api.Version{Version: "2.3.1", SchemaVersion: 4}); p == nil || p.Code != api.CodeSnapshotCorrupt {
		t.Fatalf("corrupt restore: %v", p)
	}
}
