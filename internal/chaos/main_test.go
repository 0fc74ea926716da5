package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/cmd/engine-standin/standinbuild"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// The suite runs terraform, so it needs the binary; it is never skipped silently.
var (
	tf    Terraform
	tally Tally
	quick = os.Getenv("CHAOS_QUICK") != ""
	seed  uint64
	// CHAOS_RUNTIME=process runs every case on the process runtime (stand-in Engine processes).
	runtimeProcess = os.Getenv("CHAOS_RUNTIME") == controlplane.RuntimeProcess
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	bin := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("terraform"); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: no terraform binary on PATH (or TF_ACC_TERRAFORM_PATH): the suite runs terraform as a child process and is never skipped")
			return 1
		}
	}
	if os.Getenv("TF_ACC_TERRAFORM_VERSION") != "" {
		fmt.Fprintln(os.Stderr, "chaos: TF_ACC_TERRAFORM_VERSION is set; unset it (it makes tests download Terraform)")
		return 1
	}
	seed = uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_SEED=%q is not an unsigned integer\n", s)
			return 1
		}
		seed = v
	}
	dir, err := os.MkdirTemp("", "engine-chaos-provider-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cli, err := BuildProvider(root, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	tf = Terraform{Bin: bin, CLIConfig: cli}
	mode := "long"
	if quick {
		mode = "quick (CHAOS_QUICK=1)"
	}
	fmt.Printf("chaos: mode %s, seed %d (rerun with CHAOS_SEED=%d), terraform %s\n", mode, seed, seed, bin)
	code := m.Run()
	standinbuild.Cleanup()
	if f := os.Getenv("CHAOS_TALLY_FILE"); f != "" {
		// The provider's fault matrix (internal/provider/chaos_test.go) ran first and left its
		// cells here.
		if err := tally.Merge(f); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			code = 1
		}
	}
	md := tally.Markdown(fmt.Sprintf("Chaos suite, %s mode, seed %d", mode, seed))
	out := filepath.Join(root, "bench-results")
	report := filepath.Join(out, "chaos-"+time.Now().UTC().Format("20060102T150405Z")+".md")
	for _, p := range []string{report, filepath.Join(out, "chaos-latest.md")} {
		if err := WriteFile(p, md); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: write report:", err)
		}
	}
	fmt.Println(tally.Summary())
	fmt.Println("chaos: report written to", report)
	if code == 0 && tally.Failures+tally.DuplicateOps+tally.RowsLost > 0 {
		code = 1
	}
	return code
}

// rng is the seeded source of one test: the same seed gives the same kill points.
func rng(t *testing.T) *rand.Rand {
	var h uint64 = 1469598103934665603
	for _, c := range t.Name() {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h))
}

const apiKey = "chaos-admin-key-7f3a9c21e5"

// env is one control plane and the workspaces of one test.
type env struct {
	t *testing.T
	p *Plane
}

type envOptions struct {
	engines   int
	version   string
	timeScale float64
	faults    bool
	key       string
	process   bool // engines as stand-in Engine processes (the process runtime)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.engines == 0 {
		o.engines = 1
	}
	if o.version == "" {
		o.version = "2.3.1"
	}
	if o.timeScale == 0 {
		o.timeScale = 0.01
	}
	if o.key == "" {
		o.key = apiKey
	}
	if runtimeProcess {
		o.process = true
	}
	opts := controlplane.Options{DataDir: t.TempDir(), APIKey: o.key, SeedEngines: o.engines, SeedVersion: o.version,
		SeedBrainRows: 5, TimeScale: o.timeScale, EnableFaults: o.faults}
	if o.process {
		cmd, err := standinbuild.Command()
		if err != nil {
			t.Fatalf("build the stand-in Engine: %v", err)
		}
		opts.Runtime, opts.EngineCommand = controlplane.RuntimeProcess, cmd
	}
	p, err := StartPlane(opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(p.Close)
	return &env{t: t, p: p}
}

// workspace makes a fresh Terraform working directory whose provider reads the key from the
// environment, so no configuration file ever holds it.
func (e *env) workspace(resources string) *Workspace {
	e.t.Helper()
	w := &Workspace{Dir: e.t.TempDir(), TF: tf, Env: []string{"ENGINE_API_KEY=" + e.p.Key}}
	if err := w.Write(e.config(resources)); err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *env) config(resources string) string {
	return fmt.Sprintf(`terraform {
  required_providers {
    engine = { source = "septemberai/engine" }
  }
}

provider "engine" {
  endpoint = %q
}
%s`, e.p.Endpoint, resources)
}

func release(version, extra string) string {
	return fmt.Sprintf(`
resource "engine_release" "r" {
  user_id = "user-0001"
  version = %q
%s
}
`, version, extra)
}

func (e *env) ctx() context.Context { return context.Background() }

// apply runs terraform apply and fails the test on error.
func (e *env) apply(w *Workspace) string {
	e.t.Helper()
	out, err := w.Apply(3 * time.Minute)
	if err != nil {
		e.t.Fatalf("terraform apply: %v\n%s", err, out)
	}
	return out
}

func (e *env) engine(user string) api.Engine {
	e.t.Helper()
	en, err := e.p.Client.GetEngine(e.ctx(), user)
	if err != nil {
		e.t.Fatalf("read engine %s: %v", user, err)
	}
	return en
}

func (e *env) ops(user, kind string) int64 {
	e.t.Helper()
	st, err := e.p.Client.Stats(e.ctx())
	if err != nil {
		e.t.Fatalf("stats: %v", err)
	}
	return st.OperationsByUser[user+"/"+kind]
}

func (e *env) firedFaults() int {
	e.t.Helper()
	fs, err := e.p.Client.Faults(e.ctx())
	if err != nil {
		e.t.Fatalf("faults: %v", err)
	}
	n := 0
	for _, f := range fs {
		n += f.Fired
	}
	return n
}

func (e *env) writeTurns(user, content string, n int) {
	e.t.Helper()
	if _, err := e.p.Client.WriteTurns(e.ctx(), user, api.TurnsRequest{Count: n, Content: content}); err != nil {
		e.t.Fatalf("write turns: %v", err)
	}
}

func (e *env) turns(user, content string) int {
	e.t.Helper()
	ts, err := e.p.Client.Turns(e.ctx(), user)
	if err != nil {
		e.t.Fatalf("read turns: %v", err)
	}
	n := 0
	for _, x := range ts {
		if x.Content == content {
			n++
		}
	}
	return n
}

func (e *env) checksums(user string) map[string]string {
	e.t.Helper()
	c, err := TableChecksums(e.p.Server.BrainPath(user))
	if err != nil {
		e.t.Fatalf("checksum %s's brain: %v", user, err)
	}
	return c
}

// orphans lists the operations of user that are not done, and the engine's current one.
func (e *env) orphans(user string) []string {
	e.t.Helper()
	ops, err := e.p.Client.ListOperations(e.ctx(), user)
	if err != nil {
		e.t.Fatalf("list operations: %v", err)
	}
	var out []string
	for _, op := range ops {
		if !op.Done() {
			out = append(out, fmt.Sprintf("%s %s (%s)", op.Kind, op.ID, op.Status))
		}
	}
	if cur := e.engine(user).CurrentOperationID; cur != "" {
		out = append(out, "engine.current_operation_id="+cur)
	}
	return out
}

// recorder collects a case's problems; record adds it to the tally and fails the test.
type recorder struct {
	t    *testing.T
	c    Case
	errs []string
}

func newRecorder(t *testing.T, name string) *recorder { return &recorder{t: t, c: Case{Name: name}} }

func (r *recorder) errorf(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.errs = append(r.errs, msg)
	r.t.Error(msg)
}

// done records the case once.
func (r *recorder) done() {
	if len(r.errs) > 0 || r.t.Failed() {
		r.c.Failed = true
		r.c.Detail = strings.Join(append([]string{r.c.Detail}, r.errs...), "; ")
		if strings.Trim(r.c.Detail, "; ") == "" {
			r.c.Detail = "test failed (see go test output)"
		}
	}
	tally.Add(r.c)
}

// points picks n distinct kill points in [1, hi] (all of them when n >= hi).
func points(rnd *rand.Rand, n int, hi int64) []int64 {
	if hi < 1 {
		hi = 1
	}
	if int64(n) >= hi {
		out := make([]int64, 0, hi)
		for i := int64(1); i <= hi; i++ {
			out = append(out, i)
		}
		return out
	}
	seen := map[int64]bool{}
	var out []int64
	for len(out) < n {
		k := 1 + rnd.Int64N(hi)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func listAll() client.ListSnapshotsOptions { return client.ListSnapshotsOptions{} }
