package controlplane

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Canary records: what a canary manager (the provider's engine_canary) keeps on the control plane
// under the canary's id, so that per-engine facts (each moved engine's stable version and
// protecting snapshot) stay out of Terraform state and an import recovers them. The control plane
// stores them; it does not act on them.

// maxCanaries bounds how many canary records one control plane holds.
const maxCanaries = 10000

const canarySchema = `
CREATE TABLE IF NOT EXISTS canaries (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS canary_moved (canary_id TEXT NOT NULL, user_id TEXT NOT NULL, doc TEXT NOT NULL,
	PRIMARY KEY (canary_id, user_id));
`

type canaryState struct {
	api.Canary
	moved map[string]api.MovedEngine
}

// canaryStore holds the records; its own lock, so records never wait on engine work.
type canaryStore struct {
	mu   sync.Mutex
	recs map[string]*canaryState
}

func newCanaryStore() *canaryStore { return &canaryStore{recs: map[string]*canaryState{}} }

// loadCanaries reads every record the registry holds.
func (r *registry) loadCanaries(cs *canaryStore) error {
	if _, err := r.db.Exec(canarySchema); err != nil {
		return err
	}
	if err := eachDoc(r.db, `SELECT doc FROM canaries`, func(b []byte) error {
		var c api.Canary
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		cs.recs[c.ID] = &canaryState{Canary: c, moved: map[string]api.MovedEngine{}}
		return nil
	}); err != nil {
		return err
	}
	rows, err := r.db.Query(`SELECT canary_id, doc FROM canary_moved`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, doc string
		var m api.MovedEngine
		if err := rows.Scan(&id, &doc); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			return err
		}
		if c := cs.recs[id]; c != nil {
			c.moved[m.UserID] = m
		}
	}
	return rows.Err()
}

func (r *registry) putCanary(c api.Canary) error {
	b, _ := json.Marshal(c)
	_, err := r.db.Exec(`INSERT OR REPLACE INTO canaries (id, doc) VALUES (?, ?)`, c.ID, string(b))
	return err
}

func (r *registry) deleteCanary(id string) error {
	tx, err := r.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM canary_moved WHERE canary_id = ?`, id); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM canaries WHERE id = ?`, id); err != nil {
		return err
	}
	return tx.Commit()
}

func (r *registry) putMoved(c api.Canary, ms []api.MovedEngine) error {
	tx, err := r.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT OR REPLACE INTO canary_moved (canary_id, user_id, doc) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, m := range ms {
		b, _ := json.Marshal(m)
		if _, err := st.Exec(c.ID, m.UserID, string(b)); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(c)
	if _, err := tx.Exec(`INSERT OR REPLACE INTO canaries (id, doc) VALUES (?, ?)`, c.ID, string(b)); err != nil {
		return err
	}
	return tx.Commit()
}

func canaryNotFound(id string) *apiError {
	return newErr(http.StatusNotFound, api.CodeCanaryNotFound,
		fmt.Sprintf("no record for canary %q on this control plane; a canary's record is written by its first apply (PUT "+
			"/v1/canaries/%s)", id, id))
}

// checkCanary vets a record's configuration.
func (s *Server) checkCanary(c *api.Canary) *apiError {
	if _, ok := s.cat.Get(c.Version); !ok {
		return s.versionNotFound("version", c.Version)
	}
	if c.Seed == "" {
		return badField("seed", "seed must not be empty: it orders the cohorts")
	}
	if len(c.Steps) == 0 {
		return badField("steps", "steps must list at least one percentage")
	}
	for i, p := range c.Steps {
		if p < 1 || p > 100 || i > 0 && p <= c.Steps[i-1] {
			return badField("steps", fmt.Sprintf("steps %v must be strictly increasing percentages from 1 to 100", c.Steps))
		}
	}
	if c.BakeTime != "" {
		if _, err := time.ParseDuration(c.BakeTime); err != nil {
			return badField("bake_time", fmt.Sprintf("bake_time %q is not a duration such as \"10m\"", c.BakeTime))
		}
	}
	if c.MaxParallel < 1 {
		return badField("max_parallel", fmt.Sprintf("max_parallel %d must be at least 1", c.MaxParallel))
	}
	if c.CurrentStep < 0 || c.CurrentStep > 100 {
		return badField("current_step", fmt.Sprintf("current_step %d must be a percentage from 0 to 100", c.CurrentStep))
	}
	if c.Scope.Selector == nil && len(c.Scope.UserIDs) == 0 {
		return badField("scope", "scope needs user_ids, a selector, or both")
	}
	for _, u := range c.Scope.UserIDs {
		if !validID(u) {
			return badField("scope.user_ids", fmt.Sprintf("user id %q is not a valid id (%s)", u, api.IDPattern))
		}
	}
	if sel := c.Scope.Selector; sel != nil {
		if err := s.checkSelector(*sel); err != nil {
			return err
		}
	}
	for _, raw := range []json.RawMessage{c.LastAnalysis, c.LastAbort, c.Settings} {
		if len(raw) > 0 && string(raw) != "null" && !json.Valid(raw) {
			return badField("body", "last_analysis, last_abort and settings must be JSON objects")
		}
	}
	return nil
}

// putCanary creates or replaces a canary's configuration and progress; its moved engines stay.
func (s *Server) putCanary(w http.ResponseWriter, r *http.Request, p params) {
	var c api.Canary
	if err := decodeBody(w, r, &c, false); err != nil {
		writeError(w, err)
		return
	}
	id := p["canary_id"]
	if c.ID != "" && c.ID != id {
		writeError(w, badField("id", fmt.Sprintf("the body's id %q is not the path's %q", c.ID, id)))
		return
	}
	if err := s.checkCanary(&c); err != nil {
		writeError(w, err)
		return
	}
	cs := s.canaries
	cs.mu.Lock()
	defer cs.mu.Unlock()
	prev := cs.recs[id]
	if prev == nil && len(cs.recs) >= maxCanaries {
		writeError(w, newErr(http.StatusConflict, api.CodeInvalidRequest,
			fmt.Sprintf("this control plane holds %d canary records, its limit; "+
				"delete finished canaries (DELETE /v1/canaries/{canary_id})", maxCanaries)))
		return
	}
	now := time.Now().UTC()
	c.ID, c.UpdatedAt, c.CreatedAt = id, now, now
	moved := map[string]api.MovedEngine{}
	if prev != nil {
		c.CreatedAt, moved = prev.CreatedAt, prev.moved
	}
	c.MovedCount = len(moved)
	if err := s.reg.putCanary(c); err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, "write the canary record: "+err.Error()))
		return
	}
	cs.recs[id] = &canaryState{Canary: c, moved: moved}
	status := http.StatusOK
	if prev == nil {
		status = http.StatusCreated
	}
	writeJSON(w, status, c)
}

// lockCanary takes the store's lock and returns the record id names with the lock held. When there
// is none it releases the lock, answers 404 and returns nil.
func (s *Server) lockCanary(w http.ResponseWriter, id string) *canaryState {
	s.canaries.mu.Lock()
	c := s.canaries.recs[id]
	if c == nil {
		s.canaries.mu.Unlock()
		writeError(w, canaryNotFound(id))
	}
	return c
}

func (s *Server) getCanary(w http.ResponseWriter, _ *http.Request, p params) {
	c := s.lockCanary(w, p["canary_id"])
	if c == nil {
		return
	}
	defer s.canaries.mu.Unlock()
	writeJSON(w, http.StatusOK, c.Canary)
}

// deleteCanary drops a record and its moved engines. Deleting a record that is not there is not
// an error: the manager's destroy may run twice.
func (s *Server) deleteCanary(w http.ResponseWriter, _ *http.Request, p params) {
	cs := s.canaries
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if err := s.reg.deleteCanary(p["canary_id"]); err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, "delete the canary record: "+err.Error()))
		return
	}
	delete(cs.recs, p["canary_id"])
	w.WriteHeader(http.StatusNoContent)
}

// recordMoved records moved engines on a canary, idempotently (see api.RecordMovedRequest).
func (s *Server) recordMoved(w http.ResponseWriter, r *http.Request, p params) {
	var req api.RecordMovedRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		writeError(w, err)
		return
	}
	if n := len(req.Engines); n == 0 || n > api.MaxMovedBatch {
		writeError(w, badField("engines", fmt.Sprintf("engines lists %d entries: send 1 to %d per request", n, api.MaxMovedBatch)))
		return
	}
	s.mu.Lock()
	for i, m := range req.Engines {
		var bad *apiError
		switch {
		case !validID(m.UserID):
			bad = badField(fmt.Sprintf("engines[%d].user_id", i), fmt.Sprintf("user id %q is not a valid id (%s)", m.UserID, api.IDPattern))
		case s.engines[m.UserID] == nil:
			bad = s.engineNotFound(m.UserID)
		case m.SnapshotID != "" && !validID(m.SnapshotID):
			bad = badField(fmt.Sprintf("engines[%d].snapshot_id", i), fmt.Sprintf("snapshot id %q is not a valid id", m.SnapshotID))
		}
		if _, ok := s.cat.Get(m.StableVersion); bad == nil && !ok {
			bad = s.versionNotFound(fmt.Sprintf("engines[%d].stable_version", i), m.StableVersion)
		}
		if bad != nil {
			s.mu.Unlock()
			writeError(w, bad)
			return
		}
	}
	s.mu.Unlock()
	c := s.lockCanary(w, p["canary_id"])
	if c == nil {
		return
	}
	defer s.canaries.mu.Unlock()
	now := time.Now().UTC()
	out := make([]api.MovedEngine, 0, len(req.Engines))
	next := make(map[string]api.MovedEngine, len(req.Engines))
	for _, m := range req.Engines {
		if prev, ok := next[m.UserID]; ok || c.moved[m.UserID].UserID != "" {
			if !ok {
				prev = c.moved[m.UserID]
			}
			if m.SnapshotID == "" {
				m.SnapshotID = prev.SnapshotID
			}
		}
		m.RecordedAt = &now
		next[m.UserID] = m
	}
	for _, m := range next {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	updated := c.Canary
	updated.MovedCount = len(c.moved)
	for u := range next {
		if _, ok := c.moved[u]; !ok {
			updated.MovedCount++
		}
	}
	updated.UpdatedAt = now
	if err := s.reg.putMoved(updated, out); err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, "write the moved engines: "+err.Error()))
		return
	}
	for u, m := range next {
		c.moved[u] = m
	}
	c.Canary = updated
	writeJSON(w, http.StatusOK, api.MovedEngines{Engines: out, Moved: len(c.moved)})
}

// listMoved is one page of a canary's moved engines, ordered by user id.
func (s *Server) listMoved(w http.ResponseWriter, r *http.Request, p params) {
	limit, after, bad := pageParams(r.URL.Query(), api.MaxMovedBatch, api.MaxMovedBatch)
	if bad != nil {
		writeError(w, bad)
		return
	}
	c := s.lockCanary(w, p["canary_id"])
	if c == nil {
		return
	}
	defer s.canaries.mu.Unlock()
	ids := make([]string, 0, len(c.moved))
	for u := range c.moved {
		if u > after {
			ids = append(ids, u)
		}
	}
	sort.Strings(ids)
	out := api.MovedEngines{Engines: []api.MovedEngine{}, Moved: len(c.moved)}
	for _, u := range ids {
		if len(out.Engines) == limit {
			out.NextPageToken = pageToken(out.Engines[limit-1].UserID)
			break
		}
		out.Engines = append(out.Engines, c.moved[u])
	}
	writeJSON(w, http.StatusOK, out)
}

// listEngineIDs is the selector's answer: one page of matching user ids and the count of all.
func (s *Server) listEngineIDs(w http.ResponseWriter, r *http.Request, _ params) {
	q := r.URL.Query()
	sel, bad := s.selectorFromQuery(q)
	if bad == nil {
		var limit int
		var after string
		limit, after, bad = pageParams(q, 1000, api.MaxEngineIDsPage)
		if bad == nil {
			s.mu.Lock()
			out := s.engineIDsLocked(sel, after, limit)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, bad)
}

func (s *Server) engineIDsLocked(sel api.Selector, after string, limit int) api.EngineIDs {
	out := api.EngineIDs{UserIDs: []string{}}
	start := 0
	if after != "" {
		start = sort.Search(len(s.userIDs), func(i int) bool { return s.userIDs[i] > after })
	}
	// The count covers every page: ids before the page are counted too.
	for _, id := range s.userIDs[:start] {
		if matches(s.engines[id], sel, false) {
			out.Total++
		}
	}
	for _, id := range s.userIDs[start:] {
		if !matches(s.engines[id], sel, false) {
			continue
		}
		out.Total++
		if len(out.UserIDs) < limit {
			out.UserIDs = append(out.UserIDs, id)
		} else if out.NextPageToken == "" {
			out.NextPageToken = pageToken(out.UserIDs[limit-1])
		}
	}
	return out
}

// matches reports whether e is one of the engines sel picks. A rehearsal's staging engine is one
// only when staging says so: the selector never hands one to a rollout.
func matches(e *engineState, sel api.Selector, staging bool) bool {
	return (sel.Status == "" || e.Status == sel.Status) && (sel.Version == "" || e.EngineVersion == sel.Version) &&
		strings.HasPrefix(e.UserID, sel.UserIDPrefix) && (e.RehearsalID == "" || staging)
}

// selectorFromQuery reads status, version and user_id_prefix, as GET /v1/engines takes them.
func (s *Server) selectorFromQuery(q url.Values) (api.Selector, *apiError) {
	sel := api.Selector{Status: q.Get("status"), Version: q.Get("version"), UserIDPrefix: q.Get("user_id_prefix")}
	return sel, s.checkSelector(sel)
}

func (s *Server) checkSelector(sel api.Selector) *apiError {
	if sel.Status != "" && !slices.Contains(api.EngineStatuses, sel.Status) {
		return badField("status", fmt.Sprintf("status %q is not one of %s", sel.Status, strings.Join(api.EngineStatuses, ", ")))
	}
	if sel.Version != "" {
		if _, ok := s.cat.Get(sel.Version); !ok {
			return s.versionNotFound("version", sel.Version)
		}
	}
	if len(sel.UserIDPrefix) > 128 {
		return badField("user_id_prefix", "user_id_prefix is longer than 128 characters")
	}
	return nil
}

// pageParams reads limit (default def, at most max) and page_token (the last id of the previous
// page, as pageToken wrote it).
func pageParams(q url.Values, def, maxLimit int) (limit int, after string, bad *apiError) {
	limit = def
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, "", badField("limit", fmt.Sprintf("limit %q must be an integer from 1 to %d", v, maxLimit))
		}
		limit = n
	}
	if tok := q.Get("page_token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !validID(string(b)) {
			return 0, "", badField("page_token", "page_token is not one this server issued; start again without it")
		}
		after = string(b)
	}
	return limit, after, nil
}

func pageToken(lastID string) string { return base64.RawURLEncoding.EncodeToString([]byte(lastID)) }

func (s *Server) canaryRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/engine-ids", handle: s.listEngineIDs},
		{method: "PUT", pattern: "/v1/canaries/{canary_id}", handle: s.putCanary},
		{method: "GET", pattern: "/v1/canaries/{canary_id}", handle: s.getCanary},
		{method: "DELETE", pattern: "/v1/canaries/{canary_id}", handle: s.deleteCanary},
		{method: "POST", pattern: "/v1/canaries/{canary_id}/moved", handle: s.recordMoved},
		{method: "GET", pattern: "/v1/canaries/{canary_id}/moved", handle: s.listMoved},
	}
}
