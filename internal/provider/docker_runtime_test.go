package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	dockerclient "github.com/moby/moby/client"

	"github.com/septemberai/terraform-provider-engine/internal/api"

	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// The release, snapshot and canary acceptance tests run once more against the control plane's
// docker runtime: every engine a container of the stand-in image of its version (built by
// standinbuild.Images, as `make images` does), drained by docker stop, upgraded by a new
// container on the same bind-mounted brain. The wrappers run the existing test functions
// unchanged, as the process runtime's do. Without a Docker daemon they are skipped, except under
// CI=true, where that is a failure.

// dockerTests marks the *testing.T of tests run by a TestAccDocker_* wrapper; dockerApplied those
// whose harness really got the docker runtime.
var dockerTests, dockerApplied sync.Map

// dockerRuntime sets a harness's control plane on the docker runtime, under a container name
// prefix and a network of its own, removing what it created when it closes; a cleanup then
// checks, by label, that no container or network was left.
func dockerRuntime(t *testing.T, requestedEngines int, o *controlplane.Options) {
	t.Helper()
	if goruntime.GOOS != "linux" {
		t.Skip("the docker runtime tests run on Linux")
	}
	cli, err := dockerclient.New(dockerclient.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx, dockerclient.PingOptions{NegotiateAPIVersion: true})
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no Docker daemon answers (%v): the docker runtime's acceptance tests need one", err)
		}
		t.Skipf("no Docker daemon answers (%v): the docker runtime's acceptance tests need one", err)
	}
	var vs []string
	for _, v := range controlplane.DefaultCatalog() {
		vs = append(vs, v.Version)
	}
	if err := standinbuild.Images("../..", vs); err != nil {
		t.Fatal(err)
	}
	tag := randomTag()
	o.Runtime = controlplane.RuntimeDocker
	o.Docker = controlplane.DockerOptions{NamePrefix: "acc-" + tag + "-", Network: "engine_net_acc" + tag, RemoveOnClose: true}
	if requestedEngines == 0 {
		o.SeedEngines = 1
	}
	dockerApplied.Store(t, true)
	instance := controlplane.DockerInstance(o.DataDir)
	// Registered before newHarness's own cleanups, so it runs after the control plane closed.
	t.Cleanup(func() {
		defer cli.Close()
		f := dockerclient.Filters{}.Add("label", controlplane.LabelControlPlane+"="+instance)
		cs, err := cli.ContainerList(context.Background(), dockerclient.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			t.Errorf("list containers: %v", err)
			return
		}
		ns, _ := cli.NetworkList(context.Background(), dockerclient.NetworkListOptions{Filters: f})
		if len(cs.Items) > 0 || len(ns.Items) > 0 {
			_ = controlplane.RemoveDockerResources(context.Background(), cli, instance)
			t.Errorf("containers (%d) or networks (%d) labelled %s=%s outlived the control plane", len(cs.Items), len(ns.Items), controlplane.LabelControlPlane, instance)
		}
	})
}

// runOnDocker runs each test function as a subtest whose harness uses the docker runtime.
func runOnDocker(t *testing.T, tests map[string]func(*testing.T)) {
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			dockerTests.Store(t, true)
			t.Cleanup(func() { dockerTests.Delete(t); dockerApplied.Delete(t) })
			f(t)
			if _, ok := dockerApplied.Load(t); !ok && !t.Skipped() {
				t.Error("the test never started a harness on the docker runtime")
			}
		})
	}
}

func TestAccDocker_release(t *testing.T) {
	t.Parallel()
	runOnDocker(t, map[string]func(*testing.T){
		"snapshotIDUpgradeKeepsData": TestAccRelease_snapshotIDUpgradeKeepsData,
		"rollbackOnDestroy":          TestAccRelease_rollbackOnDestroy,
		"evalGateRollsBack":          TestAccRelease_evalGateRollsBack,
		"killMidMigrationRollsBack":  testAccReleaseKillMidMigrationRollsBack,
	})
}

func TestAccDocker_brainSnapshot(t *testing.T) {
	t.Parallel()
	runOnDocker(t, map[string]func(*testing.T){
		"basic": TestAccBrainSnapshot_basic,
	})
}

// An aborted 2.4.1 canary over ten containers. On real engines the analysis judges the turns
// they served, so traffic runs through the control plane to every engine during the canary; the
// 2.4.1 stand-in fails 8% of its turns, above max_error_rate 0.05 within the 2s window. The moved
// engine is restored from its snapshot, every brain keeps its rows.
func TestAccDocker_canaryAbortsOverTenContainers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 10, Runtime: controlplane.RuntimeDocker})
	users := seedUsers(10)
	turns := h.writeFleetTurns(users, 2)
	stop := backgroundTraffic(h, users)
	t.Cleanup(stop)
	cfg := canaryHCL(h, 10, "2.4.1", `
  steps     = [10, 50, 100]
  mode      = "auto"
  bake_time = "3s"
  analysis  = { max_error_rate = 0.05, window = "2s" }
`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      cfg,
			ExpectError: regexp.MustCompile(`(?s)Canary Aborted.*aborted at the 10% step.*error_rate.*max_error_rate 0\.05`),
		}, {
			PreConfig: func() {
				stop()
				expectFirstStepRolledBack(t, h, users, turns)
			},
			RefreshState:       true,
			ExpectNonEmptyPlan: true,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr(canaryAddr, "phase", "aborted"),
				resource.TestCheckResourceAttr(canaryAddr, "last_abort.cause", "analysis_failed"),
				resource.TestCheckResourceAttr(canaryAddr, "last_abort.rolled_back", "true"),
				resource.TestCheckResourceAttr(canaryAddr, "moved_user_ids.#", "0"),
			),
		}},
	})
}

// backgroundTraffic sends turns to every engine through the control plane until stop is called
// (turns refused while an engine drains or boots are expected and ignored).
func backgroundTraffic(h *harness, users []string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = h.Client.WriteTurns(ctx, u, api.TurnsRequest{Count: 5, Content: "background traffic"})
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// randomTag keeps the names of parallel tests' containers and networks apart.
func randomTag() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
