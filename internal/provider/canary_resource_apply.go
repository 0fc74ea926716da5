package provider

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// Timeouts the canary gives each engine operation (the control plane's drain and health limits).
const (
	canaryDrainTimeout  = 30 * time.Second
	canaryHealthTimeout = 2 * time.Minute
	// fleetGetLimit is the largest scope read with one GET per engine; above it Read lists the
	// fleet once (a few paged requests) and filters client-side, which is cheaper than n GETs
	// for any fleet where the canary covers a meaningful share.
	fleetGetLimit = 50
	// fleetGetParallel bounds those GETs in flight at once.
	fleetGetParallel = 10
	// readParallel is the least concurrency of an analysis's reads (metrics, evals on a small
	// sample): they change nothing, so even a sequential rollout (max_parallel = 1) reads its
	// hundred-engine samples side by side instead of one after another.
	readParallel = 20
)

// canaryRun is one walk of a canary over the fleet. It holds the progress that must survive an
// interruption (stable versions, snapshot ids, moved users) under a mutex, because engines move
// concurrently. It knows nothing of Terraform, so benchmarks and tests drive it directly.
type canaryRun struct {
	d        *rollout.Driver
	cat      *upgrade.Catalog
	version  string
	seed     string
	users    []string
	parallel int
	bake     time.Duration
	analysis upgrade.AnalysisConfig
	suite    string
	window   time.Duration
	rollout  *upgrade.Window

	mu        sync.Mutex
	stable    map[string]string
	snapshots map[string]string
	moved     map[string]bool
	last      *analysisRecord
	owner     *canaryClaim // claims each engine before it moves (nil: claims nothing)
}

// analysisRecord is last_analysis as Go values.
type analysisRecord struct {
	Step    int64
	Verdict upgrade.Verdict
	At      time.Time
}

// stepFailure is why a step failed: an engine that did not move, or a failed analysis. Moved
// engines have been rolled back by the time it is returned (RollbackErr says if not).
type stepFailure struct {
	Step        int64
	Engine      string
	EngineErr   error
	AnalysisErr error
	Verdict     *upgrade.Verdict
	RollbackErr error
	RolledBack  []string
}

func (f *stepFailure) Error() string {
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

// interruptedError marks a walk stopped by cancellation or the timeout; progress so far is kept.
type interruptedError struct{ cause error }

func (e *interruptedError) Error() string { return e.cause.Error() }

func newCanaryRun(d *rollout.Driver, cat *upgrade.Catalog, version, seed string, users []string, parallel int) *canaryRun {
	if parallel < 1 {
		parallel = 1
	}
	return &canaryRun{d: d, cat: cat, version: version, seed: seed, users: users, parallel: parallel,
		stable: map[string]string{}, snapshots: map[string]string{}, moved: map[string]bool{}}
}

// movedList is the moved users in scope, in rank order.
func (run *canaryRun) movedList() []string {
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

// observe records what the fleet runs: engines on the canary version count as moved (an engine
// already there is moved without an operation), others as not. A moved engine with no recorded
// stable version gets it from its last upgrade operation, so a lost state write never loses the
// rollback target or the snapshot.
func (run *canaryRun) observe(ctx context.Context, engines map[string]api.Engine) {
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

// windowError is a step the rollout window did not let start.
type windowError struct{ msg string }

func (e *windowError) Error() string { return e.msg }

// walk moves the fleet through targets, baking and analysing after each step. It stops at the
// first failure (after rolling every moved engine back) or interruption.
func (run *canaryRun) walk(ctx context.Context, targets []int64) error {
	for _, pct := range targets {
		if run.rollout != nil && !run.rollout.Contains(time.Now()) {
			return &windowError{fmt.Sprintf("it is %s, outside the rollout window %s: the %d%% step was not started. The window next opens at %s; apply again then, or change rollout_window",
				time.Now().UTC().Format(time.RFC3339), run.rollout.String(), pct, run.rollout.NextOpening(time.Now()).Format(time.RFC3339))}
		}
		if err := run.step(ctx, pct); err != nil {
			return err
		}
	}
	return nil
}

// step moves one step's cohort, then judges it.
func (run *canaryRun) step(ctx context.Context, pct int64) error {
	move := upgrade.PlanSteps(run.seed, run.users, []int64{pct}, run.movedList())[0]
	var pre []api.Metrics
	if len(move.Cohort) == len(run.users) && len(move.Movers) > 0 {
		// No engine stays behind to be the baseline: measure the movers before they move.
		var err error
		if pre, err = run.metrics(ctx, upgrade.Sample(move.Movers, analysisSample)); err != nil {
			return wrapInterrupt(ctx, err)
		}
	}
	evalUsers := upgrade.Sample(move.Movers, evalSample)
	var baseEval *float64
	if run.suite != "" && len(evalUsers) > 0 {
		scores, err := run.evals(ctx, evalUsers)
		if err != nil {
			return wrapInterrupt(ctx, err)
		}
		baseEval = upgrade.MeanScore(scores)
	}
	if user, err := run.moveAll(ctx, move.Movers); err != nil {
		if ctx.Err() != nil {
			return &interruptedError{err}
		}
		return run.abort(ctx, &stepFailure{Step: pct, Engine: user, EngineErr: err})
	}
	return run.judge(ctx, pct, move.Cohort, pre, evalUsers, baseEval)
}

// reanalyse judges the step the fleet already stands at when its analysis never finished (an
// apply interrupted during the bake or the analysis): the bake runs again in full, then the
// analysis, without the pre-move figures an interrupted step could not keep (at 100% that leaves
// the absolute thresholds only; evals need a pre-move baseline and are skipped).
func (run *canaryRun) reanalyse(ctx context.Context, pct int64) error {
	return run.judge(ctx, pct, run.movedList(), nil, nil, nil)
}

// judge bakes the cohort standing at pct, analyses it against the thresholds and the baseline
// (the engines not in it, else pre), and aborts the canary when it fails, or when the analysis
// cannot run at all: an unjudged step is never counted as passed.
func (run *canaryRun) judge(ctx context.Context, pct int64, cohort []string, pre []api.Metrics, evalUsers []string, baseEval *float64) error {
	if err := client.Sleep(ctx, run.bake); err != nil {
		return &interruptedError{err}
	}
	cannot := func(err error) error {
		if ctx.Err() != nil {
			return &interruptedError{err}
		}
		return run.abort(ctx, &stepFailure{Step: pct, AnalysisErr: err})
	}
	canary, err := run.metrics(ctx, upgrade.Sample(cohort, analysisSample))
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
		if baseline, err = run.metrics(ctx, upgrade.Sample(rest, analysisSample)); err != nil {
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
	v := upgrade.Analyze(run.analysis, canary, baseline, canaryEval, baseEval)
	run.mu.Lock()
	run.last = &analysisRecord{Step: pct, Verdict: v, At: time.Now()}
	run.mu.Unlock()
	if !v.Pass() {
		return run.abort(ctx, &stepFailure{Step: pct, Verdict: &v})
	}
	return nil
}

func wrapInterrupt(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &interruptedError{err}
	}
	return err
}

// abort rolls every engine the canary moved back to its stable version and returns f with the
// outcome. It runs on the apply's own context: if that ends first, state records which engines
// still run the canary version, the phase stays progressing with the failed analysis, and the
// next apply judges that step again (failing again, it aborts again) before anything moves.
func (run *canaryRun) abort(ctx context.Context, f *stepFailure) error {
	users := run.rollbackCandidates()
	f.RolledBack, f.RollbackErr = run.rollbackAll(ctx, users)
	return f
}

// rollbackCandidates are the users with a recorded stable version other than the canary's: the
// ones that moved (or may have, mid-operation) in this or an earlier apply.
func (run *canaryRun) rollbackCandidates() []string {
	run.mu.Lock()
	defer run.mu.Unlock()
	var out []string
	for u, v := range run.stable {
		if v != run.version {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// pool runs fn for each user with at most run.parallel at once.
func (run *canaryRun) pool(ctx context.Context, users []string, fn func(ctx context.Context, user string) error) (string, error) {
	return boundedEach(ctx, run.parallel, users, fn)
}

// boundedEach runs fn for each user with at most parallel at once: a fixed set of workers, so
// 1,000 users cost `parallel` goroutines, not 1,000. After the first error it starts no more
// (those running finish: cancelling them would leave operations orphaned mid-way), and returns
// that user and error.
func boundedEach(ctx context.Context, parallel int, users []string, fn func(ctx context.Context, user string) error) (string, error) {
	var (
		wg       sync.WaitGroup
		once     sync.Once
		failed   atomic.Bool
		badUser  string
		firstErr error
	)
	work := make(chan string)
	n := max(1, min(parallel, len(users)))
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if err := fn(ctx, u); err != nil {
					once.Do(func() { badUser, firstErr = u, err })
					failed.Store(true)
				}
			}
		}()
	}
	for _, u := range users {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		work <- u
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return "", ctx.Err()
	}
	return badUser, firstErr
}

func (run *canaryRun) moveAll(ctx context.Context, users []string) (string, error) {
	return run.pool(ctx, users, run.moveOne)
}

// moveOne brings one engine to the canary version: attach to an upgrade an interrupted apply left
// running, else snapshot first when the path migrates (reusing a recorded snapshot that still
// protects the engine), then upgrade and wait.
func (run *canaryRun) moveOne(ctx context.Context, user string) error {
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
		return fmt.Errorf("user %s's engine is %s on %s (%s), not running: fix or restore it first", user, e.Status, e.EngineVersion, engineErrorText(e))
	}
	from := e.EngineVersion
	p, err := run.cat.Path(from, run.version)
	if err != nil {
		return err
	}
	if p.Kind == upgrade.KindDowngrade {
		return fmt.Errorf("user %s's engine runs %s, newer than %s: a canary never downgrades", user, from, run.version)
	}
	if err := run.owner.claim(ctx, user); err != nil {
		return err
	}
	run.record(user, from, "", false)
	snapID := ""
	if p.RequiresSnapshot {
		if snapID, err = run.snapshot(ctx, e); err != nil {
			return err
		}
	}
	op, err := run.d.StartUpgrade(ctx, user, client.NewIdempotencyKey(), 0, api.UpgradeRequest{Version: run.version, SnapshotID: snapID,
		DrainTimeoutSeconds: rollout.Seconds(canaryDrainTimeout), HealthTimeoutSeconds: rollout.Seconds(canaryHealthTimeout)})
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
func (run *canaryRun) snapshot(ctx context.Context, e api.Engine) (string, error) {
	run.mu.Lock()
	prev := run.snapshots[e.UserID]
	run.mu.Unlock()
	if prev != "" {
		if s, err := run.d.Client.GetSnapshot(ctx, prev); err == nil && upgrade.CheckSnapshot(e, s, time.Time{}) == nil && s.BrainWrites == e.BrainWrites {
			return s.ID, nil
		}
	}
	req := api.CreateSnapshotRequest{Description: fmt.Sprintf("pre-upgrade %s -> %s (engine_canary)", e.EngineVersion, run.version), RetentionDays: defaultRetentionDays}
	// A derived key: a canary killed after this request and applied again replays this snapshot.
	s, err := run.takeSnapshot(ctx, e, rollout.PreUpgradeSnapshotKey("engine_canary", e, run.version), req)
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
func (run *canaryRun) takeSnapshot(ctx context.Context, e api.Engine, key string, req api.CreateSnapshotRequest) (api.Snapshot, error) {
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
func (run *canaryRun) record(user, from, snap string, moved bool) {
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
func (run *canaryRun) rollbackAll(ctx context.Context, users []string) ([]string, error) {
	var mu sync.Mutex
	var done []string
	user, err := run.pool(ctx, users, func(ctx context.Context, u string) error {
		run.mu.Lock()
		to, snap := run.stable[u], run.snapshots[u]
		run.mu.Unlock()
		if err := rollbackEngine(ctx, run.d, run.cat, u, to, snap); err != nil {
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
		return done, fmt.Errorf("user %s: %s", orUnknown(user), errText(err))
	}
	return done, nil
}

// rollbackEngine returns one engine to version to (restoring snap where the schema moved) and
// verifies it runs healthy there.
func rollbackEngine(ctx context.Context, d *rollout.Driver, cat *upgrade.Catalog, user, to, snap string) error {
	attach := func(op api.Operation) bool {
		return (op.Kind == api.OpUpgrade || op.Kind == api.OpRestore) && op.ToVersion == to
	}
	e, _, err := d.Idle(ctx, user, attach)
	if client.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.EngineVersion != to || e.Status != api.StatusRunning {
		rb, err := rollout.PlanRollback(cat, e, to, snap)
		if err != nil {
			return err
		}
		if _, err := d.Rollback(ctx, user, client.NewIdempotencyKey(), rb, canaryDrainTimeout, canaryHealthTimeout); err != nil {
			return err
		}
		if e, err = d.Client.GetEngine(ctx, user); err != nil {
			return err
		}
	}
	if e.EngineVersion != to || e.Status != api.StatusRunning || (e.Health.Status != "" && e.Health.Status != "ok") {
		return fmt.Errorf("after the rollback user %s's engine runs %s with status %s and health %q, not %s running healthy", user, e.EngineVersion, e.Status, e.Health.Status, to)
	}
	return nil
}

// metrics reads each user's metrics over the analysis window, in parallel.
func (run *canaryRun) metrics(ctx context.Context, users []string) ([]api.Metrics, error) {
	out := make([]api.Metrics, len(users))
	idx := make(map[string]int, len(users))
	for i, u := range users {
		idx[u] = i
	}
	_, err := boundedEach(ctx, max(run.parallel, readParallel), users, func(ctx context.Context, u string) error {
		m, err := run.d.Client.Metrics(ctx, u, run.window)
		if err != nil {
			return err
		}
		out[idx[u]] = m
		return nil
	})
	return out, err
}

// evals runs the eval suite on each user's engine, in parallel.
func (run *canaryRun) evals(ctx context.Context, users []string) ([]float64, error) {
	out := make([]float64, len(users))
	idx := make(map[string]int, len(users))
	for i, u := range users {
		idx[u] = i
	}
	_, err := boundedEach(ctx, max(run.parallel, readParallel), users, func(ctx context.Context, u string) error {
		s, err := run.d.Eval(ctx, u, run.suite)
		out[idx[u]] = s
		return err
	})
	return out, err
}

// fleet reads the engines of users: one GET each (bounded parallelism) for a small scope, else one
// paged list filtered client-side. Users the control plane does not know are absent.
func fleet(ctx context.Context, c *client.Client, users []string) (map[string]api.Engine, error) {
	out := make(map[string]api.Engine, len(users))
	if len(users) > fleetGetLimit {
		want := make(map[string]bool, len(users))
		for _, u := range users {
			want[u] = true
		}
		all, err := c.AllEngines(ctx, client.ListEnginesOptions{})
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if want[e.UserID] {
				out[e.UserID] = e
			}
		}
		return out, nil
	}
	var mu sync.Mutex
	_, err := boundedEach(ctx, fleetGetParallel, users, func(ctx context.Context, u string) error {
		e, err := c.GetEngine(ctx, u)
		if client.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		out[u] = e
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isInterrupted reports whether err is a walk stopped by cancellation or timeout.
func isInterrupted(err error) bool {
	var ie *interruptedError
	return errors.As(err, &ie)
}
