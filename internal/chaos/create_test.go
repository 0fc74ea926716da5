package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// createStep is a moment of an engine_release create 2.3.1 -> 2.4.0 with auto_snapshot: the
// pre-upgrade snapshot operation, or a step of the upgrade operation.
type createStep struct {
	kind, step string
}

var createSteps = []createStep{
	{api.OpSnapshot, ""}, // the snapshot operation, whichever of its steps runs
	{api.OpUpgrade, api.StepDrain},
	{api.OpUpgrade, api.StepMigrate},
	{api.OpUpgrade, api.StepBoot},
	{api.OpUpgrade, api.StepHealth},
}

func (s createStep) String() string {
	if s.step == "" {
		return s.kind
	}
	return s.step
}

// TestKill_createSteps interrupts a create at each of its steps, by SIGKILL of terraform (the
// control plane finishes the operation on its own, and no state was saved) or by a restart of
// the control plane (which fails the operation where it stood). The re-apply must record the
// version the engine ran before the create and the snapshot that protected it, recovered from
// the control plane; the destroy must then return the engine to 2.3.1 with its pre-upgrade rows.
func TestKill_createSteps(t *testing.T) {
	t.Parallel() // each case has its own control plane and workspace
	type mode struct {
		name  string
		steps []createStep
	}
	modes := []mode{{"sigkill-terraform", createSteps}, {"restart-controlplane", createSteps[2:4]}}
	rnd := rng(t)
	for _, m := range modes {
		steps := m.steps
		if quick {
			// One seeded step per mode keeps the quick mode quick; the long mode runs them all.
			steps = []createStep{steps[rnd.IntN(len(steps))]}
		}
		for _, st := range steps {
			t.Run(m.name+"/"+st.String(), func(t *testing.T) {
				t.Parallel()
				runCreateKill(t, m.name, st)
			})
		}
	}
}

func runCreateKill(t *testing.T, mode string, at createStep) {
	rec := newRecorder(t, fmt.Sprintf("engine_release create 2.3.1->2.4.0 %s during %s", mode, at))
	defer rec.done()
	// Nominal durations at 0.3: each step lasts long enough to be caught.
	e := newEnv(t, envOptions{timeScale: 0.3})
	const u = "user-0001"
	e.writeTurns(u, "before", 3)
	before := e.checksums(u)
	w := e.workspace(release("2.4.0", "  auto_snapshot = true"))
	run, err := w.Start("apply", "-auto-approve", "-input=false")
	if err != nil {
		t.Fatal(err)
	}
	if !e.waitForStep(u, at, run) {
		t.Fatalf("the create never reached %s:\n%s", at, run.Output())
	}
	switch mode {
	case "sigkill-terraform":
		run.Kill()
		rec.c.Kills++
		_, _ = run.Wait(time.Minute)
	default:
		if err := e.p.Restart(); err != nil {
			t.Fatalf("restart the control plane: %v", err)
		}
		rec.c.Kills++
		out, _ := run.Wait(3 * time.Minute)
		checkRollbackMessage(e, w, u, out, rec)
	}
	// The control plane settles the operation on its own before anyone comes back.
	e.waitIdle(u)
	if out, err := w.Apply(3 * time.Minute); err != nil {
		rec.errorf("the re-apply after the %s during %s failed: %v\n%s", mode, at, err, out)
		return
	}
	en := e.engine(u)
	if en.EngineVersion != "2.4.0" || en.Status != api.StatusRunning {
		rec.errorf("after the re-apply the engine runs %s (%s), want 2.4.0 running", en.EngineVersion, en.Status)
	}
	s, err := w.State()
	if err != nil {
		rec.errorf("state: %v", err)
		return
	}
	if v, _ := s.Attr("engine_release", "r", "previous_version"); v != "2.3.1" {
		rec.errorf("the re-apply recorded previous_version %v, want 2.3.1 (the version the engine ran before the interrupted create)", v)
	}
	snap, _ := s.Attr("engine_release", "r", "pre_upgrade_snapshot_id")
	if id, _ := snap.(string); id == "" {
		rec.errorf("the re-apply recorded no pre_upgrade_snapshot_id: the destroy has nothing to restore")
	} else if sum, err := TableChecksums(e.p.Server.SnapshotPath(id)); err != nil {
		rec.errorf("checksum snapshot %s: %v", id, err)
	} else if d := DiffChecksums(before, sum); d != "" {
		rec.errorf("pre_upgrade_snapshot_id %s does not hold the brain as it was before the create: %s", id, d)
	}
	if empty, out, err := w.PlanIsEmpty(2 * time.Minute); err != nil || !empty {
		rec.errorf("the plan after the re-apply is not empty (err %v):\n%s", err, out)
	}
	if out, err := w.Exec(3*time.Minute, "destroy", "-auto-approve", "-input=false"); err != nil {
		rec.errorf("destroy after the re-apply failed: %v\n%s", err, out)
		return
	}
	en = e.engine(u)
	if en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning || en.SchemaVersion != 4 {
		rec.errorf("after the destroy the engine runs %s (%s, schema %d), want 2.3.1 running on schema 4", en.EngineVersion, en.Status, en.SchemaVersion)
	}
	if d := DiffChecksums(before, e.checksums(u)); d != "" {
		rec.errorf("after the destroy the brain differs from the brain before the create: %s", d)
		if n := e.turns(u, "before"); n < 3 {
			rec.c.RowsLost += 3 - n
		}
	}
	if o := e.orphans(u); len(o) > 0 {
		rec.errorf("operations left running: %v", o)
	}
}

// checkRollbackMessage holds an apply's "rolled back" error to what happened: it names a
// snapshot restore only when one ran, and says state records the engine only when it does.
func checkRollbackMessage(e *env, w *Workspace, u, out string, r *recorder) {
	i := strings.Index(out, "Engine Upgrade Rolled Back")
	if i < 0 {
		return
	}
	msg := strings.Join(strings.Fields(out[i:]), " ")
	restores := e.ops(u, api.OpRestore)
	if restores == 0 && strings.Contains(msg, "from snapshot") {
		r.errorf("the apply says the brain was restored from a snapshot, but no restore ran:\n%s", out)
	}
	if restores > 0 && !strings.Contains(msg, "restored from snapshot") {
		r.errorf("a restore ran, but the apply does not say so:\n%s", out)
	}
	s, err := w.State()
	if err != nil {
		r.errorf("state: %v", err)
		return
	}
	if s.Managed() == 0 && strings.Contains(msg, "State records") {
		r.errorf("the apply says state records the engine, but state is empty:\n%s", out)
	}
}

// waitForStep waits until user's engine runs the operation step at names (false when the run
// ends first, or after two minutes).
func (e *env) waitForStep(user string, at createStep, run *Run) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-run.Done():
			return false
		default:
		}
		if en, err := e.p.Client.GetEngine(context.Background(), user); err == nil && en.CurrentOperationID != "" {
			if op, err := e.p.Client.GetOperation(context.Background(), en.CurrentOperationID); err == nil && op.Kind == at.kind {
				if at.step == "" {
					return true
				}
				for _, s := range op.Steps {
					if s.Name == at.step && s.Status == api.OpRunning {
						return true
					}
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// waitIdle waits until no operation runs on user's engine.
func (e *env) waitIdle(user string) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for e.engine(user).CurrentOperationID != "" {
		if time.Now().After(deadline) {
			e.t.Fatalf("user %s's engine is still busy after two minutes", user)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
