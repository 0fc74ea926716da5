//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || riscv64 || s390x)

package controlplane

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writing back the dirty pages of the range
// that are not under writeback yet, and do not wait.
const syncFileRangeWrite = 2

// writeBehind starts writing n bytes of f at off back to disk, without waiting for them, with
// sync_file_range(2). Unlike an fsync it neither waits nor forces a journal commit, which would
// hold up the writes still to come; the fsync that seals the file then finds little left to do.
// (These are the 64-bit targets, where the call takes its offsets in single registers.)
func writeBehind(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
