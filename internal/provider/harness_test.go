package provider

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// TestMain makes acceptance runs hermetic and loud: with TF_ACC set it refuses to start without a
// terraform binary (terraform-plugin-testing would otherwise try to download one, and there may
// be no network), refuses TF_ACC_TERRAFORM_VERSION (which downloads), and points Terraform at an
// empty CLI configuration of our own with checkpoint calls off.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	defer standinbuild.Cleanup() // the stand-in binary process-runtime tests built, if any
	if os.Getenv("TF_ACC") == "" {
		return m.Run()
	}
	if v := os.Getenv("TF_ACC_TERRAFORM_VERSION"); v != "" {
		fmt.Fprintf(os.Stderr, "TF_ACC_TERRAFORM_VERSION=%s is set: it makes the tests download Terraform. Unset it and put "+
			"terraform on PATH (or set TF_ACC_TERRAFORM_PATH).\n", v)
		return 1
	}
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		if !fileExists(p) {
			fmt.Fprintf(os.Stderr, "TF_ACC is set but TF_ACC_TERRAFORM_PATH=%s is not a file.\n", p)
			return 1
		}
	} else if _, err := exec.LookPath("terraform"); err != nil {
		fmt.Fprintln(os.Stderr, "TF_ACC is set but no terraform binary was found on PATH (or in TF_ACC_TERRAFORM_PATH): "+
			"install Terraform >= 1.11 or OpenTofu. Acceptance tests are never skipped silently.")
		return 1
	}
	os.Setenv("CHECKPOINT_DISABLE", "1")
	// A CLI config file that does not exist breaks some Terraform/OpenTofu versions; use an
	// empty one of our own unless the caller pointed at a real file.
	if f := os.Getenv("TF_CLI_CONFIG_FILE"); f == "" || !fileExists(f) {
		dir, err := os.MkdirTemp("", "engine-acc-cli-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		empty := filepath.Join(dir, "empty.tfrc")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Setenv("TF_CLI_CONFIG_FILE", empty)
	}
	return m.Run()
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// testKey is the admin key of every harness control plane.
const testKey = "test-admin-key-0123456789"

// harnessOptions shape the control plane a test runs against. Zero values give three running
// engines on 2.3.1 with small brains, no faults, plain HTTP.
type harnessOptions struct {
	Engines   int    // seeded engines (user-0001, ...); 0 means 3, -1 means none
	Version   string // seed version; "" means 2.3.1
	BrainRows int    // synthetic rows per brain table; 0 means 3
	Faults    bool   // enable fault injection (AddFault through Client)
	TLS       bool   // serve HTTPS with a certificate only CACertPEM trusts
	// TimeScale multiplies the control plane's nominal durations; 0 means 0.001 (operations
	// take milliseconds). Tests that must interrupt a running operation raise it.
	TimeScale float64
	// Runtime is the control plane's engine runtime: "" is the test's own (sim, or process when
	// a TestAccProcess_* wrapper runs the test, see process_runtime_test.go) and "process" runs
	// every engine as a stand-in Engine process. Under the process runtime Engines 0 means 1.
	Runtime string
	// AdoptLabels (KEY=VALUE) are the docker runtime's --adopt-label: containers someone else
	// started that the control plane registers as engines.
	AdoptLabels []string
}

// harness is one hermetic control plane for one test, served in-process.
type harness struct {
	t        *testing.T
	Endpoint string
	Key      string
	// CACertPEM is the PEM of the certificate a TLS harness serves (empty for plain HTTP).
	CACertPEM string
	// Client talks to the control plane as the tests' own side channel (write turns, add
	// faults, check outcomes); it is configured correctly whatever a test feeds the provider.
	Client *client.Client
	Server *controlplane.Server

	mu       sync.Mutex
	requests map[string]int // "METHOD /path" -> count, every request including rejected ones
	badKey   int            // requests that carried a missing or wrong key
	agents   map[string]bool
}

// newHarness starts a control plane over a fresh data dir. Everything it starts is stopped by
// t.Cleanup.
func newHarness(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	requestedEngines := opts.Engines
	switch opts.Engines {
	case 0:
		opts.Engines = 3
	case -1:
		opts.Engines = 0
	}
	if opts.Version == "" {
		opts.Version = "2.3.1"
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 0.001
	}
	if opts.BrainRows == 0 {
		opts.BrainRows = 3
	}
	cpOpts := controlplane.Options{
		DataDir:       t.TempDir(),
		APIKey:        testKey,
		SeedEngines:   opts.Engines,
		SeedVersion:   opts.Version,
		SeedBrainRows: opts.BrainRows,
		TimeScale:     opts.TimeScale,
		EnableFaults:  opts.Faults,
	}
	cpOpts.Docker.AdoptLabels = opts.AdoptLabels
	processRuntime(t, opts.Runtime, requestedEngines, &cpOpts)
	srv, err := controlplane.New(cpOpts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	h := &harness{t: t, Key: testKey, Server: srv, requests: map[string]int{}, agents: map[string]bool{}}
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.requests[r.Method+" "+r.URL.Path]++
		if r.Header.Get(api.KeyHeader) == testKey && r.UserAgent() != "engine-acceptance-harness" {
			h.agents[r.UserAgent()] = true
		}
		if r.Header.Get(api.KeyHeader) != testKey && r.URL.Path != api.PathHealth {
			h.badKey++
		}
		h.mu.Unlock()
		srv.Handler().ServeHTTP(w, r)
	})
	var hs *httptest.Server
	if opts.TLS {
		hs = httptest.NewTLSServer(counting)
		h.CACertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}))
	} else {
		hs = httptest.NewServer(counting)
	}
	h.Endpoint = hs.URL
	// Cleanups run last-in first-out: the HTTP server stops before the control plane closes.
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close control plane: %v", err)
		}
	})
	t.Cleanup(hs.Close)

	c, err := client.New(client.Config{
		Endpoint: h.Endpoint, APIKey: testKey, CACertPEM: []byte(h.CACertPEM),
		RequestTimeout: 10 * time.Second, MaxRetries: 2, UserAgent: "engine-acceptance-harness",
	})
	if err != nil {
		t.Fatalf("harness client: %v", err)
	}
	h.Client = c
	return h
}

// Factories serves the provider in-process with the given environment instead of the process's
// own, so env-fallback tests run in parallel and a developer's ENGINE_* variables never leak in.
func (h *harness) Factories(env map[string]string) map[string]func() (tfprotov6.ProviderServer, error) {
	return providerFactories(env)
}

func providerFactories(env map[string]string) map[string]func() (tfprotov6.ProviderServer, error) {
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	return map[string]func() (tfprotov6.ProviderServer, error){
		"engine": providerserver.NewProtocol6WithError(newWithEnv("test", lookup)()),
	}
}

// ProviderBlock is a provider "engine" block wired to this control plane; extra lines (HCL
// attribute assignments) are added inside the block.
func (h *harness) ProviderBlock(extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider \"engine\" {\n  endpoint = %q\n  api_key  = %q\n", h.Endpoint, h.Key)
	if h.CACertPEM != "" {
		fmt.Fprintf(&b, "  ca_cert_pem = %q\n", h.CACertPEM)
	}
	for _, e := range extra {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	b.WriteString("}\n")
	return b.String()
}

// Requests is how many requests the control plane received for "METHOD /path".
func (h *harness) Requests(methodPath string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[methodPath]
}

// BadKeyRequests is how many requests arrived with a missing or wrong key.
func (h *harness) BadKeyRequests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.badKey
}

// UserAgents lists the User-Agent headers of the keyed requests that did not come from the
// harness's own client.
func (h *harness) UserAgents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.agents))
	for ua := range h.agents {
		out = append(out, ua)
	}
	return out
}

// Engine reads an engine through the harness's own client, failing the test on error.
func (h *harness) Engine(userID string) api.Engine {
	h.t.Helper()
	e, err := h.Client.GetEngine(context.Background(), userID)
	if err != nil {
		h.t.Fatalf("read engine %s: %v", userID, err)
	}
	return e
}

// errorLike matches text in Terraform's output wherever Terraform wrapped its lines: the words
// of text in order, separated by any whitespace.
func errorLike(text string) *regexp.Regexp {
	words := strings.Fields(text)
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile(strings.Join(words, `\s+`))
}

// configVariables turns string variables into the step's ConfigVariables.
func configVariables(vars map[string]string) config.Variables {
	out := config.Variables{}
	for k, v := range vars {
		out[k] = config.StringVariable(v)
	}
	return out
}

// Helpers the tests share: engines, turns, operations and snapshots through the control plane.

// writeTurns writes n turns with content into user's brain through the control plane and
// returns their contents.
func (h *harness) writeTurns(user, content string, n int) []string {
	h.t.Helper()
	res, err := h.Client.WriteTurns(context.Background(), user, api.TurnsRequest{Count: n, Content: content})
	if err != nil {
		h.t.Fatalf("write turns to %s: %v", user, err)
	}
	out := make([]string, len(res.Turns))
	for i, turn := range res.Turns {
		out[i] = turn.Content
	}
	return out
}

// writeFleetTurns writes count turns ("turn of <user>") into each user's brain and returns their
// contents per user, so a test can check the brain data survived the rollout and the rollback.
func (h *harness) writeFleetTurns(users []string, count int) map[string][]string {
	out := map[string][]string{}
	for _, u := range users {
		out[u] = h.writeTurns(u, "turn of "+u, count)
	}
	return out
}

// turnCount counts the turns with content in user's brain.
func (h *harness) turnCount(user, content string) int {
	h.t.Helper()
	turns, err := h.Client.Turns(context.Background(), user)
	if err != nil {
		h.t.Fatalf("read turns of %s: %v", user, err)
	}
	n := 0
	for _, tn := range turns {
		if tn.Content == content {
			n++
		}
	}
	return n
}

// expectEngine is a check that the engine really runs version (read through the client).
func (h *harness) expectEngine(user, version string) func(*terraform.State) error {
	return func(*terraform.State) error {
		e, err := h.Client.GetEngine(context.Background(), user)
		if err != nil {
			return err
		}
		if e.EngineVersion != version || e.Status != api.StatusRunning {
			return fmt.Errorf("user %s's engine runs %s (%s), want %s running", user, e.EngineVersion, e.Status, version)
		}
		return nil
	}
}

// expectTurns is a check that user's brain holds exactly n turns with content.
func (h *harness) expectTurns(user, content string, n int) func(*terraform.State) error {
	return func(*terraform.State) error {
		if got := h.turnCount(user, content); got != n {
			return fmt.Errorf("user %s's brain holds %d turns %q, want %d", user, got, content, n)
		}
		return nil
	}
}

// operations counts the operations of kind started on user's engine.
func (h *harness) operations(user, kind string) int64 {
	h.t.Helper()
	st, err := h.Client.Stats(context.Background())
	if err != nil {
		h.t.Fatalf("stats: %v", err)
	}
	return st.OperationsByUser[user+"/"+kind]
}

func (h *harness) expectOperations(user, kind string, n int64) func(*terraform.State) error {
	return func(*terraform.State) error {
		if got := h.operations(user, kind); got != n {
			return fmt.Errorf("%d %s operations ran on user %s's engine, want %d", got, kind, user, n)
		}
		return nil
	}
}

func seedUsers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i+1)
	}
	return out
}

// checkTurns asserts every turn written earlier is still in each brain.
func checkTurns(h *harness, want map[string][]string) error {
	for u, contents := range want {
		turns, err := h.Client.Turns(context.Background(), u)
		if err != nil {
			return fmt.Errorf("read turns of %s: %w", u, err)
		}
		have := map[string]int{}
		for _, t := range turns {
			have[t.Content]++
		}
		for _, c := range contents {
			if have[c] == 0 {
				return fmt.Errorf("user %s lost brain data: turn %q is gone (%d turns left)", u, c, len(turns))
			}
			have[c]--
		}
	}
	return nil
}

// fleetVersions counts the engines per "version/status" among users.
func fleetVersions(h *harness, users []string) (map[string]int, error) {
	out := map[string]int{}
	for _, u := range users {
		e, err := h.Client.GetEngine(context.Background(), u)
		if err != nil {
			return nil, err
		}
		out[e.EngineVersion+"/"+e.Status]++
	}
	return out, nil
}

func expectFleet(h *harness, users []string, want map[string]int) error {
	got, err := fleetVersions(h, users)
	if err != nil {
		return err
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("fleet runs %v, want %v", got, want)
	}
	return nil
}

func opsByUser(t *testing.T, h *harness) map[string]int64 {
	t.Helper()
	st, err := h.Client.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st.OperationsByUser
}

func checkFn(f func() error) resource.TestCheckFunc {
	return func(*terraform.State) error { return f() }
}

// onVersion lists the users whose engines run version, sorted.
func onVersion(h *harness, users []string, version string) []string {
	var out []string
	for _, u := range users {
		if h.Engine(u).EngineVersion == version {
			out = append(out, u)
		}
	}
	return out
}

// snapshotNow takes a verified snapshot of user's engine through the API and returns its id.
func (h *harness) snapshotNow(user string) string {
	h.t.Helper()
	ctx := context.Background()
	op, err := h.Client.CreateSnapshot(ctx, user, client.NewIdempotencyKey(), api.CreateSnapshotRequest{Description: "out of band", RetentionDays: 1})
	if err == nil {
		op, err = h.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Result.SnapshotID == "" {
		h.t.Fatalf("out-of-band snapshot of %s: %v (%+v)", user, err, op)
	}
	return op.Result.SnapshotID
}

// upgradeOutOfBand moves user's engine to version through the API, as another tool or person
// would, naming snapshotID; it returns the operation.
func (h *harness) upgradeOutOfBand(user, version, snapshotID string) api.Operation {
	h.t.Helper()
	ctx := context.Background()
	op, err := h.Client.Upgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: version, SnapshotID: snapshotID})
	if err == nil {
		op, err = h.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Status != api.OpSucceeded {
		h.t.Fatalf("out-of-band upgrade of %s to %s: %v (%+v)", user, version, err, op)
	}
	return op
}

// snapshotReads counts the GET requests for one snapshot the control plane has answered.
func (h *harness) snapshotReads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for k, c := range h.requests {
		if strings.HasPrefix(k, "GET /v1/snapshots/") {
			n += c
		}
	}
	return n
}

// restoreOutOfBand restores snapshotID onto user's engine at version through the API, as
// another tool or person would.
func (h *harness) restoreOutOfBand(user, snapshotID, version string) {
	h.t.Helper()
	ctx := context.Background()
	op, err := h.Client.Restore(ctx, user, client.NewIdempotencyKey(), 0, api.RestoreRequest{SnapshotID: snapshotID, Version: version})
	if err == nil {
		op, err = h.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil || op.Status != api.OpSucceeded {
		h.t.Fatalf("out-of-band restore of %s onto %s: %v (%+v)", snapshotID, user, err, op)
	}
}

// catalog reads the control plane's release catalog.
func (h *harness) catalog() (*upgrade.Catalog, error) {
	vs, err := h.Client.Versions(context.Background())
	if err != nil {
		return nil, err
	}
	return upgrade.NewCatalog(vs)
}

// expectSnapshots is a check that user's engine has exactly n snapshots on the control plane.
func (h *harness) expectSnapshots(user string, n int) func(*terraform.State) error {
	return func(*terraform.State) error {
		snaps, err := h.Client.ListSnapshots(context.Background(), user, client.ListSnapshotsOptions{})
		if err != nil {
			return err
		}
		if len(snaps) != n {
			return fmt.Errorf("user %s has %d snapshots, want %d: %+v", user, len(snaps), n, snaps)
		}
		return nil
	}
}
