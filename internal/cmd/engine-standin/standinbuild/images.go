package standinbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// ImageTemplate is the image the docker runtime runs for a version by default, {version}
// replaced: what `make images` and the docker tests build.
const ImageTemplate = "september-engine:{version}"

// Dockerfile is the one Dockerfile every stand-in image is built from (repository-relative).
const Dockerfile = "docker/engine-standin.Dockerfile"

var (
	imagesOnce sync.Once
	imagesErr  error
)

// Images builds the stand-in image of every version (ImageTemplate) once per test binary: the
// static binary (CGO off) once, then one `docker build` per version from Dockerfile, which only
// sets ENGINE_VERSION, so every image shares the binary's layer. root is the repository root.
func Images(root string, versions []string) error {
	imagesOnce.Do(func() { imagesErr = BuildImages(root, ImageTemplate, versions, nil) })
	return imagesErr
}

// BuildImages builds the static stand-in and one image per version, tagged by tmpl; log, when
// set, gets one line per image.
func BuildImages(root, tmpl string, versions []string, log func(string)) error {
	if !strings.Contains(tmpl, "{version}") {
		return fmt.Errorf("image template %q has no {version}", tmpl)
	}
	ctxDir, err := os.MkdirTemp("", "engine-image-context-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, "engine-standin"), pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (CGO_ENABLED=0): %w\n%s", pkg, err, out)
	}
	for _, v := range versions {
		tag := strings.ReplaceAll(tmpl, "{version}", v)
		cmd := exec.Command("docker", "build", "--quiet", "--build-arg", "ENGINE_VERSION="+v, "-t", tag,
			"-f", filepath.Join(root, Dockerfile), ctxDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker build %s: %w\n%s", tag, err, out)
		}
		if log != nil {
			log("built " + tag)
		}
	}
	return nil
}
