package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
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
	cli := dockerDaemon(t)
	tag := randomTag()
	o.Runtime = controlplane.RuntimeDocker
	o.Docker = controlplane.DockerOptions{NamePrefix: "acc-" + tag + "-", Network: "engine_net_acc" + tag, RemoveOnClose: true,
		AdoptLabels: o.Docker.AdoptLabels}
	if requestedEngines == 0 {
		o.SeedEngines = 1
	}
	dockerApplied.Store(t, true)
	instance := controlplane.DockerInstance(o.DataDir)
	// Registered before newHarness's own cleanups, so it runs after the control plane closed.
	t.Cleanup(func() {
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

// dockerDaemon is a client of the local Docker daemon, closed when t ends, once the stand-in
// images of every catalog version are built. Without a daemon t is skipped, or failed under
// CI=true.
func dockerDaemon(t *testing.T) *dockerclient.Client {
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
	t.Cleanup(func() { cli.Close() })
	return cli
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

// A container started by hand (docker run: a name, environment, a network, a label, a
// bind-mounted brain directory) is adopted by a control plane started with that label, upgraded
// by an engine_release and rolled back by its destroy. Its name, environment, network, labels and
// restart policy survive both re-creations, its mount is untouched, its brain keeps its rows, and
// the control plane removes neither it nor its brain when it closes; the test then removes what
// it made by hand and checks, by the label, that nothing is left.
func TestAccDocker_releaseAdoptsADockerRunContainer(t *testing.T) {
	t.Parallel()
	cli := dockerDaemon(t)
	ctx := context.Background()
	tag := randomTag()
	name, netName, label := "acc-adopted-"+tag, "acc_adopt_net_"+tag, "acc-adopt="+tag
	brainDir := t.TempDir()
	if _, err := cli.NetworkCreate(ctx, netName, dockerclient.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	// Registered before the harness: runs once the control plane has closed.
	t.Cleanup(func() { adoptedLeftAsItWas(t, cli, name, netName, brainDir, label) })
	port := network.MustParsePort("8000/tcp")
	res, err := cli.ContainerCreate(ctx, dockerclient.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: "september-engine:2.3.0", Env: []string{"ENGINE_API_KEY=hand-made-key", "TEAM_SETTING=kept",
			"ENGINE_STANDIN_TIME_SCALE=0.01"}, Labels: map[string]string{"acc-adopt": tag, "team": "blue"}, ExposedPorts: network.PortSet{port: {}}},
		HostConfig: &container.HostConfig{Binds: []string{brainDir + ":/data"}, NetworkMode: container.NetworkMode(netName),
			PortBindings:  network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, res.ID, dockerclient.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitContainerHealthy(t, cli, name)

	h := newHarness(t, harnessOptions{Engines: -1, Runtime: controlplane.RuntimeDocker, AdoptLabels: []string{label}})
	h.writeTurns(name, "by-hand", 3)
	config := func(version string) string {
		return h.ProviderBlock() + fmt.Sprintf(`
resource "engine_release" "r" {
  user_id       = %q
  version       = %q
  auto_snapshot = true
}
`, name, version)
	}
	survived := func(version string) func(*terraform.State) error {
		return func(*terraform.State) error {
			return adoptedKept(cli, name, "september-engine:"+version, netName, brainDir, tag)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: config("2.3.0"),
			Check:  resource.ComposeTestCheckFunc(h.expectEngine(name, "2.3.0"), survived("2.3.0")),
		}, {
			Config: config("2.4.0"),
			Check:  resource.ComposeTestCheckFunc(h.expectEngine(name, "2.4.0"), survived("2.4.0"), h.expectTurns(name, "by-hand", 3)),
		}},
		CheckDestroy: resource.ComposeTestCheckFunc(
			h.expectEngine(name, "2.3.0"),
			survived("2.3.0"),
			h.expectTurns(name, "by-hand", 3),
			h.expectOperations(name, api.OpRestore, 1),
		),
	})
}

// waitContainerHealthy waits until the container's published port answers /health with 200.
func waitContainerHealthy(t *testing.T, cli *dockerclient.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		in, err := cli.ContainerInspect(context.Background(), name, dockerclient.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if bs := in.Container.NetworkSettings.Ports[network.MustParsePort("8000/tcp")]; len(bs) > 0 {
			if res, err := http.Get("http://127.0.0.1:" + bs[0].HostPort + "/health"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not turn healthy within 60s: %+v", name, in.Container.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// adoptedKept says what of the hand-made container name did not survive: it must run image, keep
// its environment, labels (and carry none of the control plane's), its one network, its
// bind-mounted brain directory at /data and its restart policy.
func adoptedKept(cli *dockerclient.Client, name, image, netName, brainDir, tag string) error {
	in, err := cli.ContainerInspect(context.Background(), name, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("the hand-made container %s: %w", name, err)
	}
	c := in.Container
	env := strings.Join(c.Config.Env, " ")
	switch {
	case c.Config.Image != image || !c.State.Running:
		return fmt.Errorf("container %s runs image %s (running %v), want %s running", name, c.Config.Image, c.State.Running, image)
	case !strings.Contains(env, "ENGINE_API_KEY=hand-made-key") || !strings.Contains(env, "TEAM_SETTING=kept"):
		return fmt.Errorf("container %s lost its environment: %v", name, c.Config.Env)
	case c.Config.Labels["team"] != "blue" || c.Config.Labels["acc-adopt"] != tag || c.Config.Labels[controlplane.LabelControlPlane] != "":
		return fmt.Errorf("container %s has labels %v, want its own (team=blue, acc-adopt=%s) and no %s", name, c.Config.Labels, tag,
			controlplane.LabelControlPlane)
	case len(c.NetworkSettings.Networks) != 1 || c.NetworkSettings.Networks[netName] == nil:
		return fmt.Errorf("container %s is on networks %v, want only %s", name, c.NetworkSettings.Networks, netName)
	case len(c.Mounts) != 1 || c.Mounts[0].Source != brainDir || c.Mounts[0].Destination != "/data":
		return fmt.Errorf("container %s has mounts %+v, want only %s at /data", name, c.Mounts, brainDir)
	case c.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped:
		return fmt.Errorf("container %s has restart policy %q, want unless-stopped", name, c.HostConfig.RestartPolicy.Name)
	}
	return nil
}

// adoptedLeftAsItWas runs once the control plane has closed: the hand-made container still runs
// with its brain in place (the control plane never removes what it did not create). It then
// removes the container and the network and checks that nothing carrying label is left; the
// brain directory goes with t's temporary directory.
func adoptedLeftAsItWas(t *testing.T, cli *dockerclient.Client, name, netName, brainDir, label string) {
	ctx := context.Background()
	if in, err := cli.ContainerInspect(ctx, name, dockerclient.ContainerInspectOptions{}); err != nil || !in.Container.State.Running {
		t.Errorf("closing the control plane stopped or removed the adopted container %s (%v)", name, err)
	}
	if _, err := os.Stat(brainDir + "/brain.sqlite"); err != nil {
		t.Errorf("the adopted container's brain is gone: %v", err)
	}
	if _, err := cli.ContainerRemove(ctx, name, dockerclient.ContainerRemoveOptions{Force: true}); err != nil {
		t.Errorf("remove the hand-made container %s: %v", name, err)
	}
	if _, err := cli.NetworkRemove(ctx, netName, dockerclient.NetworkRemoveOptions{}); err != nil {
		t.Errorf("remove the hand-made network %s: %v", netName, err)
	}
	f := dockerclient.Filters{}.Add("label", label)
	cs, err := cli.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: f})
	if err != nil || len(cs.Items) > 0 {
		t.Errorf("containers labelled %s left behind: %v (%v)", label, cs.Items, err)
	}
	if ns, err := cli.NetworkList(ctx, dockerclient.NetworkListOptions{Filters: dockerclient.Filters{}.Add("name", netName)}); err != nil || len(ns.Items) > 0 {
		t.Errorf("network %s left behind (%v)", netName, err)
	}
}
