//go:build linux

package controlplane

import (
	"context"
	"testing"

	"github.com/moby/moby/client"
)

// TestRehearsal_dockerRuntime: the same rehearsal with every engine a container: the staging
// engine is a container of the target's image on the migrated copy (bind-mounted), the replay
// real requests to it; DELETE and a failed verdict remove its container.
func TestRehearsal_dockerRuntime(t *testing.T) {
	e := newEnv(t, withDocker(t), withSeed(1, "2.4.0"))
	cli := dockerClient(t)
	instance := DockerInstance(e.dir)
	rehearseOnRealEngines(t, e, func() int {
		f := client.Filters{}.Add("label", LabelControlPlane+"="+instance).Add("status", "running")
		cs, err := cli.ContainerList(context.Background(), client.ContainerListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs.Items)
	})
}
