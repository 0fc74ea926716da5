package main

import (
	"fmt"
	"io"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func TestParse_DockerRuntimeFlags(t *testing.T) {
	env := map[string]string{
		"ENGINE_CONTROLPLANE_API_KEY":     "k",
		"ENGINE_CONTROLPLANE_RUNTIME":     "docker",
		"ENGINE_CONTROLPLANE_ADOPT_LABEL": "com.docker.compose.service=engine; team=blue",
		"ENGINE_CONTROLPLANE_IMAGE_FOR":   "2.4.0=registry.example.com/engine:2.4.0-hotfix",
	}
	getenv := func(k string) string { return env[k] }
	c, err := parse([]string{"--image", "registry.example.com/engine:{version}", "--network", "fleet_net", "--brain-root", "/srv/brains",
		"--engine-env-passthrough", "LLM_API_KEY, OPENAI_API_KEY", "--adopt-label", "tier=canary", "--remove-containers-on-exit"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.dockerOptions()
	want := controlplane.DockerOptions{Image: "registry.example.com/engine:{version}", Images: map[string]string{"2.4.0": "registry.example.com/engine:2.4.0-hotfix"},
		Network: "fleet_net", BrainRoot: "/srv/brains", EnvPassthrough: []string{"LLM_API_KEY", "OPENAI_API_KEY"},
		AdoptLabels: []string{"com.docker.compose.service=engine", "team=blue", "tier=canary"}, RemoveOnClose: true}
	if c.runtime != "docker" || fmt.Sprintf("%+v", o) != fmt.Sprintf("%+v", want) {
		t.Fatalf("docker options = %+v, want %+v", o, want)
	}
	for _, args := range [][]string{
		{"--adopt-label", "no-value"},
		{"--image-for", "2.4.0"},
		{"--runtime", "sim", "--network", "x"},
		{"--runtime", "process", "--brain-root", "/srv"},
	} {
		if _, err := parse(args, getenv, io.Discard); err == nil {
			t.Fatalf("%v should be refused", args)
		}
	}
}
