//go:build linux

package controlplane

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
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
	return e.srv.rt.(*dockerRuntime).containerName(user)
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
