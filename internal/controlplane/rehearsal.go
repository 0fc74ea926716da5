package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// This file is a rehearsal's record (op_rehearsal.go runs it): read, list and delete, its
// persistence, what a restart does with one left running, and the open /health of an engine's
// URL that a staging engine's staging_url answers under the sim runtime.

func (s *Server) rehearsalNotFound(id string) *apiError {
	e := newErr(http.StatusNotFound, api.CodeRehearsalNotFound, fmt.Sprintf("no rehearsal %q; list an engine's rehearsals with GET "+
		"/v1/engines/{user_id}/rehearsals", id))
	e.detail.Field = "rehearsal_id"
	return e
}

// rehearsalViewLocked is a rehearsal's wire form, with the staging engine's URL while it runs.
func (s *Server) rehearsalViewLocked(reh *api.Rehearsal, r *http.Request) api.Rehearsal {
	out := *reh
	out.Path = append([]string{}, reh.Path...)
	out.Migrations = append([]api.RehearsalMigration{}, reh.Migrations...)
	out.FailedChecks = append([]api.RehearsalCheck{}, reh.FailedChecks...)
	if e := s.engines[reh.StagingUserID]; e != nil && reh.StagingStatus == api.StagingRunning {
		out.StagingURL = s.engineView(e, r).URL
		if _, url, _, ok := s.rt.process(e.UserID); ok {
			out.StagingURL = url
		}
	}
	return out
}

func (s *Server) getRehearsal(w http.ResponseWriter, r *http.Request, p params) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reh := s.rehearsals[p["rehearsal_id"]]
	if reh == nil {
		writeError(w, s.rehearsalNotFound(p["rehearsal_id"]))
		return
	}
	writeJSON(w, http.StatusOK, s.rehearsalViewLocked(reh, r))
}

func (s *Server) listRehearsals(w http.ResponseWriter, r *http.Request, p params) {
	e := s.lockEngine(w, p["user_id"])
	if e == nil {
		return
	}
	defer s.mu.Unlock()
	out := api.RehearsalList{Rehearsals: []api.Rehearsal{}}
	for _, reh := range s.rehearsals {
		if reh.UserID == e.UserID {
			out.Rehearsals = append(out.Rehearsals, s.rehearsalViewLocked(reh, r))
		}
	}
	sort.Slice(out.Rehearsals, func(i, j int) bool {
		a, b := out.Rehearsals[i], out.Rehearsals[j]
		return a.CreatedAt.After(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID > b.ID
	})
	writeJSON(w, http.StatusOK, out)
}

// deleteRehearsal stops the staging engine and deletes its brain; the record stays, so plans
// that name the rehearsal still read its verdict. A running rehearsal is refused.
func (s *Server) deleteRehearsal(w http.ResponseWriter, _ *http.Request, p params) {
	s.mu.Lock()
	reh := s.rehearsals[p["rehearsal_id"]]
	if reh == nil {
		s.mu.Unlock()
		writeError(w, s.rehearsalNotFound(p["rehearsal_id"]))
		return
	}
	if reh.Status == api.RehearsalRunning {
		s.mu.Unlock()
		e := newErr(http.StatusConflict, api.CodeOperationInProgress, fmt.Sprintf("rehearsal %s is still running (operation %s); wait for it to "+
			"finish, then delete it", reh.ID, reh.OperationID))
		e.detail.OperationID = reh.OperationID
		writeError(w, e)
		return
	}
	s.mu.Unlock()
	s.removeStaging(reh)
	w.WriteHeader(http.StatusNoContent)
}

const rehearsalTable = `CREATE TABLE IF NOT EXISTS rehearsals (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, doc TEXT NOT NULL);`

func (s *Server) putRehearsalLocked(reh *api.Rehearsal) {
	b, _ := json.Marshal(reh)
	if _, err := s.reg.db.Exec(`INSERT OR REPLACE INTO rehearsals (id, user_id, doc) VALUES (?, ?, ?)`, reh.ID, reh.UserID,
		string(b)); err != nil {
		s.log.Error("registry write failed", "rehearsal_id", reh.ID, "error", err)
	}
}

// loadRehearsals reads the rehearsals back at start. One a stopped control plane left running
// is errored and its staging engine removed (its operation was failed as interrupted).
func (s *Server) loadRehearsals() error {
	if _, err := s.reg.db.Exec(rehearsalTable); err != nil {
		return err
	}
	var stale []*api.Rehearsal
	err := eachDoc(s.reg.db, `SELECT doc FROM rehearsals ORDER BY id`, func(b []byte) error {
		reh := &api.Rehearsal{}
		if err := json.Unmarshal(b, reh); err != nil {
			return err
		}
		s.rehearsals[reh.ID] = reh
		if reh.Status == api.RehearsalRunning {
			stale = append(stale, reh)
		}
		return nil
	})
	for _, reh := range stale {
		s.rehearsalEnded(reh, &api.ErrorDetail{Code: api.CodeInterrupted, Message: fmt.Sprintf("the control plane stopped while rehearsal %s "+
			"was running; its staging engine was removed; rehearse again", reh.ID)}, nil)
		s.removeStaging(reh)
	}
	return err
}

// engineHealth answers GET /engines/{user_id}/health, open like an Engine's own /health: the
// URL the control plane gives an engine that has no process of its own (sim) answers it.
func (s *Server) engineHealth(w http.ResponseWriter, r *http.Request, raw string) bool {
	user, ok := strings.CutPrefix(raw, "/engines/")
	if !ok || r.Method != http.MethodGet {
		return false
	}
	if user, ok = strings.CutSuffix(user, "/health"); !ok || !validID(user) {
		return false
	}
	s.mu.Lock()
	e := s.engines[user]
	var status string
	var uptime float64
	if e != nil {
		status = e.Status
		if e.LastHealthAt != nil {
			uptime = time.Since(*e.LastHealthAt).Seconds()
		}
	}
	s.mu.Unlock()
	switch {
	case e == nil:
		writeError(w, s.engineNotFound(user))
	case status != api.StatusRunning:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": status})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "uptime_seconds": uptime, "subsystems": healthOK().Subsystems})
	}
	return true
}
