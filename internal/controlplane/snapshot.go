package controlplane

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"modernc.org/sqlite"
)

// A snapshot is taken in two steps. backupBrain copies the live brain with SQLite's online
// backup API in a single step, which runs inside one read transaction on the brain: the copy is
// the brain exactly as of one commit (a committed prefix of its writes, never half a
// transaction), whoever is writing it meanwhile, a connection of this process (sim runtime) or an
// engine process (process runtime), and those writers are never blocked (WAL). sealSnapshot then
// verifies the finished file, hashes it and fsyncs it side by side, and only then renames it into
// place: a snapshot file that exists is whole, verified and durable, and its recorded sha256 and
// size are those of its bytes on disk.
//
// Nothing here opens the live brain file other than through SQLite: a close(2) of any descriptor
// of a file drops every POSIX lock the process holds on it, SQLite's included, which would leave
// an engine process free to checkpoint and delete the WAL under this process's connections.

// errSnapshotUnverified marks a snapshot file that failed verification (integrity_check, its
// schema record or write counter, or reading it to hash): the file is corrupt, not the machine.
var errSnapshotUnverified = errors.New("snapshot failed verification")

// partialSnapshot is where the snapshot dst is written and verified before it is renamed to dst.
func partialSnapshot(dst string) string { return dst + ".partial" }

// snapshotDest is the backup destination's DSN. The destination is a private temporary file that
// is either finished, verified, fsynced and renamed, or deleted, so SQLite's rollback journal and
// its own syncs there protect nothing and would cost about 40% of the backup: both are off, and
// sealSnapshot makes the file durable with one fsync instead.
func snapshotDest(path string) string {
	return "file:" + path + "?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)"
}

// snapshotRO opens a finished snapshot file for verification. immutable=1 is true of it (nothing
// writes the file once the backup is done) and makes SQLite take no locks and create no -wal or
// -shm files beside it: the verification leaves the file and its directory exactly as it found
// them, which the sha256 computed alongside relies on.
func snapshotRO(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1&_pragma=mmap_size(4000000000)")
}

// backupBrain copies the live brain at brain into the new file dst with the online backup API.
// The whole copy is one sqlite3_backup_step(-1) call: one read transaction on the brain for all
// the pages. Several smaller steps would each start a new read transaction and make the backup
// start over whenever another connection had committed in between.
func backupBrain(ctx context.Context, brain, dst string) error {
	db, err := openBrain(brain)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return fmt.Errorf("the sqlite driver offers no online backup")
		}
		bk, err := b.NewBackup(snapshotDest(dst))
		if err != nil {
			return err
		}
		more, err := bk.Step(-1)
		if err == nil && more {
			err = fmt.Errorf("the online backup of %s stopped before its last page", filepath.Base(brain))
		}
		if err != nil {
			_ = bk.Finish() // the Step error is the one worth reporting
			return err
		}
		return bk.Finish()
	})
}

// snapshotFile is what a verified snapshot file holds.
type snapshotFile struct {
	Schema int
	Writes int64
	SHA256 string
	Size   int64
}

// sealSnapshot verifies the finished backup at tmp and makes it the snapshot dst. Three passes
// over the same bytes run concurrently, since each is bound by something different (SQLite's
// checks, sha256, the disk): inspectSnapshot, the sha256 and size, and an fsync. Only when all
// three succeed is tmp renamed to dst and the directory synced. A verification failure wraps
// errSnapshotUnverified; tmp is left for the caller to remove.
func sealSnapshot(tmp, dst string) (snapshotFile, error) {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return snapshotFile{}, err
	}
	defer f.Close()
	var (
		sf                           snapshotFile
		inspectErr, hashErr, syncErr error
		wg                           sync.WaitGroup
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		sf.Schema, sf.Writes, inspectErr = inspectSnapshot(tmp)
	}()
	go func() {
		defer wg.Done()
		sf.SHA256, sf.Size, hashErr = hashFile(f)
	}()
	go func() {
		defer wg.Done()
		syncErr = f.Sync()
	}()
	wg.Wait()
	if err := errors.Join(inspectErr, hashErr); err != nil {
		return snapshotFile{}, fmt.Errorf("%w: %w", errSnapshotUnverified, err)
	}
	if syncErr != nil {
		return snapshotFile{}, fmt.Errorf("fsync %s: %w", filepath.Base(tmp), syncErr)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return snapshotFile{}, err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return snapshotFile{}, fmt.Errorf("fsync the snapshot directory after renaming %s into it: %w", filepath.Base(dst), err)
	}
	return sf, nil
}

// inspectSnapshot checks a snapshot file with PRAGMA integrity_check and reads the schema and
// write counter it carries.
func inspectSnapshot(path string) (schema int, writes int64, err error) {
	db, err := snapshotRO(path)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil {
		return 0, 0, fmt.Errorf("integrity check: %w", err)
	}
	if ok != "ok" {
		return 0, 0, fmt.Errorf("integrity check failed: %s", ok)
	}
	if err := db.QueryRow(`SELECT version FROM schema_migrations LIMIT 1`).Scan(&schema); err != nil {
		return 0, 0, fmt.Errorf("snapshot has no schema record: %w", err)
	}
	if err := db.QueryRow(`SELECT value FROM brain_meta WHERE key = 'brain_writes'`).Scan(&writes); err != nil {
		return 0, 0, fmt.Errorf("snapshot has no write counter: %w", err)
	}
	return schema, writes, nil
}

// fileSHA256 hashes a file; a missing file is reported as such so callers can tell missing from
// corrupt.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return hashFile(f)
}

// hashFile returns the sha256 of what is left to read in f and its length. It reads 1 MiB at a
// time: sha256 of a large snapshot is bound by the CPU, and io.Copy's 32 KiB reads add a tenth
// in system calls.
func hashFile(f *os.File) (string, int64, error) {
	h := sha256.New()
	// The wrapper hides os.File's WriterTo, which would ignore the buffer.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncDir makes a rename into dir durable. Windows cannot fsync a directory (Sync on one fails):
// there the rename is as durable as the filesystem makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
