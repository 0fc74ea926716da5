// Command terraform-provider-engine serves the Engine provider to Terraform over plugin protocol 6.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/septemberai/terraform-provider-engine/internal/provider"
)

// version is set by goreleaser through -ldflags "-X main.version=…"; "dev" marks a local build.
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()
	if !debug {
		quietUnlessLogging(os.Getenv, os.Setenv)
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/septemberai/engine",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}

// quietUnlessLogging turns the plugin SDK's and the provider's log output off when Terraform is
// not collecting provider logs. go-plugin serves every provider at TRACE and Terraform parses
// and drops each line itself unless TF_LOG or TF_LOG_PROVIDER is set; writing and parsing those
// lines was about a third of a no-change plan's CPU (engine-bench, docs/guides/benchmarks.md).
// A level the user set explicitly for an SDK subsystem is left alone.
func quietUnlessLogging(getenv func(string) string, setenv func(string, string) error) {
	if getenv("TF_LOG") != "" || getenv("TF_LOG_PROVIDER") != "" {
		return
	}
	for _, k := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER"} {
		if getenv(k) == "" {
			_ = setenv(k, "off")
		}
	}
}
