package controlplane

import (
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

const maxTurnsPerRequest = 1000

// writeTurns is test traffic: real rows in the brain's conversations table. A turn counts as in
// flight from admission to commit, which is what a drain waits for.
func (s *Server) writeTurns(w http.ResponseWriter, r *http.Request, p params) {
	var req api.TurnsRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if req.Count < 1 || req.Count > maxTurnsPerRequest {
		writeError(w, badField("count", fmt.Sprintf("count %d must be between 1 and %d", req.Count, maxTurnsPerRequest)))
		return
	}
	if len(req.Content) > 64<<10 {
		writeError(w, badField("content", "content must be at most 64 KiB"))
		return
	}
	user := p["user_id"]
	e := s.lockEngine(w, user)
	if e == nil {
		return
	}
	if e.Status != api.StatusRunning {
		s.mu.Unlock()
		writeError(w, s.engineUnavailable503(e))
		return
	}
	e.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		e.inflight--
		if e.inflight == 0 && e.drained != nil {
			close(e.drained)
			e.drained = nil
		}
		s.mu.Unlock()
	}()

	res, ae := s.rt.turns(e, req)
	if ae != nil {
		writeError(w, ae)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) engineUnavailable503(e *engineState) *apiError {
	msg := fmt.Sprintf("user %s's engine is %s and takes no traffic", e.UserID, e.Status)
	if e.CurrentOperationID != "" {
		msg += fmt.Sprintf(" (operation %s is running); retry when it finishes", e.CurrentOperationID)
	} else if e.Status == api.StatusFailed {
		msg += "; restore a snapshot to recover it"
	}
	ae := newErr(http.StatusServiceUnavailable, api.CodeEngineUnavailable, msg)
	ae.detail.OperationID = e.CurrentOperationID
	return ae
}

// listTurns reads the test traffic stored in the brain. It works on a failed engine (the brain is
// still there) but not while an operation has the brain stopped or swapped.
func (s *Server) listTurns(w http.ResponseWriter, _ *http.Request, p params) {
	user := p["user_id"]
	e := s.lockEngine(w, user)
	if e == nil {
		return
	}
	if e.Status == api.StatusStopped || e.Status == api.StatusUpgrading {
		s.mu.Unlock()
		writeError(w, s.engineUnavailable503(e))
		return
	}
	s.mu.Unlock()
	db, err := openBrain(s.BrainPath(user))
	if err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, err.Error()))
		return
	}
	defer db.Close()
	turns, err := listTurns(db)
	if err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, fmt.Sprintf("reading user %s's brain: %v", user, err)))
		return
	}
	writeJSON(w, http.StatusOK, api.TurnList{Turns: turns})
}

// noise is deterministic in [-1, 1] for its inputs, so the same engine, version and suite always
// report the same figures and tests are reproducible.
func noise(parts ...string) float64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return float64(h.Sum64()%2_000_001)/1_000_000 - 1
}

func clamp01(f float64) float64 { return math.Max(0, math.Min(1, f)) }

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, p params) {
	window := 300 * time.Second
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 24*time.Hour {
			writeError(w, badField("window", fmt.Sprintf("window %q must be a duration from 1s to 24h, for example 300s", v)))
			return
		}
		window = d
	}
	user := p["user_id"]
	e := s.lockEngine(w, user)
	if e == nil {
		return
	}
	to := time.Now().UTC()
	from := to.Add(-window)
	m := api.Metrics{UserID: user, EngineVersion: e.EngineVersion, WindowSeconds: int(window / time.Second), From: from, To: to, WarningKinds: []string{}}
	s.rt.metricsLocked(e, &m)
	s.mu.Unlock()
	sort.Strings(m.WarningKinds)
	writeJSON(w, http.StatusOK, m)
}
