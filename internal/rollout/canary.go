package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// The canary's engine: one walk of a version over a fleet of engines, step by step, with a bake
// and an analysis after each step, and the abort that rolls every moved engine back.

const (
	// CanaryDrainTimeout and CanaryHealthTimeout are what the canary gives each engine operation
	// (the control plane's drain and health limits).
	CanaryDrainTimeout  = 30 * time.Second
	CanaryHealthTimeout = 2 * time.Minute
	// AnalysisSample bounds how many engines per group analysis reads metrics from.
	AnalysisSample = 100
	// EvalSample bounds how many of a step's movers run the eval suite before and after.
	EvalSample = 5
	// readParallel is the least concurrency of an analysis's reads (metrics, evals on a small
	// sample): they change nothing, so even a sequential rollout (max_parallel = 1) reads its
	// hundred-engine samples side by side instead of one after another.
	readParallel = 20
)

// Canary is one walk of a canary over the fleet. It holds the progress that must survive an
// interruption (stable versions, snapshot ids, moved users) under a mutex, because engines move
// concurrently. It knows nothing of Terraform, so benchmarks and tests drive it directly.
type Canary struct {
	d        *Driver
	cat      *upgrade.Catalog
	version  string
	seed     string
	users    []string
	parallel int

	// Bake is how long a step's cohort runs before its analysis.
	Bake time.Duration
	// Analysis holds the thresholds and the baseline tolerance of each step's analysis.
	Analysis upgrade.AnalysisConfig
	// Suite is the eval suite run before and after a step's move ("" for none).
	Suite string
	// Window is the metrics window the analysis reads.
	Window time.Duration
	// Rollout is the rollout window steps may start in (nil: any time).
	Rollout *upgrade.Window
	// RetentionDays is how long the pre-upgrade snapshots are kept.
	RetentionDays int
	// Claim, when set, is called just before the walk moves an engine (after any operation an
	// interrupted walk left is attached to); an error leaves that engine unmoved.
	Claim func(ctx context.Context, user string) error
	// Skip, when set, takes users out of every rollback: engines another manager has taken over.
	Skip func(user string) bool

	mu        sync.Mutex
	stable    map[string]string
	snapshots map[string]string
	moved     map[string]bool
	last      *AnalysisRecord
}

// AnalysisRecord is the last analysis a walk ran.
type AnalysisRecord struct {
	Step    int64
	Verdict upgrade.Verdict
	At      time.Time
}

// StepFailure is why a step failed: an engine that did not move, or a failed analysis. Moved
// engines have been rolled back by the time it is returned (RollbackErr says if not).
type StepFailure struct {
	Step        int64
	Engine      string
	EngineErr   error
	AnalysisErr error
	Verdict     *upgrade.Verdict
	RollbackErr error
	RolledBack  []string
}

func (f *StepFailure) Error() string { return f.Text(plainText) }

// Text says what failed, rendering the underlying error with errText.
func (f *StepFailure) Text(errText func(error) string) string {
	var b strings.Builder
	switch {
	case f.Verdict != nil:
		fmt.Fprintf(&b, "The analysis of the %d%% step failed:\n%s", f.Step, f.Verdict.Summary())
	case f.AnalysisErr != nil:
		fmt.Fprintf(&b, "The analysis of the %d%% step could not run (%s), and an unjudged step never counts as passed", f.Step, errText(f.AnalysisErr))
	default:
		fmt.Fprintf(&b, "Moving user %s's engine at the %d%% step failed: %s", f.Engine, f.Step, errText(f.EngineErr))
	}
	return b.String()
}

// RollbackError is the first engine a rollback of the fleet could not return (User is "" when the
// walk was cancelled first).
type RollbackError struct {
	User string
	Err  error
}

func (e *RollbackError) Error() string { return e.Text(plainText) }

// Text names the user and renders the underlying error with errText.
func (e *RollbackError) Text(errText func(error) string) string {
	user := e.User
	if strings.TrimSpace(user) == "" {
		user = "(unknown id)"
	}
	return fmt.Sprintf("user %s: %s", user, errText(e.Err))
}

func (e *RollbackError) Unwrap() error { return e.Err }

func plainText(err error) string { return err.Error() }

// InterruptedError marks a walk stopped by cancellation or the timeout; progress so far is kept.
type InterruptedError struct{ Cause error }

func (e *InterruptedError) Error() string { return e.Cause.Error() }

// IsInterrupted reports whether err is a walk stopped by cancellation or timeout.
func IsInterrupted(err error) bool {
	var ie *InterruptedError
	return errors.As(err, &ie)
}

// WindowError is a step the rollout window did not let start.
type WindowError struct{ msg string }

func (e *WindowError) Error() string { return e.msg }

// NewCanary starts a walk of version over users, moving at most parallel engines at once.
func NewCanary(d *Driver, cat *upgrade.Catalog, version, seed string, users []string, parallel int) *Canary {
	if parallel < 1 {
		parallel = 1
	}
	return &Canary{d: d, cat: cat, version: version, seed: seed, users: users, parallel: parallel,
		stable: map[string]string{}, snapshots: map[string]string{}, moved: map[string]bool{}}
}

// Catalog is the release catalog the walk plans with.
func (run *Canary) Catalog() *upgrade.Catalog { return run.cat }

// Seed is the cohort seed.
func (run *Canary) Seed() string { return run.seed }

// Resume takes the stable versions and snapshots an earlier walk recorded.
func (run *Canary) Resume(stable, snapshots map[string]string) {
	run.mu.Lock()
	defer run.mu.Unlock()
	for k, v := range stable {
		run.stable[k] = v
	}
	for k, v := range snapshots {
		run.snapshots[k] = v
	}
}

// KeepOnVersion records engines already on the canary version before the canary existed: they
// stay there on destroy, their stable version is the version itself (not whatever an older,
// unrelated upgrade came from).
func (run *Canary) KeepOnVersion(engines map[string]api.Engine) {
	run.mu.Lock()
	defer run.mu.Unlock()
	for u, e := range engines {
		if e.EngineVersion == run.version {
			run.stable[u] = run.version
		}
	}
}

// Stable is a copy of the recorded stable versions.
func (run *Canary) Stable() map[string]string { return run.copyOf(run.stable) }

// Snapshots is a copy of the recorded snapshot ids.
func (run *Canary) Snapshots() map[string]string { return run.copyOf(run.snapshots) }

func (run *Canary) copyOf(m map[string]string) map[string]string {
	run.mu.Lock()
	defer run.mu.Unlock()
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Last is the last analysis this walk ran, nil for none.
func (run *Canary) Last() *AnalysisRecord {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.last
}

// MovedList is the moved users in scope, in rank order.
func (run *Canary) MovedList() []string {
	run.mu.Lock()
	defer run.mu.Unlock()
	var out []string
	for _, u := range upgrade.Rank(run.seed, run.users) {
		if run.moved[u] {
			out = append(out, u)
		}
	}
	return out
}

// Observe records what the fleet runs: engines on the canary version count as moved (an engine
// already there is moved without an operation), others as not. A moved engine with no recorded
// stable version gets it from its last upgrade operation, so a lost state write never loses the
// rollback target or the snapshot.
func (run *Canary) Observe(ctx context.Context, engines map[string]api.Engine) {
	var unrecorded []string
	run.mu.Lock()
	for u, e := range engines {
		on := e.EngineVersion == run.version && e.Status != api.StatusFailed
		run.moved[u] = on
		if on && run.stable[u] == "" {
			unrecorded = append(unrecorded, u)
		}
	}
	run.mu.Unlock()
	for _, u := range unrecorded {
		from, snap := run.version, ""
		if ops, err := run.d.Client.ListOperations(ctx, u); err == nil {
			for _, op := range ops { // newest first
				if op.Kind == api.OpUpgrade && op.Status == api.OpSucceeded && op.ToVersion == run.version {
					from, snap = op.FromVersion, op.SnapshotID
					break
				}
			}
		}
		run.mu.Lock()
		run.stable[u] = from
		if snap != "" && run.snapshots[u] == "" {
			run.snapshots[u] = snap
		}
		run.mu.Unlock()
	}
}

// Hold takes the held users out of the walk's scope and returns the scope.
func (run *Canary) Hold(held map[string]string) []string {
	run.users = upgrade.Without(run.users, held)
	return run.users
}

// ScopeWithRecorded is the users in scope plus any recorded ones since removed from the scope:
// those still need rolling back on destroy.
func (run *Canary) ScopeWithRecorded() []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range run.users {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	var extra []string
	for u := range run.stable {
		if !seen[u] {
			seen[u] = true
			extra = append(extra, u)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

// WidenScope makes the walk's scope its users plus every user this canary moved (a recorded
// stable version other than the canary's) that runs the canary version now, and returns it. Call
// it after Observe.
func (run *Canary) WidenScope() []string {
	run.mu.Lock()
	var mine []string
	for u, v := range run.stable {
		if v != run.version && run.moved[u] {
			mine = append(mine, u)
		}
	}
	run.mu.Unlock()
	run.users = upgrade.Scope(run.users, mine)
	return run.users
}

// Advance walks the fleet through targets; with rejudge it first judges again the step cur the
// fleet already stands at (an apply stopped during its bake or analysis left it unjudged).
func (run *Canary) Advance(ctx context.Context, cur int64, targets []int64, rejudge bool) error {
	if rejudge {
		if err := run.Reanalyse(ctx, cur); err != nil {
			return err
		}
	}
	return run.Walk(ctx, targets)
}

// Walk moves the fleet through targets, baking and analysing after each step. It stops at the
// first failure (after rolling every moved engine back) or interruption.
func (run *Canary) Walk(ctx context.Context, targets []int64) error {
	for _, pct := range targets {
		if run.Rollout != nil && !run.Rollout.Contains(time.Now()) {
			return &WindowError{fmt.Sprintf("it is %s, outside the rollout window %s: the %d%% step was not started. The window next opens at %s; apply again then, or change rollout_window",
				time.Now().UTC().Format(time.RFC3339), run.Rollout.String(), pct, run.Rollout.NextOpening(time.Now()).Format(time.RFC3339))}
		}
		if err := run.step(ctx, pct); err != nil {
			return err
		}
	}
	return nil
}

// step moves one step's cohort, then judges it.
func (run *Canary) step(ctx context.Context, pct int64) error {
	move := upgrade.PlanSteps(run.seed, run.users, []int64{pct}, run.MovedList())[0]
	var pre []api.Metrics
	if len(move.Cohort) == len(run.users) && len(move.Movers) > 0 {
		// No engine stays behind to be the baseline: measure the movers before they move.
		var err error
		if pre, err = run.metrics(ctx, upgrade.Sample(move.Movers, AnalysisSample)); err != nil {
			return wrapInterrupt(ctx, err)
		}
	}
	evalUsers := upgrade.Sample(move.Movers, EvalSample)
	var baseEval *float64
	if run.Suite != "" && len(evalUsers) > 0 {
		scores, err := run.evals(ctx, evalUsers)
		if err != nil {
			return wrapInterrupt(ctx, err)
		}
		baseEval = upgrade.MeanScore(scores)
	}
	if user, err := run.MoveAll(ctx, move.Movers); err != nil {
		if ctx.Err() != nil {
			return &InterruptedError{err}
		}
		return run.abort(ctx, &StepFailure{Step: pct, Engine: user, EngineErr: err})
	}
	return run.judge(ctx, pct, move.Cohort, pre, evalUsers, baseEval)
}

// Reanalyse judges the step the fleet already stands at when its analysis never finished (an
// apply interrupted during the bake or the analysis): the bake runs again in full, then the
// analysis, without the pre-move figures an interrupted step could not keep (at 100% that leaves
// the absolute thresholds only; evals need a pre-move baseline and are skipped).
func (run *Canary) Reanalyse(ctx context.Context, pct int64) error {
	return run.judge(ctx, pct, run.MovedList(), nil, nil, nil)
}

// judge bakes the cohort standing at pct, analyses it against the thresholds and the baseline
// (the engines not in it, else pre), and aborts the canary when it fails, or when the analysis
// cannot run at all: an unjudged step is never counted as passed.
func (run *Canary) judge(ctx context.Context, pct int64, cohort []string, pre []api.Metrics, evalUsers []string, baseEval *float64) error {
	if err := client.Sleep(ctx, run.Bake); err != nil {
		return &InterruptedError{err}
	}
	cannot := func(err error) error {
		if ctx.Err() != nil {
			return &InterruptedError{err}
		}
		return run.abort(ctx, &StepFailure{Step: pct, AnalysisErr: err})
	}
	canary, err := run.metrics(ctx, upgrade.Sample(cohort, AnalysisSample))
	if err != nil {
		return cannot(err)
	}
	baseline := pre
	if len(cohort) < len(run.users) {
		in := map[string]bool{}
		for _, u := range cohort {
			in[u] = true
		}
		var rest []string
		for _, u := range upgrade.Rank(run.seed, run.users) {
			if !in[u] {
				rest = append(rest, u)
			}
		}
		if baseline, err = run.metrics(ctx, upgrade.Sample(rest, AnalysisSample)); err != nil {
			return cannot(err)
		}
	}
	var canaryEval *float64
	if baseEval != nil {
		scores, err := run.evals(ctx, evalUsers)
		if err != nil {
			return cannot(err)
		}
		canaryEval = upgrade.MeanScore(scores)
	}
	v := upgrade.Analyze(run.Analysis, canary, baseline, canaryEval, baseEval)
	run.mu.Lock()
	run.last = &AnalysisRecord{Step: pct, Verdict: v, At: time.Now()}
	run.mu.Unlock()
	if !v.Pass() {
		return run.abort(ctx, &StepFailure{Step: pct, Verdict: &v})
	}
	return nil
}

func wrapInterrupt(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &InterruptedError{err}
	}
	return err
}

// abort rolls every engine the canary moved back to its stable version and returns f with the
// outcome. It runs on the apply's own context: if that ends first, state records which engines
// still run the canary version, the phase stays progressing with the failed analysis, and the
// next apply judges that step again (failing again, it aborts again) before anything moves.
func (run *Canary) abort(ctx context.Context, f *StepFailure) error {
	f.RolledBack, f.RollbackErr = run.RollBackAll(ctx)
	return f
}

// RollBackAll returns every engine the canary moved (in this or an earlier walk) to its stable
// version, and lists those that are back. A *RollbackError names the first that could not be.
func (run *Canary) RollBackAll(ctx context.Context) ([]string, error) {
	return run.rollbackAll(ctx, run.rollbackCandidates())
}

// rollbackCandidates are the users with a recorded stable version other than the canary's: the
// ones that moved (or may have, mid-operation) in this or an earlier apply.
func (run *Canary) rollbackCandidates() []string {
	run.mu.Lock()
	defer run.mu.Unlock()
	var out []string
	for u, v := range run.stable {
		if v != run.version && (run.Skip == nil || !run.Skip(u)) {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// MoveAll moves users to the canary version, at most the walk's parallel at once, and returns
// the first user that failed with its error.
func (run *Canary) MoveAll(ctx context.Context, users []string) (string, error) {
	return boundedEach(ctx, run.parallel, users, run.moveOne)
}

// moveOne brings one engine to the canary version: attach to an upgrade an interrupted apply left
// running, else snapshot first when the path migrates (reusing a recorded snapshot that still
// protects the engine), then upgrade and wait.
func (run *Canary) moveOne(ctx context.Context, user string) error {
	attach := func(op api.Operation) bool {
		return (op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == run.version
	}
	e, attached, err := run.d.Idle(ctx, user, attach)
	if err != nil {
		return err
	}
	if attached != nil && attached.Status == api.OpSucceeded && e.EngineVersion == run.version {
		run.record(user, attached.FromVersion, attached.SnapshotID, true)
		return nil
	}
	if e.EngineVersion == run.version && e.Status == api.StatusRunning {
		run.record(user, "", "", true)
		return nil
	}
	if e.Status != api.StatusRunning {
		return fmt.Errorf("user %s's engine is %s on %s (%s), not running: fix or restore it first", user, e.Status, e.EngineVersion, EngineErrorText(e))
	}
	from := e.EngineVersion
	p, err := run.cat.Path(from, run.version)
	if err != nil {
		return err
	}
	if p.Kind == upgrade.KindDowngrade {
		return fmt.Errorf("user %s's engine runs %s, newer than %s: a canary never downgrades", user, from, run.version)
	}
	if run.Claim != nil {
		if err := run.Claim(ctx, user); err != nil {
			return err
		}
	}
	run.record(user, from, "", false)
	snapID := ""
	if p.RequiresSnapshot {
		if snapID, err = run.snapshot(ctx, e); err != nil {
			return err
		}
	}
	op, err := run.d.StartUpgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: run.version, SnapshotID: snapID,
		DrainTimeoutSeconds: seconds(CanaryDrainTimeout), HealthTimeoutSeconds: seconds(CanaryHealthTimeout)})
	if err != nil {
		return err
	}
	if _, err := run.d.Wait(ctx, op); err != nil {
		return err
	}
	run.record(user, "", "", true)
	return nil
}

// snapshot returns a snapshot protecting e's upgrade: the recorded one when it is still of the
// current version and schema with no brain write since (so an abort loses nothing), else a new
// one, recorded as soon as the control plane names it so an interrupt never loses its id.
func (run *Canary) snapshot(ctx context.Context, e api.Engine) (string, error) {
	run.mu.Lock()
	prev := run.snapshots[e.UserID]
	run.mu.Unlock()
	if prev != "" {
		if s, err := run.d.Client.GetSnapshot(ctx, prev); err == nil && upgrade.CheckSnapshot(e, s, time.Time{}) == nil && s.BrainWrites == e.BrainWrites {
			return s.ID, nil
		}
	}
	req := api.CreateSnapshotRequest{Description: fmt.Sprintf("pre-upgrade %s -> %s (engine_canary)", e.EngineVersion, run.version), RetentionDays: run.RetentionDays}
	// A derived key: a canary killed after this request and applied again replays this snapshot.
	s, err := run.takeSnapshot(ctx, e, PreUpgradeSnapshotKey("engine_canary", e, run.version), req)
	if err == nil && upgrade.CheckSnapshot(e, s, time.Time{}) != nil {
		// The derived key cannot tell a brain restored to the same version, schema and write
		// count from the one it was taken of: the replay is older than the engine's last
		// migration and would be refused. Take a fresh one.
		s, err = run.takeSnapshot(ctx, e, client.NewIdempotencyKey(), req)
	}
	if err != nil {
		return "", err
	}
	run.record(e.UserID, "", s.ID, false)
	return s.ID, nil
}

// takeSnapshot starts a snapshot under key, records its id as soon as the control plane names
// it, and waits for it to be verified.
func (run *Canary) takeSnapshot(ctx context.Context, e api.Engine, key string, req api.CreateSnapshotRequest) (api.Snapshot, error) {
	op, err := run.d.StartSnapshot(ctx, e.UserID, key, req)
	if err != nil {
		return api.Snapshot{}, err
	}
	if id := firstNonEmpty(op.SnapshotID, op.Result.SnapshotID); id != "" {
		run.record(e.UserID, "", id, false)
	}
	s, _, err := run.d.FinishSnapshot(ctx, op)
	return s, err
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// record notes a user's stable version (only if none is recorded yet, or from is set), snapshot
// and, when moved, that it runs the canary version. An empty stable version with moved means the
// engine was already there.
func (run *Canary) record(user, from, snap string, moved bool) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if from != "" {
		run.stable[user] = from
	} else if moved && run.stable[user] == "" {
		run.stable[user] = run.version
	}
	if snap != "" {
		run.snapshots[user] = snap
	}
	if moved {
		run.moved[user] = true
	}
}

// rollbackAll returns users to their stable versions, in parallel, verifying each healthy. It
// resumes: a rollback already running is attached to, and an engine already back is skipped.
func (run *Canary) rollbackAll(ctx context.Context, users []string) ([]string, error) {
	var mu sync.Mutex
	var done []string
	user, err := boundedEach(ctx, run.parallel, users, func(ctx context.Context, u string) error {
		run.mu.Lock()
		to, snap := run.stable[u], run.snapshots[u]
		run.mu.Unlock()
		if _, err := run.d.RollBackTo(ctx, run.cat, u, to, snap, RollbackOptions{Drain: CanaryDrainTimeout, Health: CanaryHealthTimeout, Resume: true}); err != nil && !client.IsNotFound(err) {
			return err
		}
		run.mu.Lock()
		run.moved[u] = false
		run.mu.Unlock()
		mu.Lock()
		done = append(done, u)
		mu.Unlock()
		return nil
	})
	sort.Strings(done)
	if err != nil {
		return done, &RollbackError{User: user, Err: err}
	}
	return done, nil
}

// metrics reads each user's metrics over the analysis window, in parallel.
func (run *Canary) metrics(ctx context.Context, users []string) ([]api.Metrics, error) {
	out := make([]api.Metrics, len(users))
	idx := make(map[string]int, len(users))
	for i, u := range users {
		idx[u] = i
	}
	_, err := boundedEach(ctx, max(run.parallel, readParallel), users, func(ctx context.Context, u string) error {
		m, err := run.d.Client.Metrics(ctx, u, run.Window)
		if err != nil {
			return err
		}
		out[idx[u]] = m
		return nil
	})
	return out, err
}

// evals runs the eval suite on each user's engine, in parallel.
func (run *Canary) evals(ctx context.Context, users []string) ([]float64, error) {
	out := make([]float64, len(users))
	idx := make(map[string]int, len(users))
	for i, u := range users {
		idx[u] = i
	}
	_, err := boundedEach(ctx, max(run.parallel, readParallel), users, func(ctx context.Context, u string) error {
		s, err := run.d.Eval(ctx, u, run.Suite)
		out[idx[u]] = s
		return err
	})
	return out, err
}

// EngineErrorText is an engine's error as "CODE: message".
func EngineErrorText(e api.Engine) string {
	if e.Error == nil {
		return "no error detail"
	}
	return e.Error.Code + ": " + e.Error.Message
}
