package controlplane

import (
	"fmt"
	"net/http"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// startRestore is POST /v1/engines/{user_id}/restore: the snapshot verified first, then drain →
// stop → the brain replaced by the snapshot → boot → health on the runtime.
func (s *Server) startRestore(w http.ResponseWriter, r *http.Request, p params) {
	var req api.RestoreRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.SnapshotID == "":
		writeError(w, badField("snapshot_id", "snapshot_id is required: the snapshot to restore"))
		return
	case !validID(req.SnapshotID):
		writeError(w, badField("snapshot_id", fmt.Sprintf("snapshot_id must match %s", api.IDPattern)))
		return
	case req.Version == "":
		writeError(w, badField("version", "version is required: the version to boot on the restored brain (the snapshot's own version is the safe choice)"))
		return
	}
	if e := checkTimeouts(req.DrainTimeoutSeconds, req.HealthTimeoutSeconds); e != nil {
		writeError(w, e)
		return
	}
	v, ok := s.cat.Get(req.Version)
	if !ok {
		writeError(w, s.versionNotFound("version", req.Version))
		return
	}
	if ae := s.checkImage(v.Version); ae != nil {
		writeError(w, ae)
		return
	}
	// The checksum is verified first, in full and synchronously: a tampered snapshot is refused
	// before anything about the engine changes.
	sn, ok := s.snapshotView(req.SnapshotID, true)
	if !ok {
		writeError(w, s.snapshotNotFound(req.SnapshotID))
		return
	}
	if sn.Status != api.SnapshotVerified {
		ae := newErr(http.StatusConflict, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s is %s (its file no longer matches sha256 %s): it cannot be restored; nothing was changed", sn.ID, sn.Status, sn.SHA256))
		ae.detail.Field = "snapshot_id"
		writeError(w, ae)
		return
	}
	s.start(w, r, opStart{
		kind: api.OpRestore, userID: p["user_id"], hash: bodyHash(req), ifMatch: true,
		validate: func(e *engineState) *apiError {
			if prob := upgrade.CheckRestore(e.Engine, sn, v); prob != nil {
				ae := newErr(http.StatusConflict, prob.Code, prob.Reason)
				ae.detail.Field = "snapshot_id"
				return ae
			}
			return nil
		},
		prepare: func(op *operation) {
			op.ToVersion, op.SnapshotID = v.Version, sn.ID
			op.Steps = pendingSteps(api.StepDrain, api.StepStop, api.StepRestore, api.StepBoot, api.StepHealth)
		},
		run: func(op *operation) { s.runRestore(op, sn, req) },
	})
}

func (s *Server) runRestore(op *operation, sn api.Snapshot, req api.RestoreRequest) {
	if !s.rt.drainAndStop(op, orDefault(req.DrainTimeoutSeconds, defaultDrainTimeout)) {
		return
	}
	e := s.begin(op, api.StepRestore, api.StatusUpgrading)
	// Checked again: the file could have changed since the request was accepted.
	if sum, _, err := fileSHA256(s.SnapshotPath(sn.ID)); err != nil || sum != sn.SHA256 {
		s.failOp(op, api.StepRestore, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s changed or vanished before the swap; the brain was not touched", sn.ID), false)
		return
	}
	if err := s.rt.restoreBrain(op.UserID, s.SnapshotPath(sn.ID)); err != nil {
		s.failOp(op, api.StepRestore, api.CodeInternal, fmt.Sprintf("swapping user %s's brain failed: %v; restore again", op.UserID, err), true)
		return
	}
	s.mu.Lock()
	// The counter lives in the brain, so it comes back with it: writes after the snapshot are
	// gone and must no longer count as writes a later rollback would lose. It can then climb
	// back to a figure it had before, over other rows, so the brain counts as replaced even at
	// the same schema: a snapshot older than the restore no longer protects it.
	now := time.Now().UTC()
	e.SchemaVersion, e.BrainWrites, e.LastMigrationAt = sn.SchemaVersion, sn.BrainWrites, &now
	s.changedLocked(op, e)
	s.mu.Unlock()
	s.finishStep(op, api.StepRestore, fmt.Sprintf("brain replaced by snapshot %s (schema %d, %d writes)", sn.ID, sn.SchemaVersion, sn.BrainWrites))
	s.rt.bootAndCheck(op, req.Version, orDefault(req.HealthTimeoutSeconds, defaultHealthTimeout))
}
