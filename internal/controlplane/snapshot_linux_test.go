package controlplane

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// TestSnapshot_PinKeepsCheckpointsOutOfTheCopy commits and checkpoints in the middle of a copy
// of the database file. Pinned, the copy must be the pinned commit exactly, and the checkpoint
// must have been kept from writing the file. Unpinned (the negative control, the copy without
// the pin), the same copy mixes the two commits, and the checks must catch it.
func TestSnapshot_PinKeepsCheckpointsOutOfTheCopy(t *testing.T) {
	for _, pin := range []bool{true, false} {
		t.Run(fmt.Sprintf("pinned=%v", pin), func(t *testing.T) {
			brain := testBrain(t, 300)
			db, err := openBrain(brain)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for i := 0; i < 60; i++ {
				if err := commitTurns(db, 1+i%7, strings.Repeat("t", 500)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				t.Fatal(err)
			}
			var before int64
			if err := db.QueryRow(`SELECT value FROM brain_meta WHERE key = 'brain_writes'`).Scan(&before); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(brain)
			if err != nil {
				t.Fatal(err)
			}

			// Half-way through the copy (brain_meta, near the start, already copied; the last
			// turns, at the end, not yet), a transaction drops the last 5 turns and takes 5
			// off brain_writes, and a checkpoint tries to write it into the database file.
			var log, checkpointed int
			midway := make(chan struct{})
			resume := make(chan error)
			var once sync.Once
			setLiveCopy(t, 4096, func(copied int64) {
				if copied >= fi.Size()/2 {
					once.Do(func() {
						close(midway)
						if err := <-resume; err != nil {
							t.Errorf("mid-copy commit: %v", err)
						}
					})
				}
			})
			go func() {
				<-midway
				_, err := db.Exec(`DELETE FROM conversations WHERE id IN (SELECT id FROM conversations WHERE thread_id = ? ORDER BY id DESC LIMIT 5)`, turnsThread)
				if err == nil {
					_, err = db.Exec(`UPDATE brain_meta SET value = value - 5 WHERE key = 'brain_writes'`)
				}
				if err == nil {
					err = db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(new(int), &log, &checkpointed)
				}
				resume <- err
			}()

			dst := filepath.Join(t.TempDir(), "snap.sqlite")
			if pin {
				sc, err := copyPinned(context.Background(), brain, dst)
				if err != nil {
					t.Fatal(err)
				}
				if checkpointed >= log {
					t.Fatalf("the mid-copy checkpoint wrote %d of %d WAL frames into the pinned database file", checkpointed, log)
				}
				writes, err := snapshotConsistency(dst)
				if err != nil {
					t.Fatalf("pinned copy: %v", err)
				}
				if writes != before {
					t.Fatalf("pinned copy holds brain_writes %d, want the pinned commit's %d", writes, before)
				}
				if sum, size, _ := fileSHA256(dst); sum != sc.Digest.SHA256 || size != sc.Digest.Size {
					t.Fatalf("the hash taken during the copy is %+v, the file's %s, %d bytes", *sc.Digest, sum, size)
				}
				// The pin ended with the copy: the checkpoint it held off now goes through.
				if err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(new(int), &log, &checkpointed); err != nil || checkpointed != log {
					t.Fatalf("after the copy a checkpoint wrote %d of %d frames (%v): the pin outlived the copy", checkpointed, log, err)
				}
				return
			}
			liveCopy(t, brain, dst)
			if checkpointed != log || log == 0 {
				t.Fatalf("the unpinned control's checkpoint wrote %d of %d frames; it should have written them all", checkpointed, log)
			}
			if writes, err := snapshotConsistency(dst); err == nil {
				t.Fatalf("an unpinned copy with a checkpoint in the middle passed the checks (brain_writes %d): they cannot catch a torn copy", writes)
			} else {
				t.Logf("unpinned copy caught, as it must be: %v", err)
			}
		})
	}
}

// TestSnapshot_LiveCopyKeepsSQLiteLocks: SQLite's locks on the brain in this process are OFD
// locks (see snapshot_linux.go), so they survive the pinned copy's open and close of the file,
// and any other open and close of it in this process; POSIX locks would not.
func TestSnapshot_LiveCopyKeepsSQLiteLocks(t *testing.T) {
	if !sqlite.OFDLockingEnabled() {
		t.Fatalf("SQLite uses POSIX locks in this process (%v): the pinned file copy cannot run here", ofdErr)
	}
	brain := testBrain(t, 10)
	db, err := openBrain(brain)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	locks := func() (ofd, posix int) {
		t.Helper()
		fi, err := os.Stat(brain)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatalf("stat %s: no inode number in %T", brain, fi.Sys())
		}
		ino := ":" + strconv.FormatUint(st.Ino, 10)
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			// "1: OFDLCK ADVISORY READ -1 fd:01:1234567 1073741826 1073742335"
			f := strings.Fields(line)
			if len(f) < 6 || !strings.HasSuffix(f[5], ino) {
				continue
			}
			switch {
			case f[1] == "OFDLCK":
				ofd++
			case f[1] == "POSIX" && f[4] == strconv.Itoa(os.Getpid()):
				posix++
			}
		}
		return ofd, posix
	}
	if ofd, posix := locks(); ofd == 0 || posix != 0 {
		t.Fatalf("the open brain has %d OFD and %d POSIX locks of this process; want OFD locks only", ofd, posix)
	}
	liveCopy(t, brain, filepath.Join(t.TempDir(), "copy.sqlite"))
	f, err := os.Open(brain)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ofd, _ := locks(); ofd == 0 {
		t.Fatal("SQLite's locks on the brain did not survive closing other descriptors of it")
	}
}

// liveCopy copies the live brain to the new file dst with copyLiveFile, unpinned.
func liveCopy(t *testing.T, brain, dst string) {
	t.Helper()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = copyLiveFile(brain, out)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSnapshot_CopyOfAFileCutShortFailsCleanly: the pinned copy reads the brain through a memory
// map. Were the file cut short under it (SQLite cannot while the brain is pinned; something else
// could), the copy must fail with an error, from the write and from the hash alike, instead of
// crashing the process with SIGBUS.
func TestSnapshot_CopyOfAFileCutShortFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "brain.sqlite")
	if err := os.WriteFile(src, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 4<<20, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Munmap(m) }()
	if err := os.Truncate(src, 0); err != nil {
		t.Fatal(err)
	}

	chunks := make(chan []byte, 1)
	chunks <- m[1<<20 : 2<<20]
	close(chunks)
	if err := hashChunks(sha256.New(), chunks); err == nil {
		t.Fatal("hashing pages cut off the mapped file reported no error")
	} else {
		t.Logf("hash: %v", err)
	}

	out, err := os.Create(filepath.Join(dir, "copy.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := copyHashed(out, m); err == nil {
		t.Fatal("copying pages cut off the mapped file reported no error")
	} else {
		t.Logf("copy: %v", err)
	}
}

// TestSnapshot_StatusFollowsTheBytesWhateverTheMtime: the verification cache cannot be fooled
// by a file whose mtime is set back: original bytes put back read verified again (and can be
// used), and bytes swapped under an unchanged size and mtime read corrupt.
func TestSnapshot_StatusFollowsTheBytesWhateverTheMtime(t *testing.T) {
	e := newEnv(t)
	sn := e.snapshot("user-0001")
	path := e.srv.SnapshotPath(sn.ID)
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		t.Helper()
		var got api.Snapshot
		e.ok(e.do("GET", "/v1/snapshots/"+sn.ID, nil), 200, &got)
		return got.Status
	}
	// overwrite puts content in place and sets the mtime to at, as touch -r would.
	overwrite := func(content []byte, at time.Time) {
		t.Helper()
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	tampered := append([]byte(nil), original...)
	copy(tampered[4096:], "tampered")
	at := time.Now().Add(-time.Hour).Truncate(time.Second)

	overwrite(tampered, at)
	if got := status(); got != api.SnapshotCorrupt {
		t.Fatalf("tampered: %s, want corrupt", got)
	}
	overwrite(original, at)
	if got := status(); got != api.SnapshotVerified {
		t.Fatalf("original bytes restored with the same size and mtime: %s, want verified", got)
	}
	op := e.wait(e.startOp("/v1/engines/user-0001/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore from the repaired snapshot: %+v", op.Error)
	}
	overwrite(tampered, at)
	if got := status(); got != api.SnapshotCorrupt {
		t.Fatalf("tampered again under the same size and mtime: %s, want corrupt", got)
	}
	e.wantErr(e.do("POST", "/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}, idem()), 409, api.CodeSnapshotCorrupt)
}
