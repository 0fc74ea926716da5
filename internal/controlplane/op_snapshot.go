package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// nominalVerify is a snapshot's verification (integrity_check and sha256 of the copy) on a real
// volume, multiplied by the time scale.
const nominalVerify = time.Second

// createSnapshot is POST /v1/engines/{user_id}/snapshots: the live brain copied while the
// engine keeps taking turns, then verified, hashed and recorded.
func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request, p params) {
	var req api.CreateSnapshotRequest
	if e := decodeBody(w, r, &req, true); e != nil {
		writeError(w, e)
		return
	}
	if req.RetentionDays == 0 {
		req.RetentionDays = 7
	}
	if e := checkRetention(req.RetentionDays); e != nil {
		writeError(w, e)
		return
	}
	if e := checkDescription(req.Description); e != nil {
		writeError(w, e)
		return
	}
	s.start(w, r, opStart{
		kind: api.OpSnapshot, userID: p["user_id"], hash: bodyHash(req),
		validate: s.requireRunning("snapshot"),
		prepare: func(op *operation) {
			op.Result.SnapshotID = "snap-" + randomHex(8)
			op.SnapshotID = op.Result.SnapshotID
			op.Steps = pendingSteps(api.StepSnapshot, api.StepVerify)
		},
		run: func(op *operation) { s.runSnapshot(op, req) },
	})
}

func (s *Server) runSnapshot(op *operation, req api.CreateSnapshotRequest) {
	if sn, ok := s.takeSnapshot(op, op.Result.SnapshotID, req); ok {
		s.succeedOp(op, api.OperationResult{SnapshotID: sn.ID, EngineVersion: sn.EngineVersion, SchemaVersion: sn.SchemaVersion})
	}
}

// takeSnapshot runs the steps snapshot and verify of op's engine into snapshot id and records
// it; on failure it has failed op and reports false.
func (s *Server) takeSnapshot(op *operation, id string, req api.CreateSnapshotRequest) (api.Snapshot, bool) {
	e := s.begin(op, api.StepSnapshot, "")
	s.mu.Lock()
	version := e.EngineVersion
	s.mu.Unlock()
	created := time.Now().UTC()
	dst := s.SnapshotPath(id)
	tmp := partialSnapshot(dst)
	os.Remove(tmp)
	sc, err := s.rt.snapshotBrain(s.ctx, op.UserID, tmp)
	if err != nil {
		os.Remove(tmp)
		s.failOp(op, api.StepSnapshot, api.CodeInternal, fmt.Sprintf("copying user %s's brain failed: %v; take the snapshot again", op.UserID, err), false)
		return api.Snapshot{}, false
	}
	if !sc.Pinned {
		s.log.Info("snapshot fell back to the online backup", "user_id", op.UserID, "snapshot_id", id, "how", sc.How)
	}
	s.finishStep(op, api.StepSnapshot, sc.How)
	s.begin(op, api.StepVerify, "")
	if !s.sleep(nominalVerify) {
		os.Remove(tmp)
		return api.Snapshot{}, false
	}
	sf, err := sealSnapshot(tmp, dst, sc.Digest)
	if err != nil {
		os.Remove(tmp)
		os.Remove(dst)
		if errors.Is(err, errSnapshotUnverified) {
			s.failOp(op, api.StepVerify, api.CodeSnapshotCorrupt, fmt.Sprintf("snapshot %s failed verification: %v", id, err), false)
		} else {
			s.failOp(op, api.StepVerify, api.CodeInternal, fmt.Sprintf("snapshot %s passed verification but could not be put in place: %v; take the snapshot again", id, err), false)
		}
		return api.Snapshot{}, false
	}
	fi, err := os.Stat(dst)
	if err != nil {
		s.failOp(op, api.StepVerify, api.CodeInternal, fmt.Sprintf("snapshot %s vanished right after it was written: %v; take the snapshot again", id, err), false)
		return api.Snapshot{}, false
	}
	sn := api.Snapshot{
		ID: id, UserID: op.UserID, EngineID: e.EngineID, EngineVersion: version, SchemaVersion: sf.Schema,
		SizeBytes: sf.Size, SHA256: sf.SHA256, BrainWrites: sf.Writes, Description: req.Description,
		RetentionDays: req.RetentionDays, CreatedAt: created, RetainUntil: created.AddDate(0, 0, req.RetentionDays),
		Status: api.SnapshotVerified,
	}
	s.mu.Lock()
	if err := s.reg.putSnapshot(sn); err != nil {
		s.mu.Unlock()
		os.Remove(dst)
		s.failOp(op, api.StepVerify, api.CodeInternal, "could not record the snapshot: "+err.Error(), false)
		return api.Snapshot{}, false
	}
	s.snapshots[id] = &snapshotState{Snapshot: sn, checked: stampOf(fi)}
	s.mu.Unlock()
	s.finishStep(op, api.StepVerify, fmt.Sprintf("integrity_check ok; sha256 %s; %d bytes", sf.SHA256[:12], sf.Size))
	return sn, true
}
