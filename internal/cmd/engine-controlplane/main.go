// Command engine-controlplane runs the local Engine control plane: the Engine control API over
// simulated engines whose brains are real SQLite files in a data directory. It prints one line,
// "listening on http://ADDR", once it accepts connections, and stops cleanly on SIGINT/SIGTERM.
//
// With --runtime process every engine is a child process instead (the stand-in Engine by
// default, or --engine-command / --engine-command-for), listening on a loopback port between
// --port-min and --port-max; stopping the control plane stops them all.
//
// With --runtime docker every engine is a Docker container of its version's image (--image,
// --image-for), its brain in a directory of its own under --brain-root mounted at /data, port 8000
// published on 127.0.0.1 from the port range, on --network; containers outlive the control plane
// and the next one adopts them (--remove-containers-on-exit removes them instead).
// --adopt-label KEY=VALUE registers containers someone else started (compose, docker run).
//
// Every flag has an ENGINE_CONTROLPLANE_* environment fallback (--api-key reads
// ENGINE_CONTROLPLANE_API_KEY); a flag given on the command line wins.
//
// The admin key belongs in a file (--api-key-file, read once at start, surrounding whitespace
// trimmed) or in ENGINE_CONTROLPLANE_API_KEY: --api-key puts it in the process list, where every
// local user can read it, so the control plane warns when it is given that way. Engine processes
// never see the key: they inherit only an allow-list of the environment.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

type config struct {
	listen, dataDir, apiKey, apiKeyFile, seedVersion, catalog, tlsCert, tlsKey, logLevel string
	seedEngines, seedBrainRows                                                           int
	timeScale                                                                            float64
	enableFaults                                                                         bool

	runtime, engineCommand string
	engineCommandFor       versionCommands
	portMin, portMax       int

	image, network, brainRoot, envPassthrough string
	imageFor                                  versionImages
	adoptLabels                               labelList
	removeContainers                          bool
}

// versionImages is the repeatable --image-for VERSION=IMAGE flag; its environment fallback
// separates entries with ";".
type versionImages map[string]string

func (v *versionImages) String() string { return "" }

func (v *versionImages) Set(s string) error {
	return setVersionMap((*map[string]string)(v), s, "VERSION=IMAGE, for example 2.4.0=registry.example.com/engine:2.4.0-hotfix")
}

// labelList is the repeatable --adopt-label KEY=VALUE flag (";" separates entries in its
// environment fallback).
type labelList []string

func (l *labelList) String() string { return strings.Join(*l, ";") }

func (l *labelList) Set(s string) error {
	for _, entry := range strings.Split(s, ";") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		if k, _, ok := strings.Cut(entry, "="); !ok || k == "" {
			return fmt.Errorf("%q must be KEY=VALUE, for example com.docker.compose.service=engine", entry)
		}
		*l = append(*l, entry)
	}
	return nil
}

// versionCommands is the repeatable --engine-command-for VERSION=COMMAND flag; its environment
// fallback separates entries with ";".
type versionCommands map[string]string

func (v *versionCommands) String() string { return "" }

func (v *versionCommands) Set(s string) error {
	return setVersionMap((*map[string]string)(v), s, "VERSION=COMMAND, for example 2.4.0=/opt/engine-2.4.0/run --port-from-env")
}

// setVersionMap adds the VERSION=VALUE entries of s (separated by ";") to m.
func setVersionMap(m *map[string]string, s, form string) error {
	for _, entry := range strings.Split(s, ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		version, val, ok := strings.Cut(entry, "=")
		if !ok || strings.TrimSpace(version) == "" || strings.TrimSpace(val) == "" {
			return fmt.Errorf("%q must be %s", entry, form)
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[strings.TrimSpace(version)] = strings.TrimSpace(val)
	}
	return nil
}

// envName is a flag's environment fallback: --seed-engines reads ENGINE_CONTROLPLANE_SEED_ENGINES.
func envName(flagName string) string {
	return "ENGINE_CONTROLPLANE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("engine-controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	str(&c.listen, "listen", "127.0.0.1:8470", "address to listen on; port 0 picks a free one")
	str(&c.dataDir, "data-dir", "", "directory holding the registry, brains and snapshots (default: a fresh temporary directory, removed on exit)")
	str(&c.apiKey, "api-key", "", "the admin key clients send in X-Engine-Admin-Key; visible in ps to every local user, prefer --api-key-file or the environment variable")
	str(&c.apiKeyFile, "api-key-file", "", "file holding the admin key (surrounding whitespace trimmed); this or --api-key is required")
	fs.IntVar(&c.seedEngines, "seed-engines", 0, "engines to create when the data dir holds none (env "+envName("seed-engines")+")")
	str(&c.seedVersion, "seed-version", "2.3.0", "version the seeded engines run")
	fs.IntVar(&c.seedBrainRows, "seed-brain-rows", 20, "synthetic rows per brain table (env "+envName("seed-brain-rows")+")")
	str(&c.catalog, "catalog", "", "release catalog JSON file ({\"versions\": [...]}) replacing the built-in one")
	fs.Float64Var(&c.timeScale, "time-scale", 1.0, "multiplies every nominal duration (drain, boot, migration, eval) (env "+envName("time-scale")+")")
	fs.BoolVar(&c.enableFaults, "enable-faults", false, "serve /v1/faults for fault injection (env "+envName("enable-faults")+")")
	str(&c.tlsCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve https)")
	str(&c.tlsKey, "tls-key", "", "TLS key file")
	str(&c.logLevel, "log-level", "info", "debug, info, warn or error (logs go to stderr)")
	str(&c.runtime, "runtime", controlplane.RuntimeSim, "where engines run: sim (state machines in this process), process (one child process per engine) or docker (one container per engine)")
	str(&c.engineCommand, "engine-command", "", "process runtime: command starting an engine, {version} replaced by its version (default: engine-standin on PATH or next to this binary, \""+controlplane.DefaultEngineCommand+"\")")
	fs.Var(&c.engineCommandFor, "engine-command-for", "process runtime: VERSION=COMMAND, the command for one version (repeatable; env "+envName("engine-command-for")+" separates entries with ;)")
	fs.IntVar(&c.portMin, "port-min", 9001, "process and docker runtimes: lowest loopback port for engines (env "+envName("port-min")+")")
	fs.IntVar(&c.portMax, "port-max", 9999, "process and docker runtimes: highest loopback port for engines (env "+envName("port-max")+")")
	str(&c.image, "image", controlplane.DefaultDockerImage, "docker runtime: image of a version, {version} replaced; any registry prefix works")
	fs.Var(&c.imageFor, "image-for", "docker runtime: VERSION=IMAGE, the image of one version (repeatable; env "+envName("image-for")+" separates entries with ;)")
	str(&c.network, "network", controlplane.DefaultDockerNetwork, "docker runtime: network engine containers join, created if missing")
	str(&c.brainRoot, "brain-root", "", "docker runtime: directory holding one brain directory per engine, mounted at /data (default: <data-dir>/brains)")
	str(&c.envPassthrough, "engine-env-passthrough", "", "docker runtime: comma-separated names of variables passed from this environment to every container it creates, for example LLM_API_KEY,OPENAI_API_KEY")
	fs.Var(&c.adoptLabels, "adopt-label", "docker runtime: KEY=VALUE; containers with this label that someone else started are adopted at start-up (repeatable; env "+envName("adopt-label")+" separates entries with ;)")
	fs.BoolVar(&c.removeContainers, "remove-containers-on-exit", false, "docker runtime: remove the containers this control plane created (and its network) when it stops; default: they keep running and the next start adopts them (env "+envName("remove-containers-on-exit")+")")

	// Environment first, as defaults; flags parsed afterwards win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q is not a valid value for --%s: %w", envName(f.Name), v, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: every setting is a --flag", fs.Args())
	}
	if err := c.resolveKey(fs, stderr); err != nil {
		return c, err
	}
	switch {
	case c.timeScale <= 0:
		return c, errors.New("--time-scale must be positive (1.0 is real time; 0.01 runs 100x faster)")
	case c.seedEngines < 0 || c.seedBrainRows < 0:
		return c, errors.New("--seed-engines and --seed-brain-rows must not be negative")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return c, errors.New("--tls-cert and --tls-key go together")
	case c.runtime != controlplane.RuntimeSim && c.runtime != controlplane.RuntimeProcess && c.runtime != controlplane.RuntimeDocker:
		return c, fmt.Errorf("--runtime %q must be %s (engines simulated in this process), %s (one child process per engine) or %s (one container per engine)", c.runtime, controlplane.RuntimeSim, controlplane.RuntimeProcess, controlplane.RuntimeDocker)
	case c.runtime != controlplane.RuntimeProcess && (c.engineCommand != "" || len(c.engineCommandFor) > 0):
		return c, errors.New("--engine-command and --engine-command-for need --runtime process")
	case c.runtime != controlplane.RuntimeDocker && c.dockerFlagsSet():
		return c, errors.New("--image, --image-for, --network, --brain-root, --engine-env-passthrough, --adopt-label and --remove-containers-on-exit need --runtime docker")
	case c.portMin < 1 || c.portMax > 65535 || c.portMin > c.portMax:
		return c, fmt.Errorf("--port-min %d and --port-max %d must be a range of ports, for example 9001 and 9999", c.portMin, c.portMax)
	}
	return c, nil
}

// dockerFlagsSet says a docker runtime flag was given (on the command line or in the environment).
func (c *config) dockerFlagsSet() bool {
	return c.image != controlplane.DefaultDockerImage || c.network != controlplane.DefaultDockerNetwork || c.brainRoot != "" ||
		c.envPassthrough != "" || len(c.imageFor) > 0 || len(c.adoptLabels) > 0 || c.removeContainers
}

// dockerOptions is the docker runtime's configuration from the flags.
func (c *config) dockerOptions() controlplane.DockerOptions {
	o := controlplane.DockerOptions{Image: c.image, Images: c.imageFor, Network: c.network, BrainRoot: c.brainRoot,
		AdoptLabels: c.adoptLabels, RemoveOnClose: c.removeContainers}
	for _, n := range strings.Split(c.envPassthrough, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.EnvPassthrough = append(o.EnvPassthrough, n)
		}
	}
	return o
}

// resolveKey settles the admin key from --api-key or --api-key-file (or their environment
// variables), and warns when the key was typed on the command line.
func (c *config) resolveKey(fs *flag.FlagSet, stderr io.Writer) error {
	onCommandLine := false
	fs.Visit(func(f *flag.Flag) { onCommandLine = onCommandLine || f.Name == "api-key" })
	switch {
	case c.apiKey != "" && c.apiKeyFile != "":
		return errors.New("--api-key and --api-key-file (or " + envName("api-key") + " and " + envName("api-key-file") + ") both give the admin key: keep one")
	case c.apiKeyFile != "":
		b, err := os.ReadFile(c.apiKeyFile)
		if err != nil {
			return fmt.Errorf("--api-key-file: %w", err)
		}
		if c.apiKey = strings.TrimSpace(string(b)); c.apiKey == "" {
			return fmt.Errorf("--api-key-file %s is empty: write the admin key into it", c.apiKeyFile)
		}
	case c.apiKey == "":
		return errors.New("an admin key is required: pass --api-key-file FILE or set " + envName("api-key") +
			" (--api-key KEY works too, but shows the key to every local user in ps); clients send it in the X-Engine-Admin-Key header")
	case onCommandLine:
		fmt.Fprintln(stderr, "engine-controlplane: warning: --api-key puts the admin key in the process list, where every local user can read it; "+
			"pass it with --api-key-file FILE or the "+envName("api-key")+" environment variable instead")
	}
	return nil
}

// defaultEngineCommand runs the stand-in Engine: from PATH, or installed next to this binary.
func defaultEngineCommand() string {
	if _, err := exec.LookPath("engine-standin"); err != nil {
		if self, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(self), "engine-standin"); fileExists(p) {
				return p + " --version {version}"
			}
		}
	}
	return controlplane.DefaultEngineCommand
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "engine-controlplane:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintln(stderr, "engine-controlplane: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := controlplane.Options{
		DataDir: c.dataDir, APIKey: c.apiKey, SeedEngines: c.seedEngines, SeedVersion: c.seedVersion,
		SeedBrainRows: c.seedBrainRows, TimeScale: c.timeScale, EnableFaults: c.enableFaults, Logger: log,
	}
	if c.runtime == controlplane.RuntimeProcess {
		opts.Runtime, opts.EngineCommand, opts.EngineCommands = c.runtime, c.engineCommand, c.engineCommandFor
		opts.PortMin, opts.PortMax = c.portMin, c.portMax
		if opts.EngineCommand == "" {
			opts.EngineCommand = defaultEngineCommand()
		}
	}
	if c.runtime == controlplane.RuntimeDocker {
		opts.Runtime, opts.Docker = c.runtime, c.dockerOptions()
		opts.PortMin, opts.PortMax = c.portMin, c.portMax
		if c.dataDir == "" {
			// The brains live in the temporary data dir, removed on exit: so do the containers.
			opts.Docker.RemoveOnClose = true
		}
	}
	if c.catalog != "" {
		if opts.Catalog, err = controlplane.LoadCatalogFile(c.catalog); err != nil {
			fmt.Fprintln(stderr, "engine-controlplane:", err)
			return 2
		}
	}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "engine-controlplane-")
		if err != nil {
			fmt.Fprintln(stderr, "engine-controlplane:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		opts.DataDir = dir
		log.Info("using a temporary data dir, removed on exit", "data_dir", dir)
	}
	cp, err := controlplane.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, "engine-controlplane:", err)
		return 1
	}
	defer cp.Close()

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		fmt.Fprintln(stderr, "engine-controlplane:", err)
		return 1
	}
	// Request contexts derive from base, cancelled at shutdown, so held long-polls let go.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler: cp.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base },
	}
	scheme := "http"
	if c.tlsCert != "" {
		// Loaded before the ready line, so a bad certificate is a startup error.
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			ln.Close()
			fmt.Fprintln(stderr, "engine-controlplane: --tls-cert/--tls-key:", err)
			return 2
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())
	log.Info("control plane ready", "data_dir", opts.DataDir, "time_scale", c.timeScale, "faults", c.enableFaults, "runtime", c.runtime, "seeded", strconv.Itoa(c.seedEngines))

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-errc:
		fmt.Fprintln(stderr, "engine-controlplane:", err)
		return 1
	}
	cancelBase()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("shutdown", "error", err)
	}
	if err := cp.Close(); err != nil {
		log.Warn("close", "error", err)
	}
	log.Info("stopped")
	return 0
}
