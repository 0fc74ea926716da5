package controlplane

import (
	"fmt"
	"net/http"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// nominalEval is how long an eval suite runs, multiplied by the time scale.
const nominalEval = 3 * time.Second

// startEval is POST /v1/engines/{user_id}/evals: a suite scored from the version's profile plus
// deterministic noise, on every runtime.
func (s *Server) startEval(w http.ResponseWriter, r *http.Request, p params) {
	var req api.EvalRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if !validID(req.Suite) {
		writeError(w, badField("suite", fmt.Sprintf("suite %q must be a name matching %s, for example \"regression\"", req.Suite, api.IDPattern)))
		return
	}
	s.start(w, r, opStart{
		kind: api.OpEval, userID: p["user_id"], hash: bodyHash(req),
		validate: s.requireRunning("eval"),
		prepare: func(op *operation) {
			op.ToVersion = op.FromVersion
			op.Steps = pendingSteps(api.StepEval)
		},
		run: func(op *operation) { s.runEval(op, req.Suite) },
	})
}

func (s *Server) runEval(op *operation, suite string) {
	s.begin(op, api.StepEval, "")
	if !s.sleep(nominalEval) {
		return
	}
	v, _ := s.cat.Get(op.FromVersion)
	score := evalScore(op.UserID, suite, v)
	if f := s.faults.fire([]string{api.FaultEvalRegression}, op.UserID, v.Version, "", ""); s.opts.EnableFaults && f != nil {
		score = max(0, score-0.3)
	}
	s.finishStep(op, api.StepEval, fmt.Sprintf("suite %s scored %.3f", suite, score))
	s.succeedOp(op, api.OperationResult{EvalSuite: suite, EvalScore: score, EngineVersion: v.Version, SchemaVersion: v.SchemaVersion})
}

func evalScore(user, suite string, v api.Version) float64 {
	return clamp01(v.Profile.EvalScore + 0.01*noise("eval", user, suite, v.Version))
}
