package controlplane

import (
	"fmt"
	"os"
	"sort"
)

// DeleteEngine deprovisions a user's engine and its brain, as an orchestrator's DELETE would: the
// control API has no such endpoint (engines come and go with the fleet, not with upgrades), so
// tests use this to make an engine disappear out of band. It refuses while an operation runs.
func (s *Server) DeleteEngine(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.engines[userID]
	if e == nil {
		return fmt.Errorf("no engine for user %s", userID)
	}
	if e.CurrentOperationID != "" {
		return fmt.Errorf("operation %s is running on user %s's engine", e.CurrentOperationID, userID)
	}
	if _, err := s.reg.db.Exec(`DELETE FROM engines WHERE user_id = ?`, userID); err != nil {
		return err
	}
	s.rt.removeLocked(e)
	delete(s.engines, userID)
	if i := sort.SearchStrings(s.userIDs, userID); i < len(s.userIDs) && s.userIDs[i] == userID {
		s.userIDs = append(s.userIDs[:i], s.userIDs[i+1:]...)
	}
	if bl, ok := s.rt.(brainLocator); ok && !bl.ownsBrain(userID) {
		return nil // a brain the control plane did not create is never deleted
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(s.BrainPath(userID) + suffix); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if bl, ok := s.rt.(brainLocator); ok {
		bl.removedBrain(userID)
	}
	return nil
}
