package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// The docker runtime's measurements: the same canary and snapshot as the simulated ones, on
// real containers of the stand-in images (built first, as `make images` does).
const (
	MDockerCanary   = "docker-canary"
	MDockerSnapshot = "docker-snapshot"
)

// dockerPlane is the options of a control plane on the docker runtime, its containers and
// network named for this run and removed when it closes.
func dockerPlane(cfg Config, dir string) (controlplane.Options, error) {
	var vs []string
	for _, v := range controlplane.DefaultCatalog() {
		vs = append(vs, v.Version)
	}
	cfg.logf("building the stand-in Engine images (%s)", standinbuild.ImageTemplate)
	if err := standinbuild.BuildImages(cfg.RepoRoot, standinbuild.ImageTemplate, vs, nil); err != nil {
		return controlplane.Options{}, fmt.Errorf("the docker measurements need a Docker daemon: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	return controlplane.Options{DataDir: dir, Runtime: controlplane.RuntimeDocker,
		Docker: controlplane.DockerOptions{NamePrefix: "bench-" + tag + "-", Network: "engine_bench_" + tag, RemoveOnClose: true}}, nil
}

// runDockerCanary is a canary over 20 containers with max_parallel 5 against the ideal, measured
// as the simulated canary is. Scale 0.1: a patch upgrade's nominal steps take a few hundred ms,
// next to what creating, starting and stopping a container costs.
func runDockerCanary(ctx context.Context, cfg Config, tf *terraform, work string) (*CanaryFigures, error) {
	opts, err := dockerPlane(cfg, filepath.Join(work, "docker-canary-cp"))
	if err != nil {
		return nil, err
	}
	opts.TimeScale = 0.1
	return runCanaryOn(ctx, cfg, tf, work, 20, 5, opts)
}

// runDockerSnapshot snapshots a container's 256 MB brain (its bind-mounted file, written by the
// container) under writes, against a plain copy of the file.
func runDockerSnapshot(ctx context.Context, cfg Config, work string) (*SnapshotFigures, error) {
	opts, err := dockerPlane(cfg, filepath.Join(work, "docker-snapshot-cp"))
	if err != nil {
		return nil, err
	}
	return runSnapshotOn(ctx, cfg, work, opts)
}
