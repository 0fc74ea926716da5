package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// engineView is the wire form of an engine. Simulated engines have no port of their own, so the
// url names the engine under the control plane's own address.
func (s *Server) engineView(e *engineState, r *http.Request) api.Engine {
	out := e.Engine
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	out.URL = scheme + "://" + r.Host + "/engines/" + e.UserID
	if out.Health.Subsystems != nil {
		out.Health.Subsystems = cloneMap(out.Health.Subsystems)
	}
	if out.Error != nil {
		d := *out.Error
		out.Error = &d
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *Server) engineNotFound(userID string) *apiError {
	return newErr(http.StatusNotFound, api.CodeEngineNotFound, fmt.Sprintf("no engine for user_id %q; list engines with GET /v1/engines", userID))
}

// lockEngine takes s.mu and returns user's engine with the lock held. When there is no such engine
// it releases the lock, answers 404 and returns nil.
func (s *Server) lockEngine(w http.ResponseWriter, user string) *engineState {
	s.mu.Lock()
	e := s.engines[user]
	if e == nil {
		s.mu.Unlock()
		writeError(w, s.engineNotFound(user))
	}
	return e
}

func (s *Server) versionNotFound(field, version string) *apiError {
	e := newErr(http.StatusNotFound, api.CodeVersionNotFound, fmt.Sprintf("%s %q is not in the release catalog (known versions: %s)", field, version, strings.Join(s.cat.Names(), ", ")))
	e.detail.Field = field
	return e
}

func (s *Server) listEngines(w http.ResponseWriter, r *http.Request, _ params) {
	q := r.URL.Query()
	sel, bad := s.selectorFromQuery(q)
	staging := q.Get("include_staging") == "true"
	if bad != nil {
		writeError(w, bad)
		return
	}
	limit, after, bad := pageParams(q, 100, 1000)
	if bad != nil {
		writeError(w, bad)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.EngineList{Engines: []api.Engine{}}
	start := 0
	if after != "" {
		start = sort.Search(len(s.userIDs), func(i int) bool { return s.userIDs[i] > after })
	}
	for _, id := range s.userIDs[start:] {
		e := s.engines[id]
		if !matches(e, sel, staging) {
			continue
		}
		if len(out.Engines) == limit {
			out.NextPageToken = pageToken(out.Engines[limit-1].UserID)
			break
		}
		out.Engines = append(out.Engines, s.engineView(e, r))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getEngine(w http.ResponseWriter, r *http.Request, p params) {
	e := s.lockEngine(w, p["user_id"])
	if e == nil {
		return
	}
	v := s.engineView(e, r)
	s.mu.Unlock()
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(v.Generation, 10)))
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) listVersions(w http.ResponseWriter, _ *http.Request, _ params) {
	vs := s.cat.Versions()
	for i := range vs {
		ms := make([]api.Migration, len(vs[i].Migrations))
		for j, m := range vs[i].Migrations {
			m.SQL = ""
			ms[j] = m
		}
		vs[i].Migrations = ms
	}
	writeJSON(w, http.StatusOK, api.VersionList{Versions: vs})
}

func (s *Server) upgradePath(w http.ResponseWriter, r *http.Request, _ params) {
	from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
	for _, f := range []struct{ name, v string }{{"from", from}, {"to", to}} {
		if f.v == "" {
			writeError(w, badField(f.name, fmt.Sprintf("query parameter %q is required, for example ?from=2.3.0&to=2.4.0", f.name)))
			return
		}
	}
	p, err := s.cat.Path(from, to)
	var uv *upgrade.UnknownVersionError
	if errors.As(err, &uv) {
		field := "from"
		if uv.Version == to && uv.Version != from {
			field = "to"
		}
		writeError(w, s.versionNotFound(field, uv.Version))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// snapshotView re-verifies a snapshot's file and returns its wire form. Unless full, a file
// last found verified is not hashed again while its stamp is unchanged; any other status is
// checked afresh, so restored bytes read verified again. The hash runs outside the server lock.
func (s *Server) snapshotView(id string, full bool) (api.Snapshot, bool) {
	s.mu.Lock()
	sn := s.snapshots[id]
	if sn == nil {
		s.mu.Unlock()
		return api.Snapshot{}, false
	}
	want, cached, cachedStatus := sn.SHA256, sn.checked, sn.Status
	s.mu.Unlock()

	status := cachedStatus
	fi, err := os.Stat(s.SnapshotPath(id))
	var stamp fileStamp
	switch {
	case err != nil:
		status = api.SnapshotMissing
	case !full && cachedStatus == api.SnapshotVerified && stampOf(fi) == cached:
		stamp = cached
	default:
		stamp = stampOf(fi)
		sum, _, herr := fileSHA256(s.SnapshotPath(id))
		switch {
		case herr != nil:
			status = api.SnapshotMissing
		case sum != want:
			status = api.SnapshotCorrupt
		default:
			status = api.SnapshotVerified
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn = s.snapshots[id]; sn == nil {
		return api.Snapshot{}, false
	}
	sn.Status, sn.checked = status, stamp
	return sn.Snapshot, true
}

func (s *Server) snapshotNotFound(id string) *apiError {
	e := newErr(http.StatusNotFound, api.CodeSnapshotNotFound, fmt.Sprintf("snapshot_id %q names no snapshot; list an engine's snapshots with GET /v1/engines/{user_id}/snapshots", id))
	e.detail.Field = "snapshot_id"
	return e
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request, p params) {
	user := p["user_id"]
	version, status := r.URL.Query().Get("version"), r.URL.Query().Get("status")
	if status != "" && !slices.Contains(api.SnapshotStatuses, status) {
		writeError(w, badField("status", fmt.Sprintf("status %q is not one of %s", status, strings.Join(api.SnapshotStatuses, ", "))))
		return
	}
	if version != "" {
		if _, ok := s.cat.Get(version); !ok {
			writeError(w, s.versionNotFound("version", version))
			return
		}
	}
	if s.lockEngine(w, user) == nil {
		return
	}
	var ids []string
	for id, sn := range s.snapshots {
		if sn.UserID == user {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	out := api.SnapshotList{Snapshots: []api.Snapshot{}}
	for _, id := range ids {
		sn, ok := s.snapshotView(id, false)
		if !ok || version != "" && sn.EngineVersion != version || status != "" && sn.Status != status {
			continue
		}
		out.Snapshots = append(out.Snapshots, sn)
	}
	sort.Slice(out.Snapshots, func(i, j int) bool {
		a, b := out.Snapshots[i], out.Snapshots[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSnapshot(w http.ResponseWriter, _ *http.Request, p params) {
	sn, ok := s.snapshotView(p["snapshot_id"], false)
	if !ok {
		writeError(w, s.snapshotNotFound(p["snapshot_id"]))
		return
	}
	writeJSON(w, http.StatusOK, sn)
}

const maxRetentionDays = 3650

func checkRetention(days int) *apiError {
	if days < 1 || days > maxRetentionDays {
		return badField("retention_days", fmt.Sprintf("retention_days %d must be between 1 and %d", days, maxRetentionDays))
	}
	return nil
}

func checkDescription(d string) *apiError {
	if len(d) > 1024 {
		return badField("description", fmt.Sprintf("description is %d bytes; the limit is 1024", len(d)))
	}
	return nil
}

func (s *Server) patchSnapshot(w http.ResponseWriter, r *http.Request, p params) {
	var req api.UpdateSnapshotRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if req.RetentionDays != nil {
		if e := checkRetention(*req.RetentionDays); e != nil {
			writeError(w, e)
			return
		}
	}
	if req.Description != nil {
		if e := checkDescription(*req.Description); e != nil {
			writeError(w, e)
			return
		}
	}
	id := p["snapshot_id"]
	s.mu.Lock()
	sn := s.snapshots[id]
	if sn == nil {
		s.mu.Unlock()
		writeError(w, s.snapshotNotFound(id))
		return
	}
	next := sn.Snapshot
	if req.Description != nil {
		next.Description = *req.Description
	}
	if req.RetentionDays != nil {
		next.RetentionDays = *req.RetentionDays
		next.RetainUntil = next.CreatedAt.AddDate(0, 0, next.RetentionDays)
	}
	if err := s.reg.putSnapshot(next); err != nil {
		s.mu.Unlock()
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, err.Error()))
		return
	}
	sn.Snapshot = next
	s.mu.Unlock()
	out, _ := s.snapshotView(id, false)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request, p params) {
	id := p["snapshot_id"]
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, badField("force", fmt.Sprintf("force %q must be true or false", v)))
			return
		}
		force = b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.snapshots[id]
	if sn == nil {
		writeError(w, s.snapshotNotFound(id))
		return
	}
	if now := time.Now(); !force && now.Before(sn.RetainUntil) {
		writeError(w, newErr(http.StatusConflict, api.CodeSnapshotRetained, fmt.Sprintf("snapshot %s is retained until %s; delete it with force=true or wait until then", id, sn.RetainUntil.UTC().Format(time.RFC3339))))
		return
	}
	for _, op := range s.ops {
		if !op.Done() && (op.SnapshotID == id || op.Result.SnapshotID == id) {
			e := newErr(http.StatusConflict, api.CodeOperationInProgress, fmt.Sprintf("operation %s is using snapshot %s; wait for it to finish", op.ID, id))
			e.detail.OperationID = op.ID
			writeError(w, e)
			return
		}
	}
	if err := s.reg.deleteSnapshot(id); err != nil {
		writeError(w, newErr(http.StatusInternalServerError, api.CodeInternal, err.Error()))
		return
	}
	delete(s.snapshots, id)
	if err := os.Remove(s.SnapshotPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("snapshot file not removed", "snapshot_id", id, "error", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request, _ params) {
	writeJSON(w, http.StatusOK, s.stats.snapshot())
}

func (s *Server) listFaults(w http.ResponseWriter, _ *http.Request, _ params) {
	writeJSON(w, http.StatusOK, api.FaultList{Faults: s.faults.all()})
}

func (s *Server) addFault(w http.ResponseWriter, r *http.Request, _ params) {
	var f api.Fault
	if e := decodeBody(w, r, &f, false); e != nil {
		writeError(w, e)
		return
	}
	if e := validateFault(f, s.rt.realProcesses()); e != nil {
		writeError(w, e)
		return
	}
	if f.Version != "" {
		if _, ok := s.cat.Get(f.Version); !ok {
			writeError(w, s.versionNotFound("version", f.Version))
			return
		}
	}
	writeJSON(w, http.StatusCreated, s.faults.add(f))
}

func (s *Server) clearFaults(w http.ResponseWriter, _ *http.Request, _ params) {
	s.faults.clear()
	w.WriteHeader(http.StatusNoContent)
}
