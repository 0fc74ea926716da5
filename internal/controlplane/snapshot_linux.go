package controlplane

import (
	"fmt"
	"os"
	"syscall"

	"modernc.org/sqlite"
)

// ofdErr is why SQLite could not be switched to OFD locks in this process, if it could not.
var ofdErr error

// SQLite takes POSIX record locks on a database file by default, and a POSIX lock belongs to the
// process: a close(2) of any descriptor of the file anywhere in the process drops every lock the
// process holds on it. An os.Open and Close of a live brain (a snapshot's file copy, a hash, a
// test helper) would then silently release the locks of every SQLite connection of this process
// on it, and an engine process closing its last connection could checkpoint and delete the WAL
// under them. Open file description (OFD) locks belong to the descriptor they were taken through
// and survive such a close; modernc.org/sqlite switches its database-file locks to them for the
// whole process, which can only be done before the process locks its first database file: here,
// at initialization. The WAL's -shm locks stay POSIX locks, and nothing here opens a -shm file.
// Where OFD locks are unavailable (kernels before 3.15, filesystems that refuse them), SQLite
// keeps POSIX locks and snapshots use the online backup instead of a file copy.
func init() {
	if _, err := sqlite.OFDLocking(true); err != nil {
		ofdErr = err
	}
}

// liveCopyRefused says why a live database file cannot be copied in this process, or nil when
// it can: SQLite's database locks here must be OFD locks.
func liveCopyRefused() error {
	if sqlite.OFDLockingEnabled() {
		return nil
	}
	why := "the kernel or the filesystem refused OFD locks"
	if ofdErr != nil {
		why = ofdErr.Error()
	}
	return fmt.Errorf("%w: SQLite's database locks in this process are POSIX locks, which closing the copied file would drop (%s)", errLiveCopyUnsupported, why)
}

// copyLiveFile copies src, a database file that SQLite connections of this process may hold
// open and locked, into out (a new, empty file) with copyHashed, and returns out's sha256 and
// size. It refuses unless SQLite's locks in this process are OFD locks, which the close of src
// cannot drop (see init above). The file must not change while it is copied (the caller pins
// it). It is mapped whole: where the address space cannot hold it (a brain of gigabytes on a
// 32-bit system) the mapping fails and the snapshot falls back to the online backup.
func copyLiveFile(src string, out *os.File) (fileDigest, error) {
	if err := liveCopyRefused(); err != nil {
		return fileDigest{}, err
	}
	in, err := os.Open(src)
	if err != nil {
		return fileDigest{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fileDigest{}, err
	}
	if fi.Size() == 0 || int64(int(fi.Size())) != fi.Size() {
		return fileDigest{}, fmt.Errorf("%s is %d bytes: it cannot be mapped to be copied", fi.Name(), fi.Size())
	}
	m, err := syscall.Mmap(int(in.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fileDigest{}, fmt.Errorf("map %s to copy it: %w", fi.Name(), err)
	}
	defer func() { _ = syscall.Munmap(m) }()
	return copyHashed(out, m)
}

// changeTimeAndInode reads the status-change time and inode of a file (see fileStamp).
func changeTimeAndInode(fi os.FileInfo) (int64, uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Ctim.Nano(), st.Ino
}
