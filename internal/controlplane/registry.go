package controlplane

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// registry persists the control plane's bookkeeping (engines, snapshots, operations, idempotency
// keys) in a SQLite file under the data dir, as JSON documents keyed by id. The in-memory maps
// are authoritative while the server runs; every change is written through before it is
// visible to clients, so a restart with the same data dir loses nothing.
type registry struct {
	db *sql.DB
}

const registrySchema = `
CREATE TABLE IF NOT EXISTS engines (user_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (scope TEXT PRIMARY KEY, body_hash TEXT NOT NULL, op_id TEXT NOT NULL);
`

func openRegistry(path string) (*registry, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	// One connection: writes are serialised by the server's lock anyway, and SQLite allows one
	// writer at a time.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(registrySchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	return &registry{db: db}, nil
}

func (r *registry) close() error { return r.db.Close() }

func (r *registry) putEngines(es ...api.Engine) error {
	tx, err := r.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT OR REPLACE INTO engines (user_id, doc) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, e := range es {
		e.URL = ""
		b, _ := json.Marshal(e)
		if _, err := st.Exec(e.UserID, string(b)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (r *registry) putSnapshot(s api.Snapshot) error {
	b, _ := json.Marshal(s)
	_, err := r.db.Exec(`INSERT OR REPLACE INTO snapshots (id, user_id, doc) VALUES (?, ?, ?)`, s.ID, s.UserID, string(b))
	return err
}

func (r *registry) deleteSnapshot(id string) error {
	_, err := r.db.Exec(`DELETE FROM snapshots WHERE id = ?`, id)
	return err
}

func (r *registry) putOperation(o api.Operation, seq int64) error {
	b, _ := json.Marshal(o)
	_, err := r.db.Exec(`INSERT OR REPLACE INTO operations (id, user_id, seq, doc) VALUES (?, ?, ?, ?)`, o.ID, o.UserID, seq, string(b))
	return err
}

func (r *registry) putIdempotency(scope, bodyHash, opID string) error {
	_, err := r.db.Exec(`INSERT OR REPLACE INTO idempotency (scope, body_hash, op_id) VALUES (?, ?, ?)`, scope, bodyHash, opID)
	return err
}

// loaded is everything the registry holds, read once at start.
type loaded struct {
	engines    []api.Engine
	snapshots  []api.Snapshot
	operations []api.Operation // oldest first
	seqs       []int64
	idem       map[string]idemEntry
}

func (r *registry) load() (loaded, error) {
	var l loaded
	l.idem = map[string]idemEntry{}
	if err := eachDoc(r.db, `SELECT doc FROM engines ORDER BY user_id`, func(b []byte) error {
		var e api.Engine
		err := json.Unmarshal(b, &e)
		l.engines = append(l.engines, e)
		return err
	}); err != nil {
		return l, err
	}
	if err := eachDoc(r.db, `SELECT doc FROM snapshots ORDER BY id`, func(b []byte) error {
		var s api.Snapshot
		err := json.Unmarshal(b, &s)
		l.snapshots = append(l.snapshots, s)
		return err
	}); err != nil {
		return l, err
	}
	rows, err := r.db.Query(`SELECT doc, seq FROM operations ORDER BY seq`)
	if err != nil {
		return l, err
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		var seq int64
		var o api.Operation
		if err := rows.Scan(&doc, &seq); err != nil {
			return l, err
		}
		if err := json.Unmarshal([]byte(doc), &o); err != nil {
			return l, err
		}
		l.operations = append(l.operations, o)
		l.seqs = append(l.seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return l, err
	}
	irows, err := r.db.Query(`SELECT scope, body_hash, op_id FROM idempotency`)
	if err != nil {
		return l, err
	}
	defer irows.Close()
	for irows.Next() {
		var scope string
		var e idemEntry
		if err := irows.Scan(&scope, &e.bodyHash, &e.opID); err != nil {
			return l, err
		}
		l.idem[scope] = e
	}
	return l, irows.Err()
}

func eachDoc(db *sql.DB, q string, f func([]byte) error) error {
	rows, err := db.Query(q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		if err := f([]byte(doc)); err != nil {
			return err
		}
	}
	return rows.Err()
}
