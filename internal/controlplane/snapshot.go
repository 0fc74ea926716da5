package controlplane

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// A snapshot is taken in two steps. copyBrain takes the brain's bytes as of one commit into a
// private .partial file while turns keep being committed, by a connection of this process (sim
// runtime) or by an engine process (process runtime). sealSnapshot then verifies that file
// (integrity_check, schema, write counter), hashes it and fsyncs it, and only then renames it
// into place: a snapshot file that exists is whole, verified and durable, and its recorded
// sha256 and size are those of its bytes on disk.
//
// copyBrain copies the database file itself while the brain is pinned (pinBrain) at a commit
// whose every WAL frame is already in that file, by a read transaction that keeps checkpoints
// from writing the file until the copy is done: the file then is that commit exactly. The copy
// is hashed as it is written (copyHashed), so the file is read once. Where the brain cannot be
// pinned or the file cannot be copied safely, copyBrain falls back to SQLite's online backup API
// (backupBrain), which gives the same guarantee page by page through SQLite, at about one and a
// half times the cost, and sealSnapshot hashes the file afterwards.

// errSnapshotUnverified marks a snapshot file that failed verification (integrity_check, its
// schema record or write counter, or reading it to hash): the file is corrupt, not the machine.
var errSnapshotUnverified = errors.New("snapshot failed verification")

// errNotPinned says the brain could not be pinned at a fully checkpointed commit; the snapshot
// falls back to the online backup.
var errNotPinned = errors.New("the brain could not be pinned at a fully checkpointed commit")

// errLiveCopyUnsupported says this platform cannot copy a database file that SQLite holds open
// in this process without dropping SQLite's locks on it (see copyLiveFile).
var errLiveCopyUnsupported = errors.New("copying the live database file is not supported here")

// liveCopyChunk is how much copyHashed writes at a time; afterLiveCopyChunk, when set (by tests),
// is called after each chunk is written, with the length written so far.
var (
	liveCopyChunk      = 1 << 20
	afterLiveCopyChunk func(written int64)
)

// partialSnapshot is where the snapshot dst is written and verified before it is renamed to dst.
func partialSnapshot(dst string) string { return dst + ".partial" }

// fileDigest is a file's sha256 and size.
type fileDigest struct {
	SHA256 string
	Size   int64
}

// snapshotCopy says how copyBrain took a snapshot's bytes.
type snapshotCopy struct {
	// How is the snapshot step's message: the method, and why the online backup was used
	// when it was.
	How string
	// Digest is the copy's sha256 and size when they were computed during the copy.
	Digest *fileDigest
	// Pinned says the database file was copied at a pinned commit.
	Pinned bool
}

// copyBrain takes the live brain at brain into the new file tmp as of one commit: a pinned copy
// of the database file where that works, else the online backup. Any failure of the pinned copy
// is reported in How and answered with the online backup, which is always correct.
func copyBrain(ctx context.Context, brain, tmp string) (snapshotCopy, error) {
	sc, pinErr := copyPinned(ctx, brain, tmp)
	if pinErr == nil {
		return sc, nil
	}
	os.Remove(tmp)
	if err := backupBrain(ctx, brain, tmp); err != nil {
		return snapshotCopy{}, fmt.Errorf("online backup: %w (it was the fallback: %w)", err, pinErr)
	}
	return snapshotCopy{How: fmt.Sprintf("online backup written (no pinned file copy: %v)", pinErr)}, nil
}

// copyPinned pins the brain and copies its database file into tmp, hashing it on the way.
func copyPinned(ctx context.Context, brain, tmp string) (snapshotCopy, error) {
	if err := liveCopyRefused(); err != nil {
		return snapshotCopy{}, err
	}
	db, err := openBrain(brain)
	if err != nil {
		return snapshotCopy{}, err
	}
	defer db.Close()
	release, frames, err := pinBrain(ctx, db)
	if err != nil {
		return snapshotCopy{}, err
	}
	defer release()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644) // as SQLite creates the backup
	if err != nil {
		return snapshotCopy{}, err
	}
	d, err := copyLiveFile(brain, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return snapshotCopy{}, err
	}
	return snapshotCopy{
		How:    fmt.Sprintf("database file copied at a commit pinned by a read transaction (its WAL of %d frames checkpointed into the file first)", frames),
		Digest: &d, Pinned: true,
	}, nil
}

// pinBrain pins the brain open in db at a commit whose every WAL frame is already in the
// database file, and keeps it so until release is called: until then the database file holds
// exactly that commit and nothing writes it, so a plain copy of the file is a consistent
// snapshot. Writers are never held off: they go on committing into the WAL meanwhile. frames is
// the length of the WAL at the pinned commit.
//
// Why, in SQLite's WAL terms: a commit appends frames to the WAL; only a checkpoint writes the
// database file, copying ("backfilling") WAL frames into it, and never past the read mark of a
// reader still using the WAL, nor at all while a reader holds read-lock slot 0 (a reader that
// needs no WAL frame, which SQLite gives out only when every frame is backfilled). Each attempt:
//
//  1. A read transaction starts on the reader connection: it sees the latest commit, frame
//     mxFrame, with a read mark at most mxFrame (or slot 0).
//  2. A passive checkpoint then backfills what it may. It reports the WAL's length when it
//     started ("log", at least mxFrame, since it started after step 1) and how much of it is
//     backfilled ("checkpointed"). Frames committed after step 1 lie past the reader's mark,
//     so they cannot be backfilled while it reads: checkpointed equal to log therefore means
//     no commit came in between and every frame up to mxFrame is in the database file. That is
//     the pin: the file is the reader's commit, and the reader's mark (or slot 0) keeps every
//     later checkpoint from writing the file until release. The WAL is not rewritten from its
//     start under the reader either: that needs every reader off the WAL.
//  3. Otherwise (a commit came in between, another checkpoint held the checkpoint lock, another
//     reader held an older mark) the read transaction ends and the attempt is repeated; after
//     pinAttempts the caller falls back to the online backup.
func pinBrain(ctx context.Context, db *sql.DB) (release func(), frames int, err error) {
	reader, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	checkpointer, err := db.Conn(ctx)
	if err != nil {
		reader.Close()
		return nil, 0, err
	}
	defer checkpointer.Close()
	for attempt := 0; attempt < pinAttempts; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Microsecond)
		}
		// Backfill what is there now, so that the checkpoint of step 2 has little left to do.
		if _, _, _, err := checkpoint(ctx, checkpointer); err != nil {
			reader.Close()
			return nil, 0, err
		}
		ok, log, err := pinAttempt(ctx, reader, checkpointer)
		if err != nil || !ok {
			_, _ = reader.ExecContext(context.Background(), "ROLLBACK") // fails harmlessly outside a transaction
		}
		if err != nil {
			reader.Close()
			return nil, 0, err
		}
		if ok {
			return func() {
				_, _ = reader.ExecContext(context.Background(), "ROLLBACK")
				reader.Close()
			}, log, nil
		}
	}
	reader.Close()
	return nil, 0, fmt.Errorf("%w after %d attempts (commits kept landing between the read transaction and the checkpoint, or another reader held an older snapshot)", errNotPinned, pinAttempts)
}

// pinAttempts bounds pinBrain's attempts; an attempt fails only when a commit lands in the
// fraction of a millisecond between its read transaction and its checkpoint, or when another
// checkpoint or an older reader is in the way, so a few attempts nearly always do.
const pinAttempts = 20

// pinAttempt is steps 1 and 2 of pinBrain: it starts the read transaction and reports whether
// the checkpoint after it found every frame of the WAL backfilled.
func pinAttempt(ctx context.Context, reader, checkpointer *sql.Conn) (pinned bool, log int, err error) {
	if _, err := reader.ExecContext(ctx, "BEGIN"); err != nil {
		return false, 0, err
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return false, 0, fmt.Errorf("start the pinning read transaction: %w", err)
	}
	busy, log, checkpointed, err := checkpoint(ctx, checkpointer)
	if err != nil {
		return false, 0, err
	}
	return busy == 0 && log >= 0 && checkpointed == log, log, nil
}

// checkpoint runs a passive checkpoint on conn and returns its three figures: busy (1 when
// another checkpoint held the lock), log (WAL frames) and checkpointed (frames backfilled); log
// and checkpointed are -1 when no checkpoint ran.
func checkpoint(ctx context.Context, conn *sql.Conn) (busy, log, checkpointed int, err error) {
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &checkpointed)
	if err != nil {
		err = fmt.Errorf("checkpoint: %w", err)
	}
	return busy, log, checkpointed, err
}

// snapshotDest is the backup destination's DSN. The destination is a private temporary file that
// is either finished, verified, fsynced and renamed, or deleted, so SQLite's rollback journal and
// its own syncs there protect nothing and would cost about 40% of the backup: both are off, and
// sealSnapshot makes the file durable with one fsync instead.
func snapshotDest(path string) string {
	return "file:" + path + "?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)"
}

// snapshotRO opens a finished snapshot file for verification. immutable=1 is true of it (nothing
// writes the file once it is copied) and makes SQLite take no locks and create no -wal or -shm
// files beside it: the verification leaves the file and its directory exactly as it found them.
// Reading through a memory map makes integrity_check about three times faster; the file is
// private and never truncated, so the mapping cannot lose pages under SQLite (2147418112 is
// SQLite's own cap on mmap_size).
func snapshotRO(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1&_pragma=mmap_size(2147418112)")
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

// sealSnapshot verifies the finished copy at tmp and makes it the snapshot dst. The passes over
// its bytes run concurrently, since each is bound by something different (SQLite's checks,
// sha256, the disk): inspectSnapshot, the sha256 and size (unless the copy already hashed the
// file: known), and an fsync. Only when all succeed is tmp renamed to dst and the directory
// synced. A verification failure wraps errSnapshotUnverified; tmp is left for the caller to
// remove.
func sealSnapshot(tmp, dst string, known *fileDigest) (snapshotFile, error) {
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
		if known != nil {
			sf.SHA256, sf.Size = known.SHA256, known.Size
			hashErr = sameSize(f, known.Size)
			return
		}
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

// sameSize checks that f is as long as the copy that hashed it reported.
func sameSize(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s is %d bytes but %d were copied and hashed", fi.Name(), fi.Size(), size)
	}
	return nil
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
// fileStamp tells whether a file may have changed since it was hashed: its size and mtime, and
// where the platform has them its inode and status-change time. A write always moves the ctime,
// and unlike the mtime nobody can set it back (touch -r, os.Chtimes), so bytes swapped under an
// unchanged size and mtime still change the stamp.
type fileStamp struct {
	size  int64
	mtime time.Time
	ctime int64 // nanoseconds; 0 where unknown
	ino   uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	ctime, ino := changeTimeAndInode(fi)
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ctime: ctime, ino: ino}
}

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

// copyHashed writes src (the pinned database file, mapped into memory) to out and returns the
// sha256 and length of what it wrote. The bytes are read once, by the write into out's page
// cache and by the hash, and the work is spread so that neither core waits: this goroutine
// writes, another hashes each chunk once it is written, and a third asks the kernel to start
// writing each chunk back to disk (writeBehind), so that the disk takes the copy while it is
// being made and the fsync that seals it has little left to wait for. The bytes hashed are the
// bytes written because src does not change while the brain is pinned.
func copyHashed(out *os.File, src []byte) (fileDigest, error) {
	chunks := make(chan []byte, 16)
	hashed := make(chan error, 1)
	h := sha256.New()
	go func() { hashed <- hashChunks(h, chunks) }()
	var total atomic.Int64
	kick := make(chan struct{}, 1)
	behind := make(chan error, 1)
	go func() {
		var from int64
		var err error
		for range kick {
			to := total.Load()
			if err == nil {
				err = writeBehind(out, from, to-from)
			}
			from = to
		}
		behind <- err
	}()

	var err error
	for off := 0; off < len(src); off += liveCopyChunk {
		b := src[off:min(len(src), off+liveCopyChunk)]
		if _, err = out.Write(b); err != nil {
			break
		}
		chunks <- b
		written := total.Add(int64(len(b)))
		select {
		case kick <- struct{}{}:
		default: // a write-behind is already due; it will take this chunk too
		}
		if afterLiveCopyChunk != nil {
			afterLiveCopyChunk(written)
		}
	}
	close(chunks)
	close(kick)
	if herr := <-hashed; err == nil {
		err = herr
	}
	if berr := <-behind; err == nil && berr != nil {
		err = fmt.Errorf("write %s back to disk while copying: %w", filepath.Base(out.Name()), berr)
	}
	if err != nil {
		return fileDigest{}, err
	}
	return fileDigest{SHA256: hex.EncodeToString(h.Sum(nil)), Size: total.Load()}, nil
}

// hashChunks hashes the chunks it receives, in order. src is a memory map of the brain file: if
// the file were cut short under it (by something other than SQLite, which cannot while the brain
// is pinned), reading the lost pages faults, and the fault is returned as an error rather than
// crashing the process. It drains chunks whatever happens, so the writer never blocks on it.
func hashChunks(h hash.Hash, chunks <-chan []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the mapped brain file to hash it faulted (was the file cut short under the copy?): %v", r)
			for range chunks { //nolint:revive // drained so the writer never blocks
			}
		}
	}()
	for b := range chunks {
		h.Write(b)
	}
	return nil
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
