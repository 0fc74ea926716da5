// Command engine-standin is a small stand-in for the Engine: one process, one SQLite brain, the
// parts of the Engine's contract the control plane relies on, so the control plane's process
// runtime is tested against real boots, real signals and a brain file held open by another
// process.
//
// Contract kept (the Engine's documented contract, summarised in DESIGN.md §4):
//   - env SQLITE_DB_PATH (the brain), PORT (bound on ENGINE_LISTEN_HOST, default 127.0.0.1; the
//     docker image sets 0.0.0.0 and 8000), ENGINE_KEY_HASH (sha256 hex of
//     the key) or ENGINE_API_KEY, and the version (--version or ENGINE_VERSION);
//   - at start-up it applies its version's brain migrations (the control plane's catalog, from
//     ENGINE_STANDIN_CATALOG or the built-in one), refuses a brain with a newer schema (logs
//     MIGRATION_REQUIRED, exits 4) and a dirty brain (logs MIGRATION_FAILED, exits 3);
//   - GET /health is {"status":"ok","uptime_seconds":…,"subsystems":{…}}, and 503 with status
//     "starting" or "draining" otherwise; everything else needs X-Engine-Key (401 INVALID_KEY);
//   - POST /v1/turns writes turns into the brain and reports usage per turn with the version's
//     error and latency profile;
//   - SIGTERM: new turns get 503, in-flight ones finish (up to ENGINE_STANDIN_DRAIN_DEADLINE),
//     exit 0. Logs are JSON lines on stdout (timestamp, level, message, …).
//
// Knobs for fault injection, set by the control plane only when a fault is in force:
// ENGINE_STANDIN_IGNORE_SIGTERM=1, ENGINE_STANDIN_NEVER_HEALTHY=1, ENGINE_STANDIN_FAIL_MIGRATION=1
// and ENGINE_STANDIN_MIGRATE_DELAY_MS (a pause inside each migration, after the dirty flag is
// set). ENGINE_STANDIN_TIME_SCALE multiplies boot and turn latencies like the control plane's
// --time-scale.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// Exit codes: what the control plane reads besides the last error log line.
const (
	exitConfig            = 2
	exitMigrationFailed   = 3
	exitMigrationRequired = 4
	exitServe             = 5
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, sig))
}

// The turn endpoint's wire types live with the control plane, which calls it.
type (
	TurnRequest  = controlplane.EngineTurnRequest
	TurnResult   = controlplane.EngineTurnResult
	TurnResponse = controlplane.EngineTurnResponse
)

type config struct {
	brain, version, catalogFile string
	host                        string
	port                        int
	keyHash                     [32]byte
	timeScale                   float64
	drainDeadline               time.Duration
	migrateDelay                time.Duration
	ignoreSIGTERM, neverHealthy bool
	failMigration               bool
}

func parse(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("engine-standin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.version, "version", getenv("ENGINE_VERSION"), "the Engine version this process is (env ENGINE_VERSION)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.brain, c.catalogFile = getenv("SQLITE_DB_PATH"), getenv("ENGINE_STANDIN_CATALOG")
	if c.host = getenv("ENGINE_LISTEN_HOST"); c.host == "" {
		c.host = "127.0.0.1"
	}
	switch {
	case c.version == "":
		return c, errors.New("the version is required: pass --version X.Y.Z or set ENGINE_VERSION")
	case c.brain == "":
		return c, errors.New("SQLITE_DB_PATH is required: the path of this engine's brain")
	}
	port, err := strconv.Atoi(getenv("PORT"))
	if err != nil || port < 1 || port > 65535 {
		return c, fmt.Errorf("PORT=%q must be a port number (1-65535)", getenv("PORT"))
	}
	c.port = port
	key, hash := getenv("ENGINE_API_KEY"), getenv("ENGINE_KEY_HASH")
	switch {
	case key != "" && hash != "":
		return c, errors.New("set only one of ENGINE_API_KEY and ENGINE_KEY_HASH")
	case key != "":
		c.keyHash = sha256.Sum256([]byte(key))
	case hash != "":
		b, err := hex.DecodeString(hash)
		if err != nil || len(b) != 32 {
			return c, errors.New("ENGINE_KEY_HASH must be the 64-hex-digit sha256 of the key")
		}
		copy(c.keyHash[:], b)
	default:
		return c, errors.New("a key is required: set ENGINE_KEY_HASH (sha256 hex of the key) or ENGINE_API_KEY")
	}
	c.timeScale = 1
	if v := getenv("ENGINE_STANDIN_TIME_SCALE"); v != "" {
		if c.timeScale, err = strconv.ParseFloat(v, 64); err != nil || c.timeScale <= 0 {
			return c, fmt.Errorf("ENGINE_STANDIN_TIME_SCALE=%q must be a positive number", v)
		}
	}
	c.drainDeadline = 30 * time.Second
	if v := getenv("ENGINE_STANDIN_DRAIN_DEADLINE"); v != "" {
		if c.drainDeadline, err = time.ParseDuration(v); err != nil || c.drainDeadline < 0 {
			return c, fmt.Errorf("ENGINE_STANDIN_DRAIN_DEADLINE=%q must be a duration such as 30s", v)
		}
	}
	if v := getenv("ENGINE_STANDIN_MIGRATE_DELAY_MS"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return c, fmt.Errorf("ENGINE_STANDIN_MIGRATE_DELAY_MS=%q must be a number of milliseconds", v)
		}
		c.migrateDelay = time.Duration(ms) * time.Millisecond
	}
	c.ignoreSIGTERM = getenv("ENGINE_STANDIN_IGNORE_SIGTERM") == "1"
	c.neverHealthy = getenv("ENGINE_STANDIN_NEVER_HEALTHY") == "1"
	c.failMigration = getenv("ENGINE_STANDIN_FAIL_MIGRATION") == "1"
	return c, nil
}

// newLogger writes the Engine's JSON log lines: timestamp, level (lower case), message.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			a.Key = "timestamp"
		case slog.MessageKey:
			a.Key = "message"
		case slog.LevelKey:
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}))
}

type engine struct {
	c       config
	log     *slog.Logger
	v       api.Version
	started time.Time

	state atomic.Pointer[string] // "starting", "ok", "draining"
	mu    sync.Mutex             // serialises turns so the in-brain counter and error sequence are exact
	db    interface{ Close() error }
	turns func(count int, content string) ([]api.Turn, int64, error)
	seq   int64 // turns served by this process, for the deterministic error sequence

	inflight atomic.Int64 // admitted turns not yet answered: what a drain waits for
}

func run(args []string, getenv func(string) string, stdout io.Writer, sig <-chan os.Signal) int {
	log := newLogger(stdout)
	c, err := parse(args, getenv)
	if err != nil {
		log.Error("invalid configuration: "+err.Error(), "code", "INVALID_CONFIG")
		return exitConfig
	}
	catalog := controlplane.DefaultCatalog()
	if c.catalogFile != "" {
		if catalog, err = controlplane.LoadCatalogFile(c.catalogFile); err != nil {
			log.Error(err.Error(), "code", "INVALID_CONFIG")
			return exitConfig
		}
	}
	cat, err := controlplane.ParseCatalog(catalog)
	if err != nil {
		log.Error("catalog: "+err.Error(), "code", "INVALID_CONFIG")
		return exitConfig
	}
	v, ok := cat.Get(c.version)
	if !ok {
		log.Error(fmt.Sprintf("version %q is not in the catalog (known: %v)", c.version, cat.Names()), "code", "INVALID_CONFIG")
		return exitConfig
	}
	log = log.With("version", v.Version)
	e := &engine{c: c, log: log, v: v, started: time.Now()}
	e.setState("starting")

	// Listen first: a port clash is reported at once, and /health answers "starting" while
	// the migrations run, as the Engine's does.
	ln, err := net.Listen("tcp", net.JoinHostPort(c.host, strconv.Itoa(c.port)))
	if err != nil {
		log.Error("listen: "+err.Error(), "code", "PORT_UNAVAILABLE", "port", c.port)
		return exitServe
	}
	srv := &http.Server{Handler: e.handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	booted := make(chan int, 1)
	go func() { booted <- e.boot() }()
	for {
		select {
		case code := <-booted:
			if code != 0 {
				srv.Close()
				return code
			}
			booted = nil
		case err := <-serveErr:
			log.Error("serve: "+err.Error(), "code", "INTERNAL")
			return exitServe
		case s := <-sig:
			if c.ignoreSIGTERM {
				log.Warn("ignoring "+s.String()+" (fault ignore_sigterm)", "signal", s.String())
				continue
			}
			return e.drain(srv, s)
		}
	}
}

// boot checks and migrates the brain, waits the version's boot time and turns healthy.
func (e *engine) boot() int {
	c, v := e.c, e.v
	if controlplane.BrainExists(c.brain) {
		schema, dirty, err := controlplane.BrainSchema(c.brain)
		switch {
		case err != nil:
			e.log.Error("cannot read the brain's schema: "+err.Error(), "code", "MIGRATION_FAILED", "brain", c.brain)
			return exitMigrationFailed
		case dirty:
			e.log.Error(fmt.Sprintf("the brain is dirty at schema %d (a migration failed or was interrupted); refusing to start; restore a snapshot", schema), "code", "MIGRATION_FAILED", "schema", schema)
			return exitMigrationFailed
		case schema > v.SchemaVersion:
			e.log.Error(fmt.Sprintf("version %s reads brain schema %d but the brain is at schema %d (migrated by a newer version); restore a snapshot taken at schema %d", v.Version, v.SchemaVersion, schema, v.SchemaVersion), "code", "MIGRATION_REQUIRED", "schema", schema)
			return exitMigrationRequired
		case schema < v.SchemaVersion:
			e.log.Info(fmt.Sprintf("migrating the brain from schema %d to %d", schema, v.SchemaVersion), "from_schema", schema, "to_schema", v.SchemaVersion)
		}
	}
	hooks := controlplane.MigrateHooks{FailFirst: c.failMigration, BeforeEach: func(schema uint) {
		e.log.Info("migration started", "schema", schema)
		time.Sleep(c.migrateDelay)
	}}
	catalog := controlplane.DefaultCatalog()
	if c.catalogFile != "" {
		catalog, _ = controlplane.LoadCatalogFile(c.catalogFile)
	}
	if err := controlplane.MigrateBrain(c.brain, catalog, v.SchemaVersion, hooks); err != nil {
		e.log.Error("migration failed: "+err.Error()+"; the brain is left dirty; restore a snapshot", "code", "MIGRATION_FAILED")
		return exitMigrationFailed
	}
	db, err := controlplane.OpenBrain(c.brain)
	if err != nil {
		e.log.Error("open brain: "+err.Error(), "code", "INTERNAL")
		return exitServe
	}
	e.db = db
	e.turns = func(count int, content string) ([]api.Turn, int64, error) {
		return controlplane.AppendTurns(db, count, content)
	}
	time.Sleep(e.scaled(time.Duration(v.Profile.BootSeconds * float64(time.Second))))
	if c.neverHealthy {
		e.log.Warn("never turning healthy (fault health_never_ok)")
		return 0
	}
	e.setState("ok")
	e.log.Info("healthy", "schema", v.SchemaVersion)
	return 0
}

// drain refuses new turns (503), lets in-flight ones finish up to the deadline, and exits 0.
func (e *engine) drain(srv *http.Server, s os.Signal) int {
	e.setState("draining")
	e.log.Info("draining on "+s.String(), "deadline", e.c.drainDeadline.String())
	// Keep listening while turns are in flight, so a turn that arrives during the drain gets a
	// 503 it can retry elsewhere instead of a refused connection.
	deadline := time.Now().Add(e.c.drainDeadline)
	for e.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.inflight.Load(); n > 0 {
		e.log.Warn("turns still in flight at the drain deadline; stopping anyway", "in_flight", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	e.mu.Lock()
	if e.db != nil {
		e.db.Close()
	}
	e.mu.Unlock()
	e.log.Info("stopped", "uptime_seconds", time.Since(e.started).Seconds())
	return 0
}

func (e *engine) setState(s string) { e.state.Store(&s) }

func (e *engine) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * e.c.timeScale)
}

func (e *engine) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		st := *e.state.Load()
		sub := map[string]string{"brain": "ok", "memory": "ok", "herald": "ok"}
		code := http.StatusOK
		if st != "ok" {
			code = http.StatusServiceUnavailable
			sub = map[string]string{"brain": st, "memory": st, "herald": st}
		}
		writeJSON(w, code, map[string]any{"status": st, "uptime_seconds": math.Round(time.Since(e.started).Seconds()*1000) / 1000, "subsystems": sub, "version": e.v.Version})
	})
	mux.HandleFunc("POST /v1/turns", e.postTurns)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			sum := sha256.Sum256([]byte(r.Header.Get("X-Engine-Key")))
			if subtle.ConstantTimeCompare(sum[:], e.c.keyHash[:]) != 1 {
				writeErr(w, http.StatusUnauthorized, api.CodeInvalidKey, "missing or wrong X-Engine-Key")
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

func (e *engine) postTurns(w http.ResponseWriter, r *http.Request) {
	// Admission and the state check race with a SIGTERM: count first, then check, so a drain
	// either sees this turn in flight or this turn sees the drain.
	e.inflight.Add(1)
	defer e.inflight.Add(-1)
	if st := *e.state.Load(); st != "ok" {
		writeErr(w, http.StatusServiceUnavailable, api.CodeEngineUnavailable, "the engine is "+st+" and takes no new turns")
		return
	}
	var req TurnRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeInvalidRequest, "body must be {\"count\": N, \"content\": \"...\"}: "+err.Error())
		return
	}
	if req.Count < 1 || req.Count > 1000 || req.DelayMS < 0 || req.DelayMS > 60000 {
		writeErr(w, http.StatusBadRequest, api.CodeInvalidRequest, "count must be 1-1000 and delay_ms 0-60000")
		return
	}
	e.log.Info("turn admitted", "count", req.Count, "delay_ms", req.DelayMS)
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.v.Profile
	results := make([]TurnResult, req.Count)
	var wait time.Duration
	for i := range results {
		// Latencies spread up to the profile's p99; errors follow the profile's rate exactly
		// (every 1/rate-th turn), so a short test never sees a good version fail by chance.
		lat := p.P99LatencyMS * (0.3 + 0.7*rand.Float64())
		in := 400 + rand.IntN(400)
		res := TurnResult{LatencyMS: math.Round(lat*10) / 10, InputTokens: in, OutputTokens: 100 + rand.IntN(200),
			CacheHitTokens: int(math.Round(float64(in) * p.CacheHitRatio))}
		if math.Floor(float64(e.seq+1)*p.ErrorRate) > math.Floor(float64(e.seq)*p.ErrorRate) {
			res.Error = "turn_error"
			if len(p.WarningKinds) > 0 {
				res.Error = p.WarningKinds[0]
			}
		}
		e.seq++
		results[i] = res
		wait += time.Duration(lat * float64(time.Millisecond))
	}
	time.Sleep(e.scaled(wait) + time.Duration(req.DelayMS)*time.Millisecond)
	turns, after, err := e.turns(req.Count, req.Content)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, api.CodeInternal, "writing turns into the brain failed: "+err.Error())
		return
	}
	e.log.Info("turns", "count", req.Count, "brain_writes", after)
	writeJSON(w, http.StatusOK, TurnResponse{Written: len(turns), BrainWrites: after, Turns: turns, Results: results})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, api.ErrorBody{Error: api.ErrorDetail{Code: errCode, Message: msg}})
}
