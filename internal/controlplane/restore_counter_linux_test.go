package controlplane

import "testing"

// The process runtime: the stand-in engine counts in the brain, the control plane reports it.
func TestProcess_restoreBringsBackTheWriteCounter(t *testing.T) {
	restoreBringsBackTheWriteCounter(t, newEnv(t, withProcess(t), withSeed(1, "2.3.1")))
}
