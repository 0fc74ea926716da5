package controlplane

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// startUpgrade is POST /v1/engines/{user_id}/upgrade: the upgrade path from the catalog, a
// snapshot when it migrates the brain (upgrade.CheckSnapshot), then drain → stop → migrate →
// boot → health on the runtime.
func (s *Server) startUpgrade(w http.ResponseWriter, r *http.Request, p params) {
	var req api.UpgradeRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if req.Version == "" {
		writeError(w, badField("version", "version is required, for example \"2.4.0\""))
		return
	}
	if e := checkTimeouts(req.DrainTimeoutSeconds, req.HealthTimeoutSeconds); e != nil {
		writeError(w, e)
		return
	}
	target, ok := s.cat.Get(req.Version)
	if !ok {
		writeError(w, s.versionNotFound("version", req.Version))
		return
	}
	if ae := s.checkImage(target.Version); ae != nil {
		writeError(w, ae)
		return
	}
	if req.SnapshotID != "" && !validID(req.SnapshotID) {
		writeError(w, badField("snapshot_id", fmt.Sprintf("snapshot_id must match %s", api.IDPattern)))
		return
	}
	var path api.UpgradePath
	s.start(w, r, opStart{
		kind: api.OpUpgrade, userID: p["user_id"], hash: bodyHash(req), ifMatch: true,
		validate: func(e *engineState) *apiError {
			if e.Status != api.StatusRunning {
				return s.unavailable(e, "upgrade")
			}
			var err error
			if path, err = s.cat.Path(e.EngineVersion, target.Version); err != nil {
				return newErr(http.StatusConflict, api.CodeVersionNotFound, err.Error())
			}
			if path.Kind == upgrade.KindDowngrade && !req.AllowDowngrade {
				ae := newErr(http.StatusConflict, api.CodeDowngradeNotAllowed, fmt.Sprintf("%s is older than user %s's %s: set allow_downgrade to go back (a lower schema needs a snapshot restore instead)", target.Version, e.UserID, e.EngineVersion))
				ae.detail.Field = "allow_downgrade"
				return ae
			}
			if len(path.Migrations) == 0 {
				if req.SnapshotID != "" && s.snapshots[req.SnapshotID] == nil {
					return s.snapshotNotFound(req.SnapshotID)
				}
				return nil
			}
			if req.SnapshotID == "" {
				ae := newErr(http.StatusConflict, api.CodeSnapshotRequired, fmt.Sprintf("upgrading user %s from %s to %s migrates the brain (schema %d to %d, forward-only): take a snapshot of this engine first (POST /v1/engines/%s/snapshots) and name it in snapshot_id", e.UserID, e.EngineVersion, target.Version, path.FromSchema, path.ToSchema, e.UserID))
				ae.detail.Field = "snapshot_id"
				return ae
			}
			sn := s.snapshots[req.SnapshotID]
			if sn == nil {
				return s.snapshotNotFound(req.SnapshotID)
			}
			view := sn.Snapshot
			if fi, err := os.Stat(s.SnapshotPath(sn.ID)); err != nil {
				view.Status = api.SnapshotMissing
			} else if sn.Status != api.SnapshotVerified || stampOf(fi) != sn.checked {
				// Not verified as it is now: hash again (under the lock, rare).
				view.Status = api.SnapshotVerified
				if sum, _, err := fileSHA256(s.SnapshotPath(sn.ID)); err != nil || sum != sn.SHA256 {
					view.Status = api.SnapshotCorrupt
				}
			}
			if prob := upgrade.CheckSnapshot(e.Engine, view, time.Now()); prob != nil {
				ae := newErr(http.StatusConflict, prob.Code, prob.Reason)
				ae.detail.Field = "snapshot_id"
				return ae
			}
			return nil
		},
		prepare: func(op *operation) {
			op.ToVersion, op.SnapshotID = target.Version, req.SnapshotID
			if path.Kind == upgrade.KindNone {
				// Already there: no drain, no restart.
				now := time.Now().UTC()
				op.Status, op.FinishedAt = api.OpSucceeded, &now
				op.Result = api.OperationResult{EngineVersion: target.Version, SchemaVersion: path.ToSchema, SnapshotID: req.SnapshotID}
				return
			}
			names := []string{api.StepDrain, api.StepStop}
			if len(path.Migrations) > 0 {
				names = append(names, api.StepMigrate)
			}
			op.Steps = pendingSteps(append(names, api.StepBoot, api.StepHealth)...)
		},
		run: func(op *operation) { s.runUpgrade(op, path, req) },
	})
}

func (s *Server) runUpgrade(op *operation, path api.UpgradePath, req api.UpgradeRequest) {
	if !s.rt.drainAndStop(op, orDefault(req.DrainTimeoutSeconds, defaultDrainTimeout)) {
		return
	}
	if len(path.Migrations) > 0 && !s.rt.migrate(op, path, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout)) {
		return
	}
	s.rt.bootAndCheck(op, path.To, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout))
}
