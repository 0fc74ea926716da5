// Package controlplane is the local Engine control plane: a real HTTP server implementing the
// Engine control API (internal/api, openapi.yaml) over simulated engines whose brains are real
// SQLite files in a data directory. It is the backend of the provider's acceptance tests, of
// `make demo`, and of anyone rehearsing an upgrade locally.
//
// Engines run on a runtime (engineRuntime, runtime.go): state machines in this process (drain →
// stop → migrate → boot → health), so thousands fit on one machine, or one child process each;
// everything they own (brains, snapshots, the registry of engines,
// snapshots, operations and idempotency keys) lives under the data dir and survives a restart.
package controlplane

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Version is the control plane's own version, reported by /health.
const Version = "0.1.0"

// Options configures a Server.
type Options struct {
	DataDir       string        // required by New; the binary makes a temp dir when --data-dir is empty
	APIKey        string        // required; New errors without it
	SeedEngines   int           // seeded when the data dir holds no engines yet; user ids "user-0001", "user-0002", ...
	SeedVersion   string        // default "2.3.0"
	SeedBrainRows int           // synthetic rows per brain table (default 20)
	Catalog       []api.Version // nil = DefaultCatalog()
	TimeScale     float64       // multiplies every nominal duration; 0 means 1.0; tests use ~0.001
	EnableFaults  bool
	Logger        *slog.Logger // nil discards

	// Runtime is where engines run: RuntimeSim ("" or "sim", state machines in this process;
	// runtime_sim.go), RuntimeProcess ("process", one child process per engine;
	// runtime_process.go) or RuntimeDocker ("docker", one container per engine;
	// runtime_docker.go).
	Runtime string
	// EngineCommand is the process runtime's command template ({version} is replaced);
	// "" means DefaultEngineCommand. EngineCommands overrides it per version.
	EngineCommand  string
	EngineCommands map[string]string
	// PortMin..PortMax is the loopback port range engine processes listen on (like 9001-9999),
	// or that the docker runtime publishes containers' port 8000 on; both 0 lets the kernel
	// pick free ports, which parallel tests need.
	PortMin, PortMax int
	// Docker is the docker runtime's configuration (runtime_docker.go).
	Docker DockerOptions
}

// Server is one control plane over one data dir.
type Server struct {
	opts    Options
	log     *slog.Logger
	cat     *upgrade.Catalog
	mig     migrations
	keyHash [32]byte

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	reg *registry

	// mu guards everything below and the mutable fields of every engine, snapshot and
	// operation. Brain I/O happens outside it.
	mu        sync.Mutex
	engines   map[string]*engineState
	userIDs   []string // sorted
	snapshots map[string]*snapshotState
	ops       map[string]*operation
	opSeq     int64
	idem      map[string]idemEntry
	// rehearsals are kept after their staging engine is gone (rehearsal.go).
	rehearsals map[string]*api.Rehearsal

	tmplMu    sync.Mutex
	templates map[int]string

	faults *faultSet
	stats  *stats

	rt engineRuntime // where engines run (runtime.go)

	canaries *canaryStore // canary records (canaries.go)
}

type engineState struct {
	api.Engine
	inflight int
	drained  chan struct{} // closed when inflight reaches zero while someone waits
	db       *sql.DB       // sim runtime: open while the engine runs
	turnMu   sync.Mutex    // sim runtime: serialises turn writes so the in-brain counter is exact
	opIDs    []string      // oldest first
	writes   []writeEvent  // recent turn writes, for metrics
	results  []turnResult  // process and docker runtimes: recent turn results the engine reported
}

type writeEvent struct {
	at    time.Time
	count int
}

type snapshotState struct {
	api.Snapshot
	// Verification cache: a verified file is re-hashed only when its stamp changes.
	checked fileStamp
}

// New opens (or creates) a control plane over opts.DataDir. Operations that were running when a
// previous process stopped are marked failed with OPERATION_INTERRUPTED, and their engines are
// booted on whatever their brains hold, so nothing is silently lost.
func New(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("controlplane: Options.DataDir is required")
	}
	if opts.APIKey == "" {
		return nil, errors.New("controlplane: Options.APIKey is required (the admin key clients send in " + api.KeyHeader + ")")
	}
	if opts.SeedVersion == "" {
		opts.SeedVersion = "2.3.0"
	}
	if opts.SeedBrainRows == 0 {
		opts.SeedBrainRows = 20
	}
	if opts.SeedBrainRows < 0 || opts.SeedEngines < 0 {
		return nil, errors.New("controlplane: SeedEngines and SeedBrainRows must not be negative")
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.TimeScale < 0 {
		return nil, errors.New("controlplane: TimeScale must be positive")
	}
	if opts.Catalog == nil {
		opts.Catalog = DefaultCatalog()
	}
	cat, err := checkCatalog(opts.Catalog)
	if err != nil {
		return nil, fmt.Errorf("controlplane: catalog: %w", err)
	}
	if _, ok := cat.Get(opts.SeedVersion); !ok {
		return nil, fmt.Errorf("controlplane: seed version %q is not in the catalog (known: %v)", opts.SeedVersion, cat.Names())
	}
	if err := checkRuntimeOptions(&opts); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range []string{"brains", "snapshots", "templates"} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("controlplane: data dir: %w", err)
		}
	}
	reg, err := openRegistry(filepath.Join(opts.DataDir, "registry.sqlite"))
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	s := &Server{
		opts: opts, log: opts.Logger, cat: cat, mig: newMigrations(cat.Versions()),
		keyHash: hashKey(opts.APIKey), reg: reg,
		engines: map[string]*engineState{}, snapshots: map[string]*snapshotState{},
		ops: map[string]*operation{}, idem: map[string]idemEntry{}, rehearsals: map[string]*api.Rehearsal{}, templates: map[int]string{},
		faults: newFaultSet(), stats: newStats(), canaries: newCanaryStore(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.rt, err = newRuntime(s); err != nil {
		reg.close()
		return nil, fmt.Errorf("controlplane: %s runtime: %w", opts.Runtime, err)
	}
	if err := s.load(); err != nil {
		reg.close()
		return nil, fmt.Errorf("controlplane: load registry: %w", err)
	}
	if len(s.engines) == 0 && opts.SeedEngines > 0 {
		if err := s.seed(opts.SeedEngines, opts.SeedVersion); err != nil {
			s.Close()
			return nil, fmt.Errorf("controlplane: seed: %w", err)
		}
	}
	// Engines that were running come back on what their brains hold; one that cannot is failed
	// with the reason, never shown as running.
	s.rt.resume()
	return s, nil
}

// Close stops background work (running operations stop at their next step and are reported as
// interrupted by the next New over the same data dir), closes brains and the registry.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.rt.close()
		err = s.reg.close()
	})
	return err
}

// BrainPath is where a user's brain lives (tests inspect or tamper with it).
func (s *Server) BrainPath(userID string) string {
	if bl, ok := s.rt.(brainLocator); ok {
		return bl.brainPath(userID)
	}
	return filepath.Join(s.opts.DataDir, "brains", userID+".sqlite")
}

// SnapshotPath is where a snapshot's file lives (tests tamper with it).
func (s *Server) SnapshotPath(snapshotID string) string {
	return filepath.Join(s.opts.DataDir, "snapshots", snapshotID+".sqlite")
}

// CreateEngine adds a running engine at version with a freshly seeded brain.
func (s *Server) CreateEngine(userID, version string) error {
	if !validID(userID) {
		return fmt.Errorf("user id %q must match %s", userID, api.IDPattern)
	}
	v, ok := s.cat.Get(version)
	if !ok {
		return &upgrade.UnknownVersionError{Version: version, Known: s.cat.Names()}
	}
	s.mu.Lock()
	_, exists := s.engines[userID]
	s.mu.Unlock()
	if exists {
		return fmt.Errorf("engine for user %s already exists", userID)
	}
	e, err := s.provision(userID, v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.engines[userID]; exists {
		return fmt.Errorf("engine for user %s already exists", userID)
	}
	if err := s.reg.putEngines(e.Engine); err != nil {
		return err
	}
	s.addEngineLocked(e)
	s.mu.Unlock()
	err = s.rt.boot(userID, v.Version)
	s.mu.Lock()
	return err
}

func (s *Server) seed(n int, version string) error {
	v, _ := s.cat.Get(version)
	batch := make([]*engineState, 0, n)
	docs := make([]api.Engine, 0, n)
	for i := 1; i <= n; i++ {
		e, err := s.provision(fmt.Sprintf("user-%04d", i), v)
		if err != nil {
			return err
		}
		batch = append(batch, e)
		docs = append(docs, e.Engine)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reg.putEngines(docs...); err != nil {
		return err
	}
	for _, e := range batch {
		s.addEngineLocked(e)
	}
	return nil
}

// provision copies the seeded template brain for v's schema: building one brain with
// golang-migrate and synthetic rows per schema, then copying it, is what makes seeding thousands
// of engines fast.
func (s *Server) provision(userID string, v api.Version) (*engineState, error) {
	tmpl, err := s.template(v.SchemaVersion)
	if err != nil {
		return nil, err
	}
	brain := s.BrainPath(userID)
	if err := os.MkdirAll(filepath.Dir(brain), 0o700); err != nil {
		return nil, fmt.Errorf("provision brain for %s: %w", userID, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(brain + suffix)
	}
	if err := copyFile(tmpl, brain); err != nil {
		return nil, fmt.Errorf("provision brain for %s: %w", userID, err)
	}
	now := time.Now().UTC()
	return &engineState{Engine: api.Engine{
		UserID: userID, EngineID: "eng-" + randomHex(8), EngineVersion: v.Version, SchemaVersion: v.SchemaVersion,
		Status: api.StatusRunning, LastHealthAt: &now, Health: healthOK(), Generation: 1,
	}}, nil
}

func (s *Server) template(schema int) (string, error) {
	s.tmplMu.Lock()
	defer s.tmplMu.Unlock()
	if p, ok := s.templates[schema]; ok {
		return p, nil
	}
	p := filepath.Join(s.opts.DataDir, "templates", fmt.Sprintf("schema-%d-rows-%d.sqlite", schema, s.opts.SeedBrainRows))
	tmp := p + ".building"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(f)
	}
	if err := migrateBrain(tmp, s.mig, schema); err != nil {
		return "", fmt.Errorf("build brain template at schema %d: %w", schema, err)
	}
	if err := seedRows(tmp, s.opts.SeedBrainRows); err != nil {
		return "", err
	}
	// Closing the last connection checkpoints the WAL into the file, so the template is one
	// self-contained file.
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	s.templates[schema] = p
	return p, nil
}

func (s *Server) addEngineLocked(e *engineState) {
	s.engines[e.UserID] = e
	i := sort.SearchStrings(s.userIDs, e.UserID)
	s.userIDs = append(s.userIDs, "")
	copy(s.userIDs[i+1:], s.userIDs[i:])
	s.userIDs[i] = e.UserID
}

// load restores the registry and settles operations a previous process left running.
func (s *Server) load() error {
	l, err := s.reg.load()
	if err != nil {
		return err
	}
	for _, e := range l.engines {
		s.addEngineLocked(&engineState{Engine: e})
	}
	for _, sn := range l.snapshots {
		s.snapshots[sn.ID] = &snapshotState{Snapshot: sn}
	}
	for i, o := range l.operations {
		op := &operation{Operation: o, seq: l.seqs[i], changed: make(chan struct{})}
		s.ops[o.ID] = op
		if l.seqs[i] > s.opSeq {
			s.opSeq = l.seqs[i]
		}
		if e := s.engines[o.UserID]; e != nil {
			e.opIDs = append(e.opIDs, o.ID)
		}
	}
	s.idem = l.idem
	if err := s.reg.loadCanaries(s.canaries); err != nil {
		return err
	}
	for _, op := range s.ops {
		if op.Done() {
			continue
		}
		if err := s.settleInterrupted(op); err != nil {
			return err
		}
	}
	return s.loadRehearsals()
}

func (e *engineState) fail(code, msg string) {
	e.Status = api.StatusFailed
	e.Health = api.Health{Status: "failed", Subsystems: map[string]string{"brain": "error"}}
	e.Error = &api.ErrorDetail{Code: code, Message: msg}
}

func healthOK() api.Health {
	return api.Health{Status: "ok", Subsystems: map[string]string{"brain": "ok", "memory": "ok", "herald": "ok"}}
}

// scaled multiplies a nominal duration by the time scale.
func (s *Server) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.opts.TimeScale)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
