// Command profprovider is the provider of main.go with a CPU profile written to
// $BENCH_CPUPROFILE.<pid> while it serves and a heap profile to $BENCH_CPUPROFILE.<pid>.heap every
// second: engine-bench builds it to find where a plan's time and memory go when a bar is
// missed (go tool pprof on the files it writes).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/septemberai/terraform-provider-engine/internal/logquiet"
	"github.com/septemberai/terraform-provider-engine/internal/provider"
)

func main() {
	logquiet.UnlessLogging() // as main.go does, so the profile shows the plan the real binary makes
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		heap := fmt.Sprintf("%s.%d.heap", p, os.Getpid())
		// A heap profile after a forced GC every second: the last one written before the
		// plan ends shows what the provider holds live at its largest, which a profile
		// taken at exit (after terraform stopped sending requests) would not.
		go func() {
			for range time.Tick(time.Second) {
				runtime.GC()
				for name, file := range map[string]string{"heap": heap, "goroutine": heap + ".goroutine"} {
					if h, err := os.Create(file); err == nil {
						_ = pprof.Lookup(name).WriteTo(h, 0)
						h.Close()
					}
				}
			}
		}()
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	err := providerserver.Serve(context.Background(), provider.New("bench"), providerserver.ServeOpts{Address: "registry.terraform.io/septemberai/engine"})
	if err != nil {
		log.Print(err.Error())
	}
}
