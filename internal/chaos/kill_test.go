package chaos

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// killScenario is a Terraform run worth killing: setup brings a fresh control plane and
// workspace to the moment before it, args is the run, resume the command that must converge
// afterwards, and check asserts the outcome.
type killScenario struct {
	name   string
	setup  func(e *env) (*Workspace, *killState)
	args   []string
	resume []string
	check  func(e *env, w *Workspace, s *killState, r *recorder)
}

// killState carries what setup measured for check.
type killState struct {
	users    []string
	before   map[string]map[string]string // user -> table checksums before the killed run
	turns    int                          // turns "before" written into each brain
	migrated map[string]bool              // tables the run's migrations rewrite
}

// killCount is how many seeded kill points each scenario gets.
func killCount() int {
	if quick {
		return 2
	}
	return 12
}

// runKills first runs the scenario unkilled (the control case, which also counts the requests
// the run makes), then once per seeded kill point: SIGKILL the process group when terraform's
// provider makes its k-th request, either while the control plane works on it or right after
// it answered, then resume and check.
func runKills(t *testing.T, sc killScenario) {
	rnd := rng(t)
	var total int64
	t.Run("control", func(t *testing.T) {
		e := newEnv(t, envOptions{engines: len(scenarioUsers(sc))})
		w, st := sc.setup(e)
		base := e.p.Requests()
		out, err := w.Exec(3*time.Minute, sc.args...)
		if err != nil {
			t.Fatalf("unkilled %s: %v\n%s", strings.Join(sc.args, " "), err, out)
		}
		total = e.p.Requests() - base
		rec := newRecorder(t, sc.name+"/control")
		defer rec.done()
		sc.check(e, w, st, rec)
	})
	if total == 0 {
		t.Fatal("the control run made no requests to kill at")
	}
	for _, k := range points(rnd, killCount(), total) {
		after := rnd.IntN(2) == 1
		phase := "while-handled"
		if after {
			phase = "after-answer"
		}
		t.Run(fmt.Sprintf("kill-at-request-%d-of-%d-%s", k, total, phase), func(t *testing.T) {
			e := newEnv(t, envOptions{engines: len(scenarioUsers(sc))})
			w, st := sc.setup(e)
			rec := newRecorder(t, fmt.Sprintf("%s/SIGKILL@%d/%d %s", sc.name, k, total, phase))
			defer rec.done()
			base := e.p.Requests()
			var run atomic.Pointer[Run]
			var killed atomic.Bool
			kill := func() {
				if r := run.Load(); r != nil {
					select {
					case <-r.Done():
					default:
						killed.Store(true)
						r.Kill()
					}
				}
			}
			e.p.OnRequest(func(n int64, _ *http.Request) func() {
				if n-base != k {
					return nil
				}
				if after {
					return kill
				}
				kill()
				return nil
			})
			r, err := w.Start(sc.args...)
			if err != nil {
				t.Fatal(err)
			}
			run.Store(r)
			out, _ := r.Wait(3 * time.Minute)
			e.p.OnRequest(nil)
			if killed.Load() {
				rec.c.Kills++
			} else {
				t.Logf("the run ended before request %d; nothing to kill (output:\n%s)", k, out)
			}
			if _, err := w.State(); err != nil {
				rec.errorf("state file after the kill: %v", err)
			}
			if out, err := w.Exec(3*time.Minute, sc.resume...); err != nil {
				rec.errorf("resume (%s) after the kill failed: %v\n%s", strings.Join(sc.resume, " "), err, out)
				return
			}
			sc.check(e, w, st, rec)
		})
	}
}

func scenarioUsers(sc killScenario) []string {
	if strings.Contains(sc.name, "canary") {
		return canaryUsers
	}
	return []string{"user-0001"}
}

var canaryUsers = []string{"user-0001", "user-0002", "user-0003", "user-0004"}

// migratedTables names the tables the migrations from one version to another rewrite: their
// checksums legitimately change; every other table must come through untouched.
func migratedTables(e *env, from, to string) map[string]bool {
	e.t.Helper()
	p, err := e.p.Client.UpgradePath(e.ctx(), from, to)
	if err != nil {
		e.t.Fatalf("upgrade path: %v", err)
	}
	// The wire catalog leaves the SQL out; the control plane's own catalog has it.
	sqlOf := map[string]string{}
	for _, v := range controlplane.DefaultCatalog() {
		for _, m := range v.Migrations {
			sqlOf[m.ID] = m.SQL
		}
	}
	out := map[string]bool{"schema_migrations": true}
	for t := range e.checksums("user-0001") {
		for _, h := range p.Hops {
			for _, m := range h.Migrations {
				s := m.SQL
				if s == "" {
					s = sqlOf[m.ID]
				}
				if strings.Contains(s, t) {
					out[t] = true
				}
			}
		}
	}
	return out
}

// checkUpgraded is the outcome bar of an interrupted upgrade once resumed: the engine runs to,
// the plan is empty, one upgrade and one snapshot ran, nothing is left running, every turn and
// every table the migration does not rewrite is as it was, and the snapshot holds the brain as
// it was before the upgrade, row for row.
func checkUpgraded(e *env, w *Workspace, st *killState, r *recorder, to string) {
	for _, u := range st.users {
		en := e.engine(u)
		if en.EngineVersion != to || en.Status != api.StatusRunning {
			r.errorf("user %s's engine runs %s (%s), want %s running", u, en.EngineVersion, en.Status, to)
		}
		if n := e.ops(u, api.OpUpgrade); n != 1 {
			r.errorf("user %s: %d upgrade operations ran, want exactly 1", u, n)
			r.c.DuplicateOps += max(int(n)-1, 0)
		}
		if n := e.ops(u, api.OpSnapshot); n != 1 {
			r.errorf("user %s: %d snapshot operations ran, want exactly 1 (the pre-upgrade snapshot)", u, n)
			r.c.DuplicateOps += max(int(n)-1, 0)
		}
		snaps, err := e.p.Client.ListSnapshots(e.ctx(), u, listAll())
		if err != nil {
			r.errorf("list snapshots: %v", err)
		} else if len(snaps) != 1 {
			r.errorf("user %s has %d snapshots, want exactly 1", u, len(snaps))
		} else {
			sum, err := TableChecksums(e.p.Server.SnapshotPath(snaps[0].ID))
			if err != nil {
				r.errorf("checksum snapshot %s: %v", snaps[0].ID, err)
			} else if d := DiffChecksums(st.before[u], sum); d != "" {
				r.errorf("snapshot %s of user %s differs from the brain before the upgrade: %s", snaps[0].ID, u, d)
			}
		}
		if o := e.orphans(u); len(o) > 0 {
			r.errorf("user %s has operations left running: %v", u, o)
		}
		if n := e.turns(u, "before"); n != st.turns {
			r.errorf("user %s's brain holds %d of the %d turns written before the upgrade", u, n, st.turns)
			r.c.RowsLost += max(st.turns-n, 0)
		}
		now := e.checksums(u)
		for tbl, sum := range st.before[u] {
			if !st.migrated[tbl] && now[tbl] != sum {
				r.errorf("user %s: table %s changed across the upgrade (%s -> %s) though no migration touches it", u, tbl, sum, now[tbl])
			}
		}
	}
	if empty, out, err := w.PlanIsEmpty(2 * time.Minute); err != nil || !empty {
		r.errorf("the plan after resuming is not empty (err %v):\n%s", err, out)
	}
}

func TestKill_upgrade(t *testing.T) {
	t.Parallel() // each test has its own control plane and workspaces
	runKills(t, killScenario{
		name: "engine_release upgrade 2.3.1->2.4.0 (auto_snapshot)",
		setup: func(e *env) (*Workspace, *killState) {
			e.writeTurns("user-0001", "before", 3)
			w := e.workspace(release("2.3.1", ""))
			e.apply(w)
			st := &killState{users: []string{"user-0001"}, turns: 3,
				before: map[string]map[string]string{"user-0001": e.checksums("user-0001")}, migrated: migratedTables(e, "2.3.1", "2.4.0")}
			if err := w.Write(e.config(release("2.4.0", "  auto_snapshot = true"))); err != nil {
				e.t.Fatal(err)
			}
			return w, st
		},
		args:   []string{"apply", "-auto-approve", "-input=false"},
		resume: []string{"apply", "-auto-approve", "-input=false"},
		check: func(e *env, w *Workspace, st *killState, r *recorder) {
			checkUpgraded(e, w, st, r, "2.4.0")
			s, err := w.State()
			if err != nil {
				r.errorf("state: %v", err)
				return
			}
			if v, _ := s.Attr("engine_release", "r", "version"); v != "2.4.0" {
				r.errorf("state records version %v, want 2.4.0", v)
			}
			// The rollback target survives the kill: destroy must be able to restore the brain
			// as it was before the upgrade.
			snaps, err := e.p.Client.ListSnapshots(e.ctx(), "user-0001", listAll())
			if got, _ := s.Attr("engine_release", "r", "pre_upgrade_snapshot_id"); err != nil || len(snaps) != 1 || got != snaps[0].ID {
				r.errorf("state records pre_upgrade_snapshot_id %v, want the pre-upgrade snapshot (%d snapshots, err %v)", got, len(snaps), err)
			}
		},
	})
}

// The destroy of an upgraded release rolls back by restoring the pre-upgrade snapshot; killed at
// any point and run again, the brain ends identical (every table, row for row) to what it was
// before the upgrade, with one restore, and the release leaves state.
func TestKill_destroyRollback(t *testing.T) {
	t.Parallel() // each test has its own control plane and workspaces
	runKills(t, killScenario{
		name: "engine_release destroy-rollback 2.4.0->2.3.1",
		setup: func(e *env) (*Workspace, *killState) {
			e.writeTurns("user-0001", "before", 3)
			st := &killState{users: []string{"user-0001"}, turns: 3, before: map[string]map[string]string{"user-0001": e.checksums("user-0001")}}
			w := e.workspace(release("2.4.0", "  auto_snapshot = true"))
			e.apply(w)
			if en := e.engine("user-0001"); en.EngineVersion != "2.4.0" {
				e.t.Fatalf("setup: engine runs %s, want 2.4.0", en.EngineVersion)
			}
			return w, st
		},
		args:   []string{"destroy", "-auto-approve", "-input=false"},
		resume: []string{"destroy", "-auto-approve", "-input=false"},
		check: func(e *env, w *Workspace, st *killState, r *recorder) {
			en := e.engine("user-0001")
			if en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning || en.SchemaVersion != 4 {
				r.errorf("after the destroy the engine runs %s (%s, schema %d), want 2.3.1 running on schema 4", en.EngineVersion, en.Status, en.SchemaVersion)
			}
			if d := DiffChecksums(st.before["user-0001"], e.checksums("user-0001")); d != "" {
				r.errorf("the rolled-back brain differs from the brain before the upgrade: %s", d)
				if n := e.turns("user-0001", "before"); n < st.turns {
					r.c.RowsLost += st.turns - n
				}
			}
			if n := e.ops("user-0001", api.OpRestore); n != 1 {
				r.errorf("%d restore operations ran, want exactly 1", n)
				r.c.DuplicateOps += max(int(n)-1, 0)
			}
			if o := e.orphans("user-0001"); len(o) > 0 {
				r.errorf("operations left running: %v", o)
			}
			s, err := w.State()
			if err != nil {
				r.errorf("state: %v", err)
			} else if s.Managed() != 0 {
				r.errorf("state still holds %d resources after the destroy", s.Managed())
			}
		},
	})
}

// canaryConfig moves canaryUsers to 2.4.0 in two steps.
const canaryConfig = `
resource "engine_canary" "c" {
  version   = "2.4.0"
  user_ids  = ["user-0001", "user-0002", "user-0003", "user-0004"]
  steps     = [50, 100]
  mode      = "auto"
  bake_time = "0s"
}
`

// canarySelectorConfig is canaryConfig scoped by a selector: the stable versions and snapshots
// live in the canary's record on the control plane, not in state.
const canarySelectorConfig = `
resource "engine_canary" "c" {
  version   = "2.4.0"
  selector  = { user_id_prefix = "user-" }
  steps     = [50, 100]
  mode      = "auto"
  bake_time = "0s"
}
`

func TestKill_canaryStep(t *testing.T) {
	t.Parallel() // each test has its own control plane and workspaces
	runKills(t, canaryKills("engine_canary 2.3.1->2.4.0 steps 50,100", canaryConfig))
}

// A selector canary killed anywhere converges the same way: one snapshot and one upgrade per
// engine, its rollback targets recovered when the kill came before the record was written.
func TestKill_canarySelectorStep(t *testing.T) {
	t.Parallel()
	runKills(t, canaryKills("engine_canary selector 2.3.1->2.4.0 steps 50,100", canarySelectorConfig))
}

func canaryKills(name, config string) killScenario {
	return killScenario{
		name: name,
		setup: func(e *env) (*Workspace, *killState) {
			st := &killState{users: canaryUsers, turns: 2, before: map[string]map[string]string{}, migrated: migratedTables(e, "2.3.1", "2.4.0")}
			for _, u := range canaryUsers {
				e.writeTurns(u, "before", 2)
				st.before[u] = e.checksums(u)
			}
			return e.workspace(config), st
		},
		args:   []string{"apply", "-auto-approve", "-input=false"},
		resume: []string{"apply", "-auto-approve", "-input=false"},
		check: func(e *env, w *Workspace, st *killState, r *recorder) {
			checkUpgraded(e, w, st, r, "2.4.0")
			s, err := w.State()
			if err != nil {
				r.errorf("state: %v", err)
			} else if v, _ := s.Attr("engine_canary", "c", "phase"); v != "promoted" {
				r.errorf("state records canary phase %v, want promoted", v)
			}
		},
	}
}

// SIGINT is Terraform's graceful stop: terraform (and the provider under it) must return within
// 5 s while the operation keeps running on the control plane, the state file stays valid, and the
// next run attaches to the operation instead of starting another. Three moments: an update
// (returns an error, keeps the operation in private state), a create (state records the release
// with last_attempt in progress and is not tainted) and a destroy-rollback (resumable).
func TestInterrupt_returnsFastAndResumes(t *testing.T) {
	t.Parallel() // each test has its own control plane and workspaces
	type interruptCase struct {
		name    string
		engines int                        // 0 means 1
		setup   func(e *env, w *Workspace) // brings the workspace to the moment before the run
		args    []string                   // the run to interrupt
		at      string                     // interrupt once a POST to a path with this suffix is answered
		opKind  string                     // the operation that must keep running
		resume  []string
		after   func(e *env, w *Workspace, r *recorder)                                      // checks after SIGINT, before resuming
		outcome func(e *env, w *Workspace, before map[string]map[string]string, r *recorder) // user -> checksums before
	}
	upgradeTo240 := release("2.4.0", "  auto_snapshot = true")
	upgraded := func(e *env, w *Workspace, before map[string]map[string]string, r *recorder) {
		users := make([]string, 0, len(before))
		for u := range before {
			users = append(users, u)
		}
		sort.Strings(users)
		st := &killState{users: users, turns: 3, before: before, migrated: migratedTables(e, "2.3.1", "2.4.0")}
		checkUpgraded(e, w, st, r, "2.4.0")
	}
	cases := []interruptCase{{
		name: "update",
		setup: func(e *env, w *Workspace) {
			e.apply(w)
			if err := w.Write(e.config(upgradeTo240)); err != nil {
				e.t.Fatal(err)
			}
		},
		args: []string{"apply", "-auto-approve", "-input=false"}, at: "/upgrade", opKind: api.OpUpgrade,
		resume: []string{"apply", "-auto-approve", "-input=false"}, outcome: upgraded,
	}, {
		name: "create",
		setup: func(e *env, w *Workspace) {
			if err := w.Write(e.config(upgradeTo240)); err != nil {
				e.t.Fatal(err)
			}
		},
		args: []string{"apply", "-auto-approve", "-input=false"}, at: "/upgrade", opKind: api.OpUpgrade,
		resume: []string{"apply", "-auto-approve", "-input=false"},
		after: func(e *env, w *Workspace, r *recorder) {
			s, err := w.State()
			if err != nil {
				r.errorf("state: %v", err)
				return
			}
			for _, res := range s.Resources {
				if res.Type == "engine_release" && len(res.Instances) == 1 {
					if st := res.Instances[0].Status; st == "tainted" {
						r.errorf("the interrupted create left the release tainted: the next apply would replace it")
					}
					la, _ := res.Instances[0].Attributes["last_attempt"].(map[string]any)
					if la["status"] != "in_progress" {
						r.errorf("the interrupted create recorded last_attempt %v, want status in_progress", la)
					}
					return
				}
			}
			r.errorf("the interrupted create left no engine_release in state: the operation is orphaned from Terraform's view")
		},
		outcome: upgraded,
	}, {
		name: "destroy-rollback",
		setup: func(e *env, w *Workspace) {
			if err := w.Write(e.config(upgradeTo240)); err != nil {
				e.t.Fatal(err)
			}
			e.apply(w)
		},
		args: []string{"destroy", "-auto-approve", "-input=false"}, at: "/restore", opKind: api.OpRestore,
		resume: []string{"destroy", "-auto-approve", "-input=false"},
		outcome: func(e *env, w *Workspace, before map[string]map[string]string, r *recorder) {
			en := e.engine("user-0001")
			if en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning {
				r.errorf("after the resumed destroy the engine runs %s (%s), want 2.3.1 running", en.EngineVersion, en.Status)
			}
			if d := DiffChecksums(before["user-0001"], e.checksums("user-0001")); d != "" {
				r.errorf("the rolled-back brain differs from the brain before the upgrade: %s", d)
			}
			if n := e.ops("user-0001", api.OpRestore); n != 1 {
				r.errorf("%d restores ran, want exactly 1", n)
				r.c.DuplicateOps += max(int(n)-1, 0)
			}
			if o := e.orphans("user-0001"); len(o) > 0 {
				r.errorf("operations left running: %v", o)
			}
			if s, err := w.State(); err != nil || s.Managed() != 0 {
				r.errorf("after the resumed destroy state holds %d resources (%v)", s.Managed(), err)
			}
		},
	}, {
		name: "canary step", engines: len(canaryUsers),
		setup: func(e *env, w *Workspace) {
			if err := w.Write(e.config(canaryConfig)); err != nil {
				e.t.Fatal(err)
			}
		},
		args: []string{"apply", "-auto-approve", "-input=false"}, at: "/upgrade", opKind: api.OpUpgrade,
		resume:  []string{"apply", "-auto-approve", "-input=false"},
		outcome: upgraded,
	}}
	runs := 1
	if !quick {
		runs = 3
	}
	for _, c := range cases {
		for i := range runs {
			t.Run(fmt.Sprintf("%s/%d", c.name, i), func(t *testing.T) {
				rec := newRecorder(t, fmt.Sprintf("engine_release %s SIGINT #%d", c.name, i))
				defer rec.done()
				// Nominal durations at 0.3: the operation (drain, migrate, boot, health) takes seconds.
				e := newEnv(t, envOptions{timeScale: 0.3, engines: c.engines})
				before := map[string]map[string]string{}
				for _, u := range canaryUsers[:max(c.engines, 1)] {
					e.writeTurns(u, "before", 3)
					before[u] = e.checksums(u)
				}
				w := e.workspace(release("2.3.1", ""))
				c.setup(e, w)
				started := make(chan struct{}, 1)
				e.p.OnRequest(func(_ int64, r *http.Request) func() {
					if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, c.at) {
						return func() { started <- struct{}{} }
					}
					return nil
				})
				run, err := w.Start(c.args...)
				if err != nil {
					t.Fatal(err)
				}
				select {
				case <-started:
				case <-run.Done():
					t.Fatalf("the run ended before the POST to %s:\n%s", c.at, run.Output())
				case <-time.After(2 * time.Minute):
					t.Fatalf("no POST to %s", c.at)
				}
				sent := time.Now()
				run.Interrupt()
				rec.c.Interrupts++
				out, err := run.Wait(30 * time.Second)
				took := run.Ended().Sub(sent)
				e.p.OnRequest(nil)
				rec.c.Detail = fmt.Sprintf("terraform returned %s after SIGINT", took.Round(time.Millisecond))
				t.Logf("terraform returned %s after SIGINT (err %v)", took.Round(time.Millisecond), err)
				if !strings.Contains(out, "Interrupt received") {
					rec.errorf("terraform never saw the interrupt:\n%s", out)
				}
				if took > 5*time.Second {
					rec.errorf("terraform took %s to return after SIGINT, want <= 5s", took.Round(time.Millisecond))
				}
				en := e.engine("user-0001")
				if c.engines > 1 {
					// The canary moves several engines at once: one of them must still be moving.
					for _, u := range canaryUsers {
						if x := e.engine(u); x.CurrentOperationID != "" {
							en = x
							break
						}
					}
				}
				if en.CurrentOperationID == "" {
					rec.errorf("after SIGINT no operation runs (engine on %s): the %s was stopped with the apply, or finished too fast to tell (raise the time scale)", en.EngineVersion, c.opKind)
				} else if op, err := e.p.Client.GetOperation(e.ctx(), en.CurrentOperationID); err != nil || op.Kind != c.opKind {
					rec.errorf("the running operation is %s %s (%v), want the %s", op.Kind, op.ID, err, c.opKind)
				}
				if _, err := w.State(); err != nil {
					rec.errorf("state after SIGINT: %v", err)
				}
				if c.after != nil {
					c.after(e, w, rec)
				}
				if out, err := w.Exec(3*time.Minute, c.resume...); err != nil {
					rec.errorf("the run after SIGINT failed: %v\n%s", err, out)
					return
				}
				c.outcome(e, w, before, rec)
			})
		}
	}
}

// TestStateFileNeverTruncated guards the checks above: a state file Terraform never wrote is
// "empty", one it half wrote is an error.
func TestStateFileNeverTruncated(t *testing.T) {
	w := &Workspace{Dir: t.TempDir()}
	if s, err := w.State(); err != nil || s.Managed() != 0 {
		t.Fatalf("missing state: %+v %v", s, err)
	}
	if err := os.WriteFile(w.Dir+"/terraform.tfstate", []byte(`{"version": 4, "lineage": "x", "resources": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.State(); err == nil {
		t.Fatal("a truncated state file was accepted")
	}
}
