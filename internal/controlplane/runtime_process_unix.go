//go:build unix

package controlplane

import "syscall"

// engineSysProcAttr puts an engine in its own process group, so a signal reaches everything it
// started, and (on Linux) asks the kernel to SIGKILL it if the control plane dies first.
func engineSysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(a)
	return a
}

// killGroup signals an engine's whole process group (its pid is the group id).
func killGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func processRuntimeSupported() error { return nil }
