// Command terraform-provider-engine serves the Engine provider to Terraform over plugin protocol 6.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"runtime/debug"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/septemberai/terraform-provider-engine/internal/logquiet"
	"github.com/septemberai/terraform-provider-engine/internal/provider"
)

// version is set by goreleaser through -ldflags "-X main.version=…"; "dev" marks a local build.
var version = "dev"

func main() {
	var debugMode bool
	flag.BoolVar(&debugMode, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()
	if !debugMode {
		logquiet.UnlessLogging()
	}
	if limit, ok := memoryLimit(os.Getenv); ok {
		debug.SetMemoryLimit(limit)
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/septemberai/engine",
		Debug:   debugMode,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}

// defaultMemoryLimit is the soft heap limit the provider runs under unless GOMEMLIMIT says
// otherwise. Without it a no-change plan of 1,000 releases peaked at about 170 MB RSS: the Go
// runtime let the heap grow to twice what the in-flight calls hold. Under the limit the collector
// runs more often only when the heap nears it (peak about 110 MB at 96 MiB in engine-bench),
// so small plans pay nothing.
const defaultMemoryLimit = 112 << 20

// memoryLimit returns the limit to set, or false when the user set GOMEMLIMIT (the runtime has
// already applied it).
func memoryLimit(getenv func(string) string) (int64, bool) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return defaultMemoryLimit, true
}
