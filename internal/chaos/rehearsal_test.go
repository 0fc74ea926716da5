package chaos

import (
	"time"

	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// rehearsalConfig rehearses user-0001's major upgrade and keeps the staging engine: a rehearsal
// a killed apply started is still visible (running, or its staging engine up) to the next one.
const rehearsalConfig = `
resource "engine_rehearsal" "r" {
  user_id      = "user-0001"
  version      = "3.0.0"
  replay_turns = 5
  keep_engine  = true
  analysis = {
    max_error_rate = 0.05
    window         = "1s"
  }
}
`

// An engine_rehearsal create killed at any request and applied again attaches to the rehearsal
// it started: exactly one rehearsal and one staging engine, recorded in state, and the source
// engine's brain (every table) and version as they were.
func TestKill_rehearsal(t *testing.T) {
	t.Parallel() // each test has its own control plane and workspaces
	runKills(t, killScenario{
		name: "engine_rehearsal create 2.3.1->3.0.0 (keep_engine)",
		setup: func(e *env) (*Workspace, *killState) {
			e.writeTurns("user-0001", "before", 3)
			st := &killState{users: []string{"user-0001"}, turns: 3, before: map[string]map[string]string{"user-0001": e.checksums("user-0001")}}
			return e.workspace(rehearsalConfig), st
		},
		args:   []string{"apply", "-auto-approve", "-input=false"},
		resume: []string{"apply", "-auto-approve", "-input=false"},
		check: func(e *env, w *Workspace, st *killState, r *recorder) {
			rs, err := e.p.Client.ListRehearsals(e.ctx(), "user-0001")
			if err != nil {
				r.errorf("list rehearsals: %v", err)
				return
			}
			if len(rs) != 1 {
				r.errorf("%d rehearsals ran, want exactly 1: a re-apply must attach, never start a second staging engine", len(rs))
				r.c.DuplicateOps += max(len(rs)-1, 0)
				return
			}
			if rs[0].Status != api.RehearsalPassed || rs[0].StagingStatus != api.StagingRunning {
				r.errorf("rehearsal %s is %s with its staging engine %q, want passed and kept", rs[0].ID, rs[0].Status, rs[0].StagingStatus)
			}
			s, err := w.State()
			if err != nil {
				r.errorf("state: %v", err)
			} else if id, _ := s.Attr("engine_rehearsal", "r", "id"); id != rs[0].ID {
				r.errorf("state records rehearsal %v, want %s", id, rs[0].ID)
			}
			if en := e.engine("user-0001"); en.EngineVersion != "2.3.1" || en.Status != api.StatusRunning {
				r.errorf("the source engine runs %s (%s), want 2.3.1 running", en.EngineVersion, en.Status)
			}
			if d := DiffChecksums(st.before["user-0001"], e.checksums("user-0001")); d != "" {
				r.errorf("the source brain changed across the rehearsal: %s", d)
			}
			if o := e.orphans("user-0001"); len(o) > 0 {
				r.errorf("operations left running: %v", o)
			}
			if empty, out, err := w.PlanIsEmpty(2 * time.Minute); err != nil || !empty {
				r.errorf("the plan after resuming is not empty (err %v):\n%s", err, out)
			}
		},
	})
}
