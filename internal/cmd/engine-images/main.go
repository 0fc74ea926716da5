// Command engine-images builds the stand-in Engine image of every catalog version
// (`make images`): september-engine:<version>, from docker/engine-standin.Dockerfile, with the
// local Docker daemon. Nothing is pulled or pushed.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func main() {
	tmpl := flag.String("image", standinbuild.ImageTemplate, "image name template, {version} replaced by each catalog version")
	catalog := flag.String("catalog", "", "release catalog JSON file (default: the built-in catalog)")
	flag.Parse()
	vs := controlplane.DefaultCatalog()
	if *catalog != "" {
		var err error
		if vs, err = controlplane.LoadCatalogFile(*catalog); err != nil {
			fmt.Fprintln(os.Stderr, "engine-images:", err)
			os.Exit(1)
		}
	}
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Version
	}
	root, _ := os.Getwd()
	if err := standinbuild.BuildImages(root, *tmpl, names, func(s string) { fmt.Println(s) }); err != nil {
		fmt.Fprintln(os.Stderr, "engine-images:", err)
		os.Exit(1)
	}
}
