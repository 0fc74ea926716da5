// Command terraform-provider-engine serves the Engine provider to Terraform over plugin protocol 6.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/septemberai/terraform-provider-engine/internal/provider"
)

// version is set by goreleaser through -ldflags "-X main.version=…"; "dev" marks a local build.
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/septemberai/engine",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
