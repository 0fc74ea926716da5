// Package chaos is the provider's reliability and security suite: it runs the real terraform
// binary as a child process against a local control plane on a real listener, and kills it
// (SIGKILL, SIGINT) at seeded points, races two workspaces, injects faults and greps everything
// Terraform writes for the API key. The tests live in chaos_test.go; this file holds what they
// share: the terraform runner, the control plane wrapper with its kill hook, brain table
// checksums and the tally printed (and written as Markdown) at the end of `make chaos`.
package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite" for the read-only checksums

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// ProviderAddress is the provider's address in dev_overrides: without a hostname, so Terraform
// and OpenTofu each read it on their own registry, as they read the configurations' source.
const ProviderAddress = "septemberai/engine"

// BuildProvider compiles the provider binary from module root into dir and returns the path of a
// CLI configuration whose dev_overrides point Terraform at it (no registry, no init).
func BuildProvider(moduleRoot, dir string) (cliConfig string, err error) {
	bin := filepath.Join(dir, "terraform-provider-engine")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build provider: %w\n%s", err, out)
	}
	cliConfig = filepath.Join(dir, "terraformrc")
	hcl := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    %q = %q\n  }\n  direct {}\n}\n", ProviderAddress, dir)
	if err := os.WriteFile(cliConfig, []byte(hcl), 0o600); err != nil {
		return "", err
	}
	return cliConfig, nil
}

// Terraform runs one terraform binary with a fixed CLI configuration.
type Terraform struct {
	Bin       string
	CLIConfig string
}

// Workspace is one Terraform working directory (one state file).
type Workspace struct {
	Dir string
	TF  Terraform
	Env []string // extra environment (KEY=VALUE), e.g. ENGINE_API_KEY or TF_LOG
}

// Write replaces the workspace's configuration with main.tf = config.
func (w *Workspace) Write(config string) error {
	return os.WriteFile(filepath.Join(w.Dir, "main.tf"), []byte(config), 0o600)
}

// Run is one terraform process.
type Run struct {
	cmd     *exec.Cmd
	out     lockedBuffer
	done    chan struct{}
	err     error
	started time.Time
	ended   time.Time
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs terraform args in the workspace in a process group of its own, so a kill takes the
// provider plugin down with it, as when a CI runner or the OOM killer ends the job.
func (w *Workspace) Start(args ...string) (*Run, error) {
	if len(args) > 0 {
		// Colour codes would split the words the tests look for.
		args = append([]string{args[0], "-no-color"}, args[1:]...)
	}
	cmd := exec.Command(w.TF.Bin, args...)
	cmd.Dir = w.Dir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+w.TF.CLIConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "NO_COLOR=1")
	cmd.Env = append(cmd.Env, w.Env...)
	r := &Run{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &r.out, &r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.err = cmd.Wait()
		r.ended = time.Now()
		close(r.done)
	}()
	return r, nil
}

// Kill sends SIGKILL to the whole process group (terraform and its provider plugin).
func (r *Run) Kill() { _ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) }

// Interrupt sends SIGINT to terraform alone, as Ctrl-C in a terminal reaches the foreground
// process; terraform forwards the stop to its providers.
func (r *Run) Interrupt() { _ = r.cmd.Process.Signal(syscall.SIGINT) }

// Wait waits for the process (at most timeout, then kills the group) and returns its output.
func (r *Run) Wait(timeout time.Duration) (string, error) {
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.Kill()
		<-r.done
		return r.out.String(), fmt.Errorf("terraform did not finish within %s and was killed", timeout)
	}
	return r.out.String(), r.err
}

// Done is closed when the process has exited.
func (r *Run) Done() <-chan struct{} { return r.done }

// Ended is when the process exited (zero while it runs).
func (r *Run) Ended() time.Time { return r.ended }

// Output is what the process printed so far.
func (r *Run) Output() string { return r.out.String() }

// Exec runs terraform args to completion.
func (w *Workspace) Exec(timeout time.Duration, args ...string) (string, error) {
	r, err := w.Start(args...)
	if err != nil {
		return "", err
	}
	return r.Wait(timeout)
}

// Apply runs terraform apply -auto-approve.
func (w *Workspace) Apply(timeout time.Duration) (string, error) {
	return w.Exec(timeout, "apply", "-auto-approve", "-input=false")
}

// PlanIsEmpty runs terraform plan -detailed-exitcode: true when there is nothing to do.
func (w *Workspace) PlanIsEmpty(timeout time.Duration) (bool, string, error) {
	out, err := w.Exec(timeout, "plan", "-detailed-exitcode", "-input=false")
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, out, nil
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		return false, out, nil
	default:
		return false, out, err
	}
}

// StateFile is the part of a Terraform state file the suite checks.
type StateFile struct {
	Version   int    `json:"version"`
	Serial    int    `json:"serial"`
	Lineage   string `json:"lineage"`
	Resources []struct {
		Mode      string `json:"mode"`
		Type      string `json:"type"`
		Name      string `json:"name"`
		Instances []struct {
			Attributes map[string]any `json:"attributes"`
			Status     string         `json:"status"`
		} `json:"instances"`
	} `json:"resources"`
}

// State parses terraform.tfstate; a missing or zero-length file is an empty state (Terraform
// creates the file empty before a first apply writes it, and reads it back as "no state").
// A file that does not parse, or has a version other than 4, is an error: the state is corrupt.
func (w *Workspace) State() (StateFile, error) {
	var s StateFile
	b, err := os.ReadFile(filepath.Join(w.Dir, "terraform.tfstate"))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("terraform.tfstate is not valid JSON: %w", err)
	}
	if s.Version != 4 || s.Lineage == "" {
		return s, fmt.Errorf("terraform.tfstate has version %d and lineage %q, want version 4 with a lineage", s.Version, s.Lineage)
	}
	return s, nil
}

// Attr is the attribute of the one instance of resource typ.name, "" when absent.
func (s StateFile) Attr(typ, name, attr string) (any, bool) {
	for _, r := range s.Resources {
		if r.Mode == "managed" && r.Type == typ && r.Name == name && len(r.Instances) == 1 {
			v, ok := r.Instances[0].Attributes[attr]
			return v, ok
		}
	}
	return nil, false
}

// Managed counts the managed resource instances in the state.
func (s StateFile) Managed() int {
	n := 0
	for _, r := range s.Resources {
		if r.Mode == "managed" {
			n += len(r.Instances)
		}
	}
	return n
}

// Plane is a control plane served on a real loopback listener, with a hook that sees every
// request before it is handled (the kill points).
type Plane struct {
	Server   *controlplane.Server
	Endpoint string
	Key      string
	Client   *client.Client

	opts     controlplane.Options
	inner    atomic.Pointer[http.Handler]
	hook     atomic.Pointer[Hook]
	requests atomic.Int64
	http     *http.Server
}

// StartPlane starts a control plane over dataDir.
func StartPlane(opts controlplane.Options) (*Plane, error) {
	srv, err := controlplane.New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	p := &Plane{Server: srv, Endpoint: "http://" + ln.Addr().String(), Key: opts.APIKey, opts: opts}
	h := srv.Handler()
	p.inner.Store(&h)
	p.http = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner := *p.inner.Load()
		if strings.HasPrefix(r.UserAgent(), "chaos-side-channel") {
			inner.ServeHTTP(w, r)
			return
		}
		n := p.requests.Add(1)
		var after func()
		if h := p.hook.Load(); h != nil {
			after = (*h)(n, r)
		}
		inner.ServeHTTP(w, r)
		if after != nil {
			after()
		}
	})}
	go func() { _ = p.http.Serve(ln) }()
	p.Client, err = client.New(client.Config{Endpoint: p.Endpoint, APIKey: opts.APIKey, RequestTimeout: 20 * time.Second, MaxRetries: 2, UserAgent: "chaos-side-channel"})
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Hook sees terraform's n-th request (1-based, counted since the plane started) before it is
// handled; a non-nil result runs after the control plane has handled it.
type Hook func(n int64, r *http.Request) (after func())

// OnRequest installs h for every request from terraform (not the side channel); nil removes it.
func (p *Plane) OnRequest(h Hook) {
	if h == nil {
		p.hook.Store(nil)
		return
	}
	p.hook.Store(&h)
}

// Restart stops the control plane as a crash would reach it (running operations stop at their
// next step) and starts a new one over the same data dir on the same address: the new one
// settles what the old one left running.
func (p *Plane) Restart() error {
	if err := p.Server.Close(); err != nil {
		return err
	}
	srv, err := controlplane.New(p.opts)
	if err != nil {
		return err
	}
	h := srv.Handler()
	p.Server = srv
	p.inner.Store(&h)
	return nil
}

// Requests is how many requests terraform's provider has made.
func (p *Plane) Requests() int64 { return p.requests.Load() }

// Close stops the listener and the control plane.
func (p *Plane) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.http.Shutdown(ctx)
	_ = p.Server.Close()
}

// TableChecksums checks the integrity of the SQLite file at path (opened read-only), then hashes
// every row of every table, table by table in rowid order: two brains with equal checksums hold
// the same data, which a row count cannot show.
func TableChecksums(path string) (map[string]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// A brain that is not intact fails here, before any row is compared.
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil {
		return nil, fmt.Errorf("integrity check of %s: %w", filepath.Base(path), err)
	}
	if integrity != "ok" {
		return nil, fmt.Errorf("%s fails PRAGMA integrity_check: %s", filepath.Base(path), integrity)
	}
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string]string{}
	for _, t := range tables {
		sum, err := tableChecksum(db, t)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		out[t] = sum
	}
	return out, nil
}

func tableChecksum(db *sql.DB, table string) (string, error) {
	q := `SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `" ORDER BY rowid`
	rows, err := db.Query(q)
	if err != nil {
		// WITHOUT ROWID tables: order by every column instead.
		rows, err = db.Query(`SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `" ORDER BY 1`)
		if err != nil {
			return "", err
		}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", strings.Join(cols, ","))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		for _, v := range vals {
			fmt.Fprintf(h, "%T:%v\x1f", v, v)
		}
		h.Write([]byte{0x1e})
		n++
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%s", n, hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// DiffChecksums describes how got differs from want ("" when equal), naming each table.
func DiffChecksums(want, got map[string]string) string {
	var diffs []string
	for t, w := range want {
		if g, ok := got[t]; !ok {
			diffs = append(diffs, fmt.Sprintf("table %s is gone (had %s)", t, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("table %s: %s, want %s", t, g, w))
		}
	}
	for t := range got {
		if _, ok := want[t]; !ok {
			diffs = append(diffs, fmt.Sprintf("table %s is new", t))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

// Tally counts what the suite did and found; the bars demand zeros in the last three.
type Tally struct {
	mu           sync.Mutex
	Cases        int
	Faults       int // faults that fired (counted by the control plane)
	Kills        int // SIGKILLs delivered while terraform ran
	Interrupts   int // SIGINTs delivered while terraform ran
	Failures     int
	DuplicateOps int
	RowsLost     int
	Notes        []string
}

// Add records one case.
func (t *Tally) Add(c Case) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Cases++
	t.Faults += c.Faults
	t.Kills += c.Kills
	t.Interrupts += c.Interrupts
	t.DuplicateOps += c.DuplicateOps
	t.RowsLost += c.RowsLost
	status := "ok"
	if c.Failed {
		t.Failures++
		status = "FAILED"
	}
	t.Notes = append(t.Notes, fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %s |", c.Name, status, c.Faults, c.Kills, c.Interrupts, c.DuplicateOps, c.RowsLost, strings.ReplaceAll(c.Detail, "|", "/")))
}

// Case is the outcome of one chaos case.
type Case struct {
	Name                      string
	Faults, Kills, Interrupts int
	DuplicateOps, RowsLost    int
	Failed                    bool
	Detail                    string
}

// Merge adds the cases recorded as JSON lines in path (name, faults, failed, duplicate_ops,
// rows_lost), as the provider's fault matrix writes them. A missing file is an error: the caller
// asked for it.
func (t *Tally) Merge(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the fault matrix tally: %w", err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var c struct {
			Name         string `json:"name"`
			Faults       int    `json:"faults"`
			Failed       bool   `json:"failed"`
			DuplicateOps int    `json:"duplicate_ops"`
			RowsLost     int    `json:"rows_lost"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		t.Add(Case{Name: c.Name, Faults: c.Faults, Failed: c.Failed, DuplicateOps: c.DuplicateOps, RowsLost: c.RowsLost})
	}
	return nil
}

// Summary is the one-screen tally printed at the end of a run.
func (t *Tally) Summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("chaos summary: cases run %d, faults injected %d, kills made %d (SIGKILL) + %d (SIGINT), failures %d, duplicate operations %d, rows lost %d",
		t.Cases, t.Faults, t.Kills, t.Interrupts, t.Failures, t.DuplicateOps, t.RowsLost)
}

// Markdown is the full report: the summary and one row per case.
func (t *Tally) Markdown(title string) string {
	sum := t.Summary()
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", title, sum)
	b.WriteString("| case | result | faults | kills | SIGINTs | duplicate ops | rows lost | detail |\n|---|---|---|---|---|---|---|---|\n")
	notes := append([]string(nil), t.Notes...)
	sort.Strings(notes)
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// WriteFile writes s to path, creating its directory.
func WriteFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// Grep reports which of the named texts contain needle (a secret), by name.
func Grep(needle string, texts map[string]io.Reader) ([]string, error) {
	var hits []string
	for name, r := range texts {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if bytes.Contains(b, []byte(needle)) {
			hits = append(hits, name)
		}
	}
	sort.Strings(hits)
	return hits, nil
}
