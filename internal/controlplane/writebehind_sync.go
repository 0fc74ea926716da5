//go:build !(linux && (amd64 || arm64 || loong64 || mips64 || mips64le || riscv64 || s390x))

package controlplane

import "os"

// writeBehind makes what was written of f so far durable; without sync_file_range(2) (see
// writebehind_sfr.go) an fsync from the write-behind goroutine is the way to start the disk on
// the copy early.
func writeBehind(f *os.File, _, n int64) error {
	if n <= 0 {
		return nil
	}
	return f.Sync()
}
