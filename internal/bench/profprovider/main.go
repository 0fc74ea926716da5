// Command profprovider is the provider of main.go with a CPU profile written to
// $BENCH_CPUPROFILE.<pid> while it serves: engine-bench builds it to find where a plan's time goes
// when a bar is missed (go tool pprof on the file it writes).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime/pprof"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/septemberai/terraform-provider-engine/internal/provider"
)

func main() {
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	err := providerserver.Serve(context.Background(), provider.New("bench"), providerserver.ServeOpts{Address: "registry.terraform.io/septemberai/engine"})
	if err != nil {
		log.Print(err.Error())
	}
}
