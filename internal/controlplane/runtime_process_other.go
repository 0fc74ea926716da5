//go:build !unix

package controlplane

import (
	"errors"
	"syscall"
)

var errNoProcessRuntime = errors.New("the process runtime needs a Unix system (process groups and signals); use the sim runtime here")

func engineSysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int, syscall.Signal) error { return errNoProcessRuntime }

func processAlive(int) bool { return false }

func processRuntimeSupported() error { return errNoProcessRuntime }
