package controlplane

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// testBrain is a migrated brain at schema 4 with seeded rows in every table, in its own
// directory.
func testBrain(t *testing.T, rows int) string {
	t.Helper()
	brain := filepath.Join(t.TempDir(), "brain.sqlite")
	if err := migrateBrain(brain, newMigrations(DefaultCatalog()), 4); err != nil {
		t.Fatal(err)
	}
	if err := seedRows(brain, rows); err != nil {
		t.Fatal(err)
	}
	return brain
}

// committer commits multi-row transactions into a brain from its own connections until stopped:
// each transaction adds 1 to 7 turns and raises brain_writes by the same number, so in any
// committed state the turn count equals brain_writes, and a state holding half a transaction
// does not. The WAL grows, wraps and is checkpointed (by the committer's auto-checkpoints and
// an explicit checkpointer) all the while.
type committer struct {
	stop    context.CancelFunc
	wg      sync.WaitGroup
	commits atomic.Int64
	err     atomic.Value
}

func startCommitter(t *testing.T, brain string) *committer {
	t.Helper()
	db, err := openBrain(brain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &committer{stop: cancel}
	content := strings.Repeat("w", 700)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			k := 1 + i%7
			if err := commitTurns(db, k, content); err != nil {
				c.err.Store(fmt.Errorf("commit %d: %w", i, err))
				return
			}
			c.commits.Add(1)
			time.Sleep(100 * time.Microsecond) // leave the snapshot some of the CPU
		}
	}()
	go func() {
		defer c.wg.Done()
		for ctx.Err() == nil {
			if _, err := db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				c.err.Store(fmt.Errorf("checkpoint: %w", err))
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		c.halt(t)
		db.Close()
	})
	return c
}

// commitTurns writes k turns and adds k to brain_writes in one transaction.
func commitTurns(db *sql.DB, k int, content string) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for j := 0; j < k; j++ {
		if _, err := tx.Exec(`INSERT INTO conversations (thread_id, role, content, created_at) VALUES (?, 'user', ?, '')`, turnsThread, content); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`UPDATE brain_meta SET value = value + ? WHERE key = 'brain_writes'`, k); err != nil {
		return err
	}
	return tx.Commit()
}

// halt stops the committer and fails the test if a commit failed.
func (c *committer) halt(t *testing.T) {
	t.Helper()
	c.stop()
	c.wg.Wait()
	if err, _ := c.err.Load().(error); err != nil {
		t.Fatalf("the committer failed: %v", err)
	}
}

// slowLiveCopy makes copyLiveFile copy in 32 KiB chunks with a pause after each, for the rest of
// the test: a copy of a test brain then lasts long enough for the committer's commits and
// checkpoints to land in the middle of it, as they do during the copy of a large brain.
func slowLiveCopy(t *testing.T) {
	setLiveCopy(t, 32<<10, func(int64) { time.Sleep(50 * time.Microsecond) })
}

// setLiveCopy sets copyLiveFile's chunk size and after-chunk hook for the rest of the test.
func setLiveCopy(t *testing.T, chunk int, hook func(written int64)) {
	was := liveCopyChunk
	liveCopyChunk, afterLiveCopyChunk = chunk, hook
	t.Cleanup(func() { liveCopyChunk, afterLiveCopyChunk = was, nil })
}

// checkSnapshotFile opens a snapshot file on its own and checks what a snapshot promises:
// integrity_check passes, the turns it holds are exactly the ones its brain_writes counts (a
// committed prefix, never half a transaction), and the recorded sha256 and size are the file's.
// It returns brain_writes.
func checkSnapshotFile(t *testing.T, path string, sf snapshotFile) int64 {
	t.Helper()
	writes, err := snapshotConsistency(path)
	if err != nil {
		t.Fatalf("snapshot %s: %v", filepath.Base(path), err)
	}
	if writes != sf.Writes {
		t.Fatalf("snapshot %s holds brain_writes %d but recorded %d", filepath.Base(path), writes, sf.Writes)
	}
	sum, size, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum != sf.SHA256 || size != sf.Size {
		t.Fatalf("snapshot %s is sha256 %s, %d bytes on disk; recorded %s, %d bytes", filepath.Base(path), sum, size, sf.SHA256, sf.Size)
	}
	return writes
}

// snapshotConsistency runs integrity_check on a brain copy and compares its turns with its write
// counter; an error says what is wrong.
func snapshotConsistency(path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil {
		return 0, fmt.Errorf("integrity_check: %w", err)
	}
	if ok != "ok" {
		return 0, fmt.Errorf("integrity_check: %s", ok)
	}
	var turns, writes int64
	if err := db.QueryRow(`SELECT count(*) FROM conversations WHERE thread_id = ?`, turnsThread).Scan(&turns); err != nil {
		return 0, err
	}
	if err := db.QueryRow(`SELECT value FROM brain_meta WHERE key = 'brain_writes'`).Scan(&writes); err != nil {
		return 0, err
	}
	if turns != writes {
		return writes, fmt.Errorf("holds %d turns but brain_writes %d: not a committed state", turns, writes)
	}
	return writes, nil
}

// TestSnapshot_ConsistentWhileCommitting snapshots a brain again and again while another
// connection keeps committing multi-row transactions and checkpointing: every snapshot must be
// a committed state that passes integrity_check, with its sha256 and size recorded exactly, by
// the pinned file copy and by the online backup it falls back to.
func TestSnapshot_ConsistentWhileCommitting(t *testing.T) {
	for _, tc := range []struct {
		name string
		copy func(brain, tmp string) (snapshotCopy, error)
	}{
		{"pinned file copy", func(brain, tmp string) (snapshotCopy, error) {
			return copyBrain(context.Background(), brain, tmp)
		}},
		{"online backup", func(brain, tmp string) (snapshotCopy, error) {
			return snapshotCopy{}, backupBrain(context.Background(), brain, tmp)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slowLiveCopy(t)
			brain := testBrain(t, 200)
			c := startCommitter(t, brain)
			dir := t.TempDir()
			var last int64 = -1
			pinned := 0
			const snapshots = 10
			for i := 0; i < snapshots; i++ {
				for c.commits.Load() < int64(20*(i+1)) {
					time.Sleep(time.Millisecond)
				}
				dst := filepath.Join(dir, fmt.Sprintf("snap-%d.sqlite", i))
				sc, err := tc.copy(brain, partialSnapshot(dst))
				if err != nil {
					t.Fatal(err)
				}
				if sc.Pinned {
					pinned++
				}
				sf, err := sealSnapshot(partialSnapshot(dst), dst, sc.Digest)
				if err != nil {
					t.Fatal(err)
				}
				writes := checkSnapshotFile(t, dst, sf)
				if writes <= last {
					t.Fatalf("snapshot %d holds brain_writes %d, not past the previous snapshot's %d although commits went on", i, writes, last)
				}
				last = writes
				if _, err := os.Stat(partialSnapshot(dst)); !os.IsNotExist(err) {
					t.Fatalf("the partial file outlived the sealed snapshot: %v", err)
				}
			}
			c.halt(t)
			if leftovers, _ := filepath.Glob(filepath.Join(dir, "*-[ws][ah][lm]")); len(leftovers) > 0 {
				t.Fatalf("verification left SQLite side files behind: %v", leftovers)
			}
			if tc.name == "pinned file copy" && runtime.GOOS == "linux" {
				t.Logf("%d of %d snapshots were pinned file copies, the others online backups", pinned, snapshots)
				if pinned == 0 {
					t.Fatal("no snapshot was a pinned file copy: every one fell back to the online backup")
				}
			}
		})
	}
}

// TestSnapshot_FallsBackToTheOnlineBackup: a reader that keeps an old snapshot open keeps
// checkpoints from reaching the end of the WAL, so the brain cannot be pinned; the snapshot is
// then the online backup, and still the latest commit.
func TestSnapshot_FallsBackToTheOnlineBackup(t *testing.T) {
	brain := testBrain(t, 50)
	db, err := openBrain(brain)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := old.QueryRowContext(context.Background(), `SELECT count(*) FROM conversations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := commitTurns(db, 3, "after the old reader"); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "snap.sqlite")
	sc, err := copyBrain(context.Background(), brain, partialSnapshot(dst))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Pinned || sc.Digest != nil || !strings.Contains(sc.How, "online backup") {
		t.Fatalf("copy under an old reader: %+v; want the online backup", sc)
	}
	sf, err := sealSnapshot(partialSnapshot(dst), dst, sc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if writes := checkSnapshotFile(t, dst, sf); writes != 15 {
		t.Fatalf("the fallback snapshot holds brain_writes %d, want the latest commit's 15", writes)
	}
	if _, err := old.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

// snapshotsWhileTurns takes n snapshots of user's engine through the API while turns of one to
// five rows each keep arriving, and checks every snapshot file as checkSnapshotFile does against
// what the API recorded.
func (e *env) snapshotsWhileTurns(user string, n int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		failure atomic.Value
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			r, err := e.try(ctx, "POST", "/v1/engines/"+user+"/turns", api.TurnsRequest{Count: 1 + i%5})
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				failure.Store(err)
				return
			case r.status != 200:
				failure.Store(fmt.Errorf("turn request %d answered %d: %s", i, r.status, r.body))
				return
			}
			written.Add(1)
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
		if err, _ := failure.Load().(error); err != nil {
			e.t.Fatalf("a turn failed while snapshots were taken: %v", err)
		}
	}()
	var last int64 = -1
	pinned := 0
	defer func() {
		if runtime.GOOS == "linux" && pinned == 0 && !e.t.Failed() {
			e.t.Fatalf("none of the %d snapshots was a pinned file copy", n)
		}
	}()
	for i := 0; i < n; i++ {
		for written.Load() < int64(3*(i+1)) && failure.Load() == nil {
			time.Sleep(time.Millisecond)
		}
		op := e.wait(e.startOp("/v1/engines/"+user+"/snapshots", api.CreateSnapshotRequest{Description: "under turns"}))
		if op.Status != api.OpSucceeded {
			e.t.Fatalf("snapshot failed: %+v", op.Error)
		}
		if how := step(op, api.StepSnapshot).Message; strings.Contains(how, "pinned") {
			pinned++
		} else {
			e.t.Logf("snapshot %d: %s", i, how)
		}
		var sn api.Snapshot
		e.ok(e.do("GET", "/v1/snapshots/"+op.Result.SnapshotID, nil), 200, &sn)
		writes := checkSnapshotFile(e.t, e.srv.SnapshotPath(sn.ID), snapshotFile{Writes: sn.BrainWrites, SHA256: sn.SHA256, Size: sn.SizeBytes})
		if writes <= last {
			e.t.Fatalf("snapshot %s holds brain_writes %d, not past the previous snapshot's %d although turns went on", sn.ID, writes, last)
		}
		last = writes
	}
}

// TestSnapshot_APIWhileMultiRowTurns is the same guarantee through the API with the simulated
// runtime: the turns are written by the engine's own connection in this process.
func TestSnapshot_APIWhileMultiRowTurns(t *testing.T) {
	e := newEnv(t, withSeed(1, "2.3.0"), func(o *Options) { o.SeedBrainRows = 300 })
	e.snapshotsWhileTurns("user-0001", 4)
	if leftovers, _ := filepath.Glob(filepath.Join(e.dir, "snapshots", "*")); len(leftovers) != 4 {
		t.Fatalf("the snapshot directory holds %v, want the 4 snapshot files and nothing else", leftovers)
	}
}
