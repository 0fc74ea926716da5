package chaos

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The checksums are what "rows lost" and "data identical to the snapshot" rest on: they must see
// a changed value (a count would not), a missing table, and a damaged file.
func TestTableChecksums(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, stmts ...string) string {
		p := filepath.Join(dir, name)
		db, err := sql.Open("sqlite", "file:"+p)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		return p
	}
	base := []string{`CREATE TABLE conversations (id INTEGER PRIMARY KEY, content TEXT)`, `CREATE TABLE episodes (id INTEGER PRIMARY KEY, n REAL)`,
		`INSERT INTO conversations (content) VALUES ('a'), ('b')`, `INSERT INTO episodes (n) VALUES (0.5)`}
	a, err := TableChecksums(mk("a.sqlite", base...))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := TableChecksums(mk("b.sqlite", base...))
	if d := DiffChecksums(a, b); d != "" {
		t.Fatalf("identical brains differ: %s", d)
	}
	c, _ := TableChecksums(mk("c.sqlite", append(base, `UPDATE conversations SET content = 'B' WHERE content = 'b'`)...))
	if d := DiffChecksums(a, c); !strings.Contains(d, "table conversations") || strings.Contains(d, "episodes") {
		t.Fatalf("a changed value (same row count) gives diff %q", d)
	}
	e, _ := TableChecksums(mk("e.sqlite", append(base, `DROP TABLE episodes`)...))
	if d := DiffChecksums(a, e); !strings.Contains(d, "table episodes is gone") {
		t.Fatalf("a dropped table gives diff %q", d)
	}
	p := mk("f.sqlite", append(base, `CREATE TABLE big (x TEXT)`, `INSERT INTO big SELECT hex(randomblob(400)) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i < 200) SELECT i FROM r)`)...)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(raw) / 2; i < len(raw)/2+64; i++ {
		raw[i] ^= 0xff
	}
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TableChecksums(p); err == nil {
		t.Fatal("a damaged brain was checksummed without an error")
	}
}
