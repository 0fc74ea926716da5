package controlplane

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// turnsThread is the conversation thread that test traffic writes into; seeded rows live in other
// threads so GET .../turns shows exactly the traffic a test wrote.
const turnsThread = "test-traffic"

// brainDSN opens a brain in WAL mode (so an online backup never blocks turns) with a busy timeout
// long enough to ride out a concurrent writer.
func brainDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
}

func openBrain(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", brainDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

// migrations is the brain's migration source for golang-migrate: the baseline at the catalog's
// lowest schema, then one file per catalog migration numbered by the schema it produces.
type migrations struct {
	base  int
	files fstest.MapFS
}

func newMigrations(vs []api.Version) migrations {
	m := migrations{base: vs[0].SchemaVersion, files: fstest.MapFS{}}
	m.files[fmt.Sprintf("%d_baseline.up.sql", m.base)] = &fstest.MapFile{Data: []byte(baselineSQL)}
	for _, v := range vs {
		for _, mig := range v.Migrations {
			m.files[fmt.Sprintf("%d_%s.up.sql", mig.ToSchema, safeName(mig.ID))] = &fstest.MapFile{Data: []byte(mig.SQL)}
		}
	}
	return m
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// failingAt returns a copy of the source whose migration to schema `at` runs half of its
// statements and then fails, to rehearse a migration dying half-way.
func (m migrations) failingAt(at int) migrations {
	out := migrations{base: m.base, files: fstest.MapFS{}}
	prefix := fmt.Sprintf("%d_", at)
	for name, f := range m.files {
		if !strings.HasPrefix(name, prefix) {
			out.files[name] = f
			continue
		}
		var stmts []string
		for _, s := range strings.Split(string(f.Data), ";") {
			if strings.TrimSpace(s) != "" {
				stmts = append(stmts, s)
			}
		}
		half := (len(stmts) + 1) / 2
		sqlText := strings.Join(stmts[:half], ";") + ";\nINSERT INTO \"fault injected: migration failed half-way\" VALUES (1);"
		out.files[name] = &fstest.MapFile{Data: []byte(sqlText)}
	}
	return out
}

// migrateBrain brings a brain file to schema target with golang-migrate. Each migration runs in
// one transaction; the driver marks the schema record dirty before running it and clean only
// after it commits, so a failure leaves the brain fail-closed (dirty) with its tables rolled back.
func migrateBrain(path string, src migrations, target int) error {
	return migrateBrainHooked(path, src, target, nil)
}

// migrateBrainHooked is migrateBrain with a hook called after a migration's dirty flag is
// committed and before its statements run: the stand-in Engine uses it to widen the window in
// which a process kill lands mid-migration.
func migrateBrainHooked(path string, src migrations, target int, before func(schema uint)) error {
	var wrap func(database.Driver) database.Driver
	if before != nil {
		wrap = func(d database.Driver) database.Driver { return &hookedDriver{Driver: d, before: before} }
	}
	return migrateBrainWith(path, src, target, wrap)
}

// migrateBrainWith is migrateBrain through the driver wrap returns (nil: golang-migrate's own).
func migrateBrainWith(path string, src migrations, target int, wrap func(database.Driver) database.Driver) error {
	db, err := openBrain(path)
	if err != nil {
		return err
	}
	var drv database.Driver
	drv, err = migratesqlite.WithInstance(db, &migratesqlite.Config{})
	if err != nil {
		db.Close()
		return fmt.Errorf("open brain %s for migration: %w", filepath.Base(path), err)
	}
	if wrap != nil {
		drv = wrap(drv)
	}
	source, err := iofs.New(src.files, ".")
	if err != nil {
		drv.Close()
		return err
	}
	m, err := migrate.NewWithInstance("iofs", source, "sqlite", drv)
	if err != nil {
		drv.Close()
		return err
	}
	defer m.Close()
	if err := m.Migrate(uint(target)); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return err
	}
	return nil
}

// hookedDriver calls before(schema) between golang-migrate's "dirty" SetVersion and the
// migration's Run, which is exactly the half-applied window a crash must be safe in.
type hookedDriver struct {
	database.Driver
	before  func(schema uint)
	pending uint
}

func (d *hookedDriver) SetVersion(version int, dirty bool) error {
	if err := d.Driver.SetVersion(version, dirty); err != nil {
		return err
	}
	if dirty && version >= 0 {
		d.pending = uint(version)
	}
	return nil
}

func (d *hookedDriver) Run(r io.Reader) error {
	d.before(d.pending)
	return d.Driver.Run(r)
}

// brainSchema reads the brain's schema-version record: its schema and whether a migration to it
// failed (dirty).
func brainSchema(path string) (schema int, dirty bool, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, false, err
	}
	db, err := openBrain(path)
	if err != nil {
		return 0, false, err
	}
	defer db.Close()
	err = db.QueryRow(`SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&schema, &dirty)
	if err != nil {
		return 0, false, fmt.Errorf("brain %s has no schema record: %w", filepath.Base(path), err)
	}
	return schema, dirty, nil
}

// seedRows fills each brain table with n synthetic rows so snapshots, migrations and restores
// move real data.
func seedRows(path string, n int) error {
	db, err := openBrain(path)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	hasTrajectories := tableExists(tx, "trajectories")
	for i := 1; i <= n; i++ {
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO episodes (summary, created_at) VALUES (?, ?)`, []any{fmt.Sprintf("episode %d: synthetic task summary", i), now}},
			{`INSERT INTO knowledge_store (key, value, updated_at) VALUES (?, ?, ?)`, []any{fmt.Sprintf("fact-%d", i), fmt.Sprintf("the user prefers option %d", i%7), now}},
			{`INSERT INTO conversations (thread_id, role, content, created_at) VALUES (?, ?, ?, ?)`, []any{fmt.Sprintf("seed-%d", i%5), "user", fmt.Sprintf("seeded message %d", i), now}},
			{`INSERT INTO social_graph_nodes (name, kind) VALUES (?, ?)`, []any{fmt.Sprintf("contact-%d", i), "person"}},
			{`INSERT INTO observability_events (kind, payload, created_at) VALUES (?, ?, ?)`, []any{[]string{"usage", "debug", "tool_call"}[i%3], `{"tokens":128}`, now}},
		}
		if hasTrajectories {
			stmts = append(stmts, struct {
				q    string
				args []any
			}{`INSERT INTO trajectories (episode_id, steps, created_at) VALUES (?, ?, ?)`, []any{i, `["plan","act"]`, now}})
		}
		for _, s := range stmts {
			if _, err := tx.Exec(s.q, s.args...); err != nil {
				return fmt.Errorf("seed brain: %w", err)
			}
		}
	}
	return tx.Commit()
}

func tableExists(q interface {
	QueryRow(string, ...any) *sql.Row
}, name string) bool {
	var n int
	_ = q.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0
}

// writeTurns stores count turns in one transaction and records the engine's new write counter
// inside the brain, so a snapshot of the brain knows exactly how many writes it holds.
func writeTurns(db *sql.DB, count int, content string, writesAfter int64) ([]api.Turn, error) {
	tx, err := db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return insertTurns(tx, count, content, writesAfter)
}

// insertTurns writes count turns and the write counter in tx and commits it.
func insertTurns(tx *sql.Tx, count int, content string, writesAfter int64) ([]api.Turn, error) {
	now := time.Now().UTC()
	turns := make([]api.Turn, 0, count)
	for i := 0; i < count; i++ {
		c := content
		if c == "" {
			c = fmt.Sprintf("turn %d", writesAfter-int64(count)+int64(i)+1)
		}
		res, err := tx.Exec(`INSERT INTO conversations (thread_id, role, content, created_at) VALUES (?, 'user', ?, ?)`, turnsThread, c, now.Format(time.RFC3339Nano))
		if err != nil {
			return nil, err
		}
		id, _ := res.LastInsertId()
		turns = append(turns, api.Turn{ID: id, Content: c, CreatedAt: now})
	}
	if _, err := tx.Exec(`UPDATE brain_meta SET value = max(value, ?) WHERE key = 'brain_writes'`, writesAfter); err != nil {
		return nil, err
	}
	return turns, tx.Commit()
}

func listTurns(db *sql.DB) ([]api.Turn, error) {
	rows, err := db.Query(`SELECT id, content, created_at FROM conversations WHERE thread_id = ? ORDER BY id`, turnsThread)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	turns := []api.Turn{}
	for rows.Next() {
		var t api.Turn
		var at string
		if err := rows.Scan(&t.ID, &t.Content, &at); err != nil {
			return nil, err
		}
		t.CreatedAt, _ = time.Parse(time.RFC3339Nano, at)
		turns = append(turns, t)
	}
	return turns, rows.Err()
}

// copyFile copies src to dst through a temporary file and an fsync, so dst is either the whole
// copy or absent.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// swapBrain replaces a (closed) brain with a snapshot's bytes. The -wal and -shm files go first:
// a stale WAL replayed over the restored file would resurrect the writes the restore discards.
func swapBrain(snapshot, brain string) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(brain + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return copyFile(snapshot, brain)
}
