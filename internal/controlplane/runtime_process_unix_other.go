//go:build unix && !linux

package controlplane

import "syscall"

// Only Linux has a parent-death signal; elsewhere Close and the start-up reaper (which reads
// /proc, so Linux too) are what stop engines.
func setParentDeathSignal(*syscall.SysProcAttr) {}
