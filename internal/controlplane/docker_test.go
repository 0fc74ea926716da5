//go:build linux

package controlplane

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
)

// dockerClient is a client of the local Docker daemon for the docker runtime's tests. Without a
// daemon they are skipped, except under CI=true, where a missing daemon fails them.
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no Docker daemon answers (%v): the docker runtime's tests need one", err)
		}
		t.Skipf("no Docker daemon answers (%v): the docker runtime's tests need one", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// dockerImages builds the stand-in image of every default catalog version once per test binary.
func dockerImages(t testing.TB) {
	t.Helper()
	var vs []string
	for _, v := range DefaultCatalog() {
		vs = append(vs, v.Version)
	}
	if err := standinbuild.Images("../..", vs); err != nil {
		t.Fatal(err)
	}
}

// withDocker runs the engines as containers of the stand-in images, under a container name
// prefix and a network of the test's own. Once the control plane has closed, nothing carrying
// its label may be left: no container, no network.
func withDocker(t *testing.T, more ...func(*DockerOptions)) envOption {
	t.Helper()
	cli := dockerClient(t)
	dockerImages(t)
	tag := randomHex(4)
	var dir string
	t.Cleanup(func() {
		if dir != "" {
			noDockerLeft(t, cli, DockerInstance(dir))
		}
	})
	return func(o *Options) {
		dir = o.DataDir
		o.Runtime = RuntimeDocker
		o.Docker = DockerOptions{NamePrefix: "cpt-" + tag + "-", Network: "engine_net_t" + tag, RemoveOnClose: true}
		for _, f := range more {
			f(&o.Docker)
		}
	}
}

// noDockerLeft fails when a container or network carrying instance's label remains.
func noDockerLeft(t testing.TB, cli *client.Client, instance string) {
	t.Helper()
	f := client.Filters{}.Add("label", LabelControlPlane+"="+instance)
	cs, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(context.Background(), client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Items) > 0 || len(ns.Items) > 0 {
		_ = RemoveDockerResources(context.Background(), cli, instance)
		t.Errorf("left behind by the control plane (label %s=%s): %d containers, %d networks", LabelControlPlane, instance, len(cs.Items), len(ns.Items))
	}
}

// inspectEngine inspects user's engine container.
func (e *env) inspectEngine(cli *client.Client, name string) container.InspectResponse {
	e.t.Helper()
	in, err := cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("inspect container %s: %v", name, err)
	}
	return in.Container
}

func (e *env) containerName(user string) string {
	r, ok := e.srv.rt.(*dockerRuntime)
	if !ok {
		e.t.Fatalf("the control plane runs %s, not docker", e.srv.Runtime())
	}
	return r.containerName(user)
}

func TestDocker_upgradeSnapshotAndRollbackOnContainers(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	e := newEnv(t, withDocker(t), withSeed(1, "2.3.1"))
	name := e.containerName("user-0001")
	before := e.inspectEngine(cli, name)
	if before.Config.Labels[LabelVersion] != "2.3.1" || before.Config.Labels[LabelUserID] != "user-0001" ||
		before.Config.Labels[LabelManagedBy] != managedByValue || before.Config.Image != "september-engine:2.3.1" {
		t.Fatalf("seeded container: image %s labels %v", before.Config.Image, before.Config.Labels)
	}
	for _, kv := range before.Config.Env {
		if strings.Contains(kv, testKey) {
			t.Fatalf("the control plane's admin key reached the container's environment: %q", kv)
		}
	}
	if before.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Fatalf("restart policy %q once healthy, want unless-stopped", before.HostConfig.RestartPolicy.Name)
	}
	if tr := e.turns("user-0001", 4, "before"); tr.Written != 4 || tr.BrainWrites != 4 {
		t.Fatalf("turns through the container: %+v", tr)
	}
	sn := e.snapshot("user-0001")
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	after := e.inspectEngine(cli, name)
	if after.ID == before.ID || after.Config.Image != "september-engine:2.4.0" || after.Config.Labels[LabelVersion] != "2.4.0" || !after.State.Running {
		t.Fatalf("after the upgrade: container %s image %s labels %v", after.ID, after.Config.Image, after.Config.Labels)
	}
	if _, err := cli.ContainerInspect(context.Background(), before.ID, client.ContainerInspectOptions{}); err == nil {
		t.Fatalf("the previous container %s was not removed after the upgrade succeeded", before.ID)
	}
	if en := e.engine("user-0001"); en.EngineVersion != "2.4.0" || en.SchemaVersion != 5 || en.Status != api.StatusRunning {
		t.Fatalf("engine after the upgrade: %+v", en)
	}
	if got := e.turnContents("user-0001"); len(got) != 4 {
		t.Fatalf("brain rows after the upgrade: %v", got)
	}
	op = e.wait(e.startOp("/v1/engines/user-0001/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("restore: %+v", op.Error)
	}
	back := e.inspectEngine(cli, name)
	if back.Config.Image != "september-engine:2.3.1" || !back.State.Running {
		t.Fatalf("after the restore: image %s running %v", back.Config.Image, back.State.Running)
	}
	if en := e.engine("user-0001"); en.EngineVersion != "2.3.1" || en.SchemaVersion != 4 {
		t.Fatalf("engine after the restore: %+v", en)
	}
	if got := e.turnContents("user-0001"); !slices.Equal(got, []string{"before", "before", "before", "before"}) {
		t.Fatalf("brain rows after the restore: %v", got)
	}
}

// waitContainerLog waits until the container's output contains text.
func waitContainerLog(t *testing.T, cli *client.Client, name, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rc, err := cli.ContainerLogs(context.Background(), name, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
		if err == nil {
			var b strings.Builder
			_, _ = stdcopy.StdCopy(&b, &b, rc)
			rc.Close()
			if strings.Contains(b.String(), text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s never logged %s", name, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Drain is real: docker stop sends SIGTERM, the turn in flight completes, new turns get 503
// (from the control plane and from the draining Engine itself), and the container exits 0.
func TestDocker_drainFinishesInFlightAndRefusesNew(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	e := newEnv(t, withDocker(t), withSeed(1, "2.3.0"))
	name := e.containerName("user-0001")
	inflight := make(chan int, 1)
	go func() {
		c, _ := e.engineTurn("user-0001", EngineTurnRequest{Count: 1, Content: "in flight", DelayMS: 3000})
		inflight <- c
	}()
	waitContainerLog(t, cli, name, `"delay_ms":3000`)
	op := e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 3600})
	e.waitStatus("user-0001", api.StatusDraining)
	if r := e.do("POST", "/v1/engines/user-0001/turns", api.TurnsRequest{Count: 1, Content: "refused by the control plane"}); r.status != 503 {
		t.Fatalf("turn through the control plane during the drain: %d", r.status)
	}
	waitContainerLog(t, cli, name, `"message":"draining on terminated"`)
	if c, eb := e.engineTurn("user-0001", EngineTurnRequest{Count: 1, Content: "refused by the engine"}); c != 503 || eb.Error.Code != api.CodeEngineUnavailable {
		t.Fatalf("turn straight to the draining container: %d %+v, want 503", c, eb)
	}
	if c := <-inflight; c != 200 {
		t.Fatalf("in-flight turn: %d, want 200", c)
	}
	op = e.wait(op)
	if op.Status != api.OpSucceeded || !strings.Contains(step(op, api.StepDrain).Message, "in-flight turns finished and it exited (exit code 0)") {
		t.Fatalf("upgrade: %+v", op)
	}
	if got := e.turnContents("user-0001"); !slices.Equal(got, []string{"in flight"}) {
		t.Fatalf("brain turns: %v, want only the in-flight one", got)
	}
}

// An image that ignores SIGTERM is killed after the grace, and the operation says so.
func TestDocker_ignoreSIGTERMIsKilledAfterGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDocker(t), withFaults, withSeed(0, "2.3.0"))
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultIgnoreSIGTERM, UserID: "user-0009"}), 201, nil)
	if err := e.srv.CreateEngine("user-0009", "2.3.0"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	op := e.wait(e.startOp("/v1/engines/user-0009/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 1}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade: %+v", op.Error)
	}
	if msg := step(op, api.StepStop).Message; !strings.Contains(msg, "ignored SIGTERM for 1s; killed with SIGKILL after the grace period") {
		t.Fatalf("stop step does not say the container was killed: %q", msg)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the upgrade took %s: the 1s grace was not given", took)
	}
	if en := e.engine("user-0009"); en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning {
		t.Fatalf("engine after the upgrade: %+v", en)
	}
}

// docker kill during the migration fails closed (engine failed, brain dirty); the previous
// container was kept stopped, and restoring the snapshot at the old version restarts it.
func TestDocker_killMidMigrationFailsClosedAndRollbackRestartsTheOldContainer(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	e := newEnv(t, withDocker(t), withFaults, withSeed(1, "2.3.1"))
	name := e.containerName("user-0001")
	old := e.inspectEngine(cli, name)
	e.turns("user-0001", 3, "kept")
	sn := e.snapshot("user-0001")
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultProcessKill, UserID: "user-0001"}), 201, nil)
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeMigrationFailed || !strings.Contains(op.Error.Message, "killed with SIGKILL") {
		t.Fatalf("upgrade with docker kill mid-migration: %+v %+v", op.Status, op.Error)
	}
	if en := e.engine("user-0001"); en.Status != api.StatusFailed || en.Error == nil || en.Error.Code != api.CodeMigrationFailed {
		t.Fatalf("engine after the kill: %+v", en)
	}
	if _, dirty, _ := brainSchema(e.srv.BrainPath("user-0001")); !dirty {
		t.Fatal("the brain is not marked dirty after a kill mid-migration")
	}
	kept := e.inspectEngine(cli, name+previousSuffix)
	if kept.ID != old.ID || kept.State.Running {
		t.Fatalf("the previous container was not kept stopped: %s running %v", kept.ID, kept.State.Running)
	}
	op = e.wait(e.startOp("/v1/engines/user-0001/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.1"}))
	if op.Status != api.OpSucceeded || !strings.Contains(step(op, api.StepBoot).Message, "previous container restarted (image rollback)") {
		t.Fatalf("restore: %+v %+v", op.Error, op.Steps)
	}
	back := e.inspectEngine(cli, name)
	if back.ID != old.ID || !back.State.Running || back.Config.Image != "september-engine:2.3.1" {
		t.Fatalf("after the rollback: container %s (old %s) running %v image %s", back.ID, old.ID, back.State.Running, back.Config.Image)
	}
	if got := e.turnContents("user-0001"); len(got) != 3 {
		t.Fatalf("brain rows after the rollback: %v", got)
	}
}

// A version whose image is missing is refused with IMAGE_NOT_FOUND naming the image, before
// anything is stopped.
func TestDocker_missingImageStopsNothing(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	missing := "september-engine:missing-" + randomHex(4)
	e := newEnv(t, withDocker(t, func(d *DockerOptions) { d.Images = map[string]string{"2.3.1": missing} }), withSeed(1, "2.3.0"))
	before := e.inspectEngine(cli, e.containerName("user-0001"))
	r := e.do("POST", "/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1"}, "Idempotency-Key", idem())
	d := e.wantErr(r, 409, api.CodeImageNotFound)
	if !strings.Contains(d.Message, missing) || !strings.Contains(d.Message, "nothing was stopped") {
		t.Fatalf("IMAGE_NOT_FOUND message does not name the image: %q", d.Message)
	}
	after := e.inspectEngine(cli, e.containerName("user-0001"))
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt || !after.State.Running {
		t.Fatalf("the container changed: %s started %s (before %s %s)", after.ID, after.State.StartedAt, before.ID, before.State.StartedAt)
	}
	if en := e.engine("user-0001"); en.Status != api.StatusRunning || en.EngineVersion != "2.3.0" {
		t.Fatalf("engine: %+v", en)
	}
}

// A container that crashes after it was healthy fails its engine (and is stopped, not left to
// restart in a loop).
func TestDocker_crashFailsTheEngine(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	e := newEnv(t, withDocker(t), withSeed(1, "2.3.0"))
	name := e.containerName("user-0001")
	if _, err := cli.ContainerKill(context.Background(), name, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	en := e.waitStatus("user-0001", api.StatusFailed)
	if en.Error == nil || !strings.Contains(en.Error.Message, "stopped unexpectedly") {
		t.Fatalf("engine after docker kill: %+v", en.Error)
	}
}

// A container started by hand (docker run: a name, environment, a network, a label, a
// bind-mounted brain) is adopted, upgraded and rolled back: its name, environment, network and
// labels survive, its mount is untouched, and the control plane removes neither it nor its brain.
func TestDocker_adoptsADockerRunContainer(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	dockerImages(t)
	ctx := context.Background()
	tag := randomHex(4)
	name, netName, brainDir := "adopted-"+tag, "adopt_net_"+tag, t.TempDir()
	if _, err := cli.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.NetworkRemove(ctx, netName, client.NetworkRemoveOptions{}) })
	port := network.MustParsePort("8000/tcp")
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: "september-engine:2.3.0", Env: []string{"ENGINE_API_KEY=hand-made-key", "TEAM_SETTING=kept", "ENGINE_STANDIN_TIME_SCALE=0.01"},
			Labels: map[string]string{"adopt-test": tag, "team": "blue"}, ExposedPorts: network.PortSet{port: struct{}{}}},
		HostConfig: &container.HostConfig{Binds: []string{brainDir + ":/data"}, NetworkMode: container.NetworkMode(netName),
			PortBindings:  network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}) })
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitContainerLog(t, cli, name, `"message":"healthy"`)

	e := newEnv(t, withDocker(t, func(d *DockerOptions) { d.AdoptLabels = []string{"adopt-test=" + tag} }), withSeed(0, "2.3.0"))
	if en := e.engine(name); en.EngineVersion != "2.3.0" || en.Status != api.StatusRunning || en.SchemaVersion != 4 {
		t.Fatalf("adopted engine: %+v %+v", en, en.Error)
	}
	if got := e.srv.BrainPath(name); got != brainDir+"/brain.sqlite" {
		t.Fatalf("adopted brain at %s, want the bind mount's %s/brain.sqlite", got, brainDir)
	}
	if tr := e.turns(name, 2, "by hand"); tr.Written != 2 {
		t.Fatalf("turns through the adopted container (its ENGINE_API_KEY): %+v", tr)
	}
	survived := func(what string, wantImage string) {
		t.Helper()
		c := e.inspectEngine(cli, name)
		env := strings.Join(c.Config.Env, " ")
		switch {
		case c.Config.Image != wantImage || !c.State.Running:
			t.Fatalf("%s: image %s running %v, want %s", what, c.Config.Image, c.State.Running, wantImage)
		case !strings.Contains(env, "ENGINE_API_KEY=hand-made-key") || !strings.Contains(env, "TEAM_SETTING=kept"):
			t.Fatalf("%s: environment lost: %v", what, c.Config.Env)
		case !strings.Contains(env, "ENGINE_VERSION="+strings.TrimPrefix(wantImage, "september-engine:")):
			t.Fatalf("%s: the old image's ENGINE_VERSION was copied over the new image's: %v", what, c.Config.Env)
		case c.Config.Labels["team"] != "blue" || c.Config.Labels["adopt-test"] != tag || c.Config.Labels[LabelControlPlane] != "":
			t.Fatalf("%s: labels %v", what, c.Config.Labels)
		case c.NetworkSettings.Networks[netName] == nil || len(c.NetworkSettings.Networks) != 1:
			t.Fatalf("%s: networks %v, want only %s", what, c.NetworkSettings.Networks, netName)
		case len(c.Mounts) != 1 || c.Mounts[0].Source != brainDir || c.Mounts[0].Destination != "/data":
			t.Fatalf("%s: mounts %+v", what, c.Mounts)
		case c.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped:
			t.Fatalf("%s: restart policy %q", what, c.HostConfig.RestartPolicy.Name)
		}
	}
	sn := e.snapshot(name)
	op := e.wait(e.startOp("/v1/engines/"+name+"/upgrade", api.UpgradeRequest{Version: "2.4.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade of the adopted container: %+v", op.Error)
	}
	survived("after the upgrade", "september-engine:2.4.0")
	op = e.wait(e.startOp("/v1/engines/"+name+"/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("rollback of the adopted container: %+v", op.Error)
	}
	survived("after the rollback", "september-engine:2.3.0")
	if got := e.turnContents(name); !slices.Equal(got, []string{"by hand", "by hand"}) {
		t.Fatalf("brain rows after the rollback: %v", got)
	}
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if c := e.inspectEngine(cli, name); !c.State.Running {
		t.Fatal("closing the control plane stopped or removed the adopted container")
	}
	if _, err := os.Stat(brainDir + "/brain.sqlite"); err != nil {
		t.Fatalf("the adopted brain is gone: %v", err)
	}
}

// A control plane restarted while its containers run adopts them as they are: same containers,
// not restarted, still serving turns.
func TestDocker_restartReadoptsAndRestartsNone(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	dockerImages(t)
	dir, tag := t.TempDir(), randomHex(4)
	opts := Options{DataDir: dir, APIKey: testKey, SeedEngines: 2, SeedVersion: "2.3.0", SeedBrainRows: 5, TimeScale: 0.001, Runtime: RuntimeDocker,
		Docker: DockerOptions{NamePrefix: "cpt-" + tag + "-", Network: "engine_net_t" + tag}}
	t.Cleanup(func() { noDockerLeft(t, cli, DockerInstance(dir)) })
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := first.rt.(*dockerRuntime)
	if !ok {
		t.Fatalf("the control plane runs %s, not docker", first.Runtime())
	}
	before := map[string]container.InspectResponse{}
	for _, u := range []string{"user-0001", "user-0002"} {
		in, err := cli.ContainerInspect(context.Background(), r.containerName(u), client.ContainerInspectOptions{})
		if err != nil {
			first.Close()
			t.Fatal(err)
		}
		before[u] = in.Container
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Docker.RemoveOnClose = true
	e := newEnv(t, func(o *Options) { *o = opts })
	for u, b := range before {
		now := e.inspectEngine(cli, b.Name[1:])
		if now.ID != b.ID || now.State.StartedAt != b.State.StartedAt || now.RestartCount != 0 || !now.State.Running {
			t.Fatalf("%s's container after the restart: %s started %s restarts %d (before %s started %s)", u, now.ID, now.State.StartedAt, now.RestartCount, b.ID, b.State.StartedAt)
		}
		if en := e.engine(u); en.Status != api.StatusRunning {
			t.Fatalf("%s after the restart: %+v", u, en)
		}
		if tr := e.turns(u, 1, "after restart"); tr.Written != 1 {
			t.Fatalf("turns on the re-adopted %s: %+v", u, tr)
		}
	}
}

// An image that never turns healthy fails the upgrade (HEALTH_CHECK_FAILED); its container is
// removed, the previous one was kept stopped, and rolling back restarts it.
func TestDocker_neverHealthyImageFailsAndRollbackRestartsTheOldContainer(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	e := newEnv(t, withDocker(t), withFaults, withSeed(1, "2.3.0"))
	name := e.containerName("user-0001")
	old := e.inspectEngine(cli, name)
	sn := e.snapshot("user-0001")
	e.ok(e.do("POST", "/v1/faults", api.Fault{Kind: api.FaultHealthNeverOK, UserID: "user-0001", Version: "2.3.1"}), 201, nil)
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1", HealthTimeoutSeconds: 2}))
	if op.Status != api.OpFailed || op.Error.Code != api.CodeHealthCheckFailed || !strings.Contains(op.Error.Message, "never reported healthy") {
		t.Fatalf("upgrade to a never-healthy image: %+v %+v", op.Status, op.Error)
	}
	if kept := e.inspectEngine(cli, name+previousSuffix); kept.ID != old.ID || kept.State.Running {
		t.Fatalf("the previous container was not kept stopped: %s running %v", kept.ID, kept.State.Running)
	}
	if _, err := cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{}); err == nil {
		t.Fatal("the never-healthy container was left behind")
	}
	op = e.wait(e.startOp("/v1/engines/user-0001/restore", api.RestoreRequest{SnapshotID: sn.ID, Version: "2.3.0"}))
	if op.Status != api.OpSucceeded || !strings.Contains(step(op, api.StepBoot).Message, "previous container restarted") {
		t.Fatalf("rollback: %+v", op.Error)
	}
	if back := e.inspectEngine(cli, name); back.ID != old.ID || !back.State.Running {
		t.Fatalf("after the rollback: container %s (old %s) running %v", back.ID, old.ID, back.State.Running)
	}
}
