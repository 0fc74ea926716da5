package provider

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// The release and snapshot acceptance tests run a second time against the control plane's
// process runtime: every engine a real stand-in Engine process, with real boots, SIGTERM drains,
// migrations run by the booting process and snapshots taken while it holds the brain open.
// The wrappers below run the existing test functions unchanged; newHarness asks
// processRuntime which runtime the test it serves wants.

// processTests marks the *testing.T of tests run by a TestAccProcess_* wrapper; processApplied
// those whose harness really got the process runtime.
var processTests, processApplied sync.Map

// processRuntime sets the control plane options of a harness for the process runtime when the
// test asked for it (harnessOptions.Runtime) or a wrapper runs it. requestedEngines is the
// test's harnessOptions.Engines before defaults: 0 seeds one engine process, not three.
func processRuntime(t *testing.T, runtime string, requestedEngines int, o *controlplane.Options) {
	t.Helper()
	if _, wrapped := processTests.Load(t); runtime == "" && wrapped {
		runtime = controlplane.RuntimeProcess
	}
	if _, wrapped := dockerTests.Load(t); runtime == "" && wrapped {
		runtime = controlplane.RuntimeDocker
	}
	switch runtime {
	case "", controlplane.RuntimeSim:
		return
	case controlplane.RuntimeProcess:
	case controlplane.RuntimeDocker:
		dockerRuntime(t, requestedEngines, o)
		return
	default:
		t.Fatalf("harnessOptions.Runtime %q: use \"\", %q, %q or %q", runtime, controlplane.RuntimeSim, controlplane.RuntimeProcess, controlplane.RuntimeDocker)
	}
	if goruntime.GOOS != "linux" {
		// The runtime needs process groups and a parent-death signal, and the checks read /proc.
		t.Skip("the process runtime tests run on Linux")
	}
	cmd, err := standinbuild.Command()
	if err != nil {
		t.Fatalf("build the stand-in Engine: %v", err)
	}
	o.Runtime, o.EngineCommand = controlplane.RuntimeProcess, cmd
	processApplied.Store(t, true)
	if requestedEngines == 0 {
		o.SeedEngines = 1
	}
	dir := o.DataDir
	// Registered before newHarness's own cleanups, so it runs after the control plane closed.
	t.Cleanup(func() {
		if left := enginePIDs(dir); len(left) > 0 {
			t.Errorf("engine processes outlived the control plane: %v", left)
		}
	})
}

// enginePIDs lists the live engine processes of the control plane over dataDir.
func enginePIDs(dataDir string) []int { return standinbuild.EnginePIDs(dataDir) }

// runOnProcesses runs each test function as a subtest whose harness uses the process runtime.
func runOnProcesses(t *testing.T, tests map[string]func(*testing.T)) {
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			processTests.Store(t, true)
			t.Cleanup(func() { processTests.Delete(t); processApplied.Delete(t) })
			f(t)
			if _, ok := processApplied.Load(t); !ok {
				t.Error("the test never started a harness on the process runtime")
			}
		})
	}
}

func TestAccProcess_release(t *testing.T) {
	t.Parallel()
	runOnProcesses(t, map[string]func(*testing.T){
		"patchNeedsNoSnapshot":       TestAccRelease_patchNeedsNoSnapshot,
		"snapshotIDUpgradeKeepsData": TestAccRelease_snapshotIDUpgradeKeepsData,
		"autoSnapshot":               TestAccRelease_autoSnapshot,
		"majorNeedsAllow":            TestAccRelease_majorNeedsAllow,
		"rollbackOnDestroy":          TestAccRelease_rollbackOnDestroy,
		"evalGateRollsBack":          TestAccRelease_evalGateRollsBack,
		"killMidMigrationRollsBack":  testAccReleaseKillMidMigrationRollsBack,
	})
}

func TestAccProcess_brainSnapshot(t *testing.T) {
	t.Parallel()
	runOnProcesses(t, map[string]func(*testing.T){
		"basic":                  TestAccBrainSnapshot_basic,
		"import":                 TestAccBrainSnapshot_import,
		"disappears":             TestAccBrainSnapshot_disappears,
		"retentionBlocksDestroy": TestAccBrainSnapshot_retentionBlocksDestroy,
		"updateRetentionInPlace": TestAccBrainSnapshot_updateRetentionInPlace,
		"corrupt":                TestAccBrainSnapshot_corrupt,
	})
}

// A process (or container) killed mid-migration fails closed (engine failed, brain dirty, no
// half-applied tables), and engine_release's automatic rollback restores the pre-upgrade snapshot
// and brings 2.3.1 back healthy on a new process (the old container, restarted), with the brain's
// turns.
func testAccReleaseKillMidMigrationRollsBack(t *testing.T) {
	t.Parallel()
	// The wrapper's runtime: process (TestAccProcess_release) or docker (TestAccDocker_release).
	h := newHarness(t, harnessOptions{Version: "2.3.1", Faults: true})
	h.writeTurns("user-0001", "before-upgrade", 3)
	ctx := context.Background()
	pidBefore, _, _, _ := h.Server.EngineProcess("user-0001")
	if _, err := h.Client.AddFault(ctx, api.Fault{Kind: api.FaultProcessKill, UserID: "user-0001", Version: "2.4.0"}); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: h.releaseConfig(`
  version       = "2.3.1"`),
		}, {
			Config: h.releaseConfig(`
  version       = "2.4.0"
  auto_snapshot = true
  auto_rollback = true`),
			ExpectError: errorLike("Engine Upgrade Rolled Back"),
		}, {
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				h.expectEngine("user-0001", "2.3.1"),
				h.expectTurns("user-0001", "before-upgrade", 3),
				h.expectOperations("user-0001", api.OpRestore, 1),
				resource.TestCheckResourceAttr(releaseAddr, "last_attempt.status", "rolled_back"),
				resource.TestMatchResourceAttr(releaseAddr, "last_attempt.error", errorLike("killed with SIGKILL")),
				func(*terraform.State) error {
					faults, err := h.Client.Faults(ctx)
					if err != nil {
						return err
					}
					if len(faults) != 1 || faults[0].Fired != 1 {
						return fmt.Errorf("process_kill fired %+v, want once", faults)
					}
					pid, _, _, ok := h.Server.EngineProcess("user-0001")
					if !ok || pid == pidBefore {
						return fmt.Errorf("2.3.1 is not running on a new process (pid %d, before %d, running %v)", pid, pidBefore, ok)
					}
					schema, dirty, err := controlplane.BrainSchema(h.Server.BrainPath("user-0001"))
					if err != nil || schema != 4 || dirty {
						return fmt.Errorf("brain after rollback: schema %d dirty %v, want 4 clean: %w", schema, dirty, err)
					}
					return nil
				},
			),
		}},
	})
}
