//go:build !linux

package controlplane

import "os"

// The pinned file copy is Linux-only: elsewhere SQLite's database locks are POSIX record locks,
// which the close after copying the live database file would drop (see snapshot_linux.go);
// snapshots there use the online backup.
func liveCopyRefused() error { return errLiveCopyUnsupported }

func copyLiveFile(string, *os.File) (fileDigest, error) {
	return fileDigest{}, errLiveCopyUnsupported
}

// changeTimeAndInode is unknown here: the stamp is size and mtime only (see fileStamp).
func changeTimeAndInode(os.FileInfo) (int64, uint64) { return 0, 0 }
