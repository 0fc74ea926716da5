package api

import (
	"encoding/json"
	"time"
)

// CodeCanaryNotFound answers a canary id the control plane holds no record for.
const CodeCanaryNotFound = "CANARY_NOT_FOUND"

// MaxMovedBatch is the most moved engines one POST /v1/canaries/{canary_id}/moved records.
const MaxMovedBatch = 1000

// MaxEngineIDsPage is the largest page of GET /v1/engine-ids.
const MaxEngineIDsPage = 10000

// Selector picks engines by what the control plane knows of them: every field set must match.
// It is what GET /v1/engines and GET /v1/engine-ids filter by.
type Selector struct {
	Status       string `json:"status,omitempty"`
	Version      string `json:"version,omitempty"`
	UserIDPrefix string `json:"user_id_prefix,omitempty"`
}

// EngineIDs is one page of the user ids a selector matches, ordered by user id. Total counts every
// match, on every page.
type EngineIDs struct {
	UserIDs       []string `json:"user_ids"`
	Total         int      `json:"total"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

// CanaryScope is what a canary rolls over: an explicit list of users, a selector, or both (the
// union).
type CanaryScope struct {
	UserIDs  []string  `json:"user_ids,omitempty"`
	Selector *Selector `json:"selector,omitempty"`
}

// Canary is a canary's own record, kept by the control plane under the canary's id so that the
// facts of each engine it moved stay out of Terraform state and an import recovers them.
// LastAnalysis, LastAbort and Settings are the manager's own records, stored as given.
type Canary struct {
	ID           string          `json:"id,omitempty"`
	Version      string          `json:"version"`
	Seed         string          `json:"seed"`
	Steps        []int64         `json:"steps"`
	BakeTime     string          `json:"bake_time"`
	MaxParallel  int64           `json:"max_parallel"`
	Mode         string          `json:"mode,omitempty"`
	Scope        CanaryScope     `json:"scope"`
	CurrentStep  int64           `json:"current_step"`
	LastAnalysis json.RawMessage `json:"last_analysis,omitempty"`
	LastAbort    json.RawMessage `json:"last_abort,omitempty"`
	// Settings are the manager's other settings (hold, analysis thresholds, ...), stored as given.
	Settings json.RawMessage `json:"settings,omitempty"`
	// MovedCount is how many engines the record holds (read-only).
	MovedCount int       `json:"moved_count"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// MovedEngine is one engine a canary moved: the version it ran before (its rollback target) and
// the snapshot that protects the move ("" when the move crossed no schema change). RecordedAt is
// set by the control plane.
type MovedEngine struct {
	UserID        string     `json:"user_id"`
	StableVersion string     `json:"stable_version"`
	SnapshotID    string     `json:"snapshot_id,omitempty"`
	RecordedAt    *time.Time `json:"recorded_at,omitempty"`
}

// RecordMovedRequest records moved engines on a canary (at most MaxMovedBatch). Recording is
// idempotent: an engine already recorded takes the new stable version and, when one is given, the
// new snapshot; an empty snapshot_id keeps the recorded one.
type RecordMovedRequest struct {
	Engines []MovedEngine `json:"engines"`
}

// MovedEngines is one page of a canary's moved engines, ordered by user id, or the answer to a
// RecordMovedRequest (Engines are the recorded entries). Moved is the record's total.
type MovedEngines struct {
	Engines       []MovedEngine `json:"engines"`
	Moved         int           `json:"moved"`
	NextPageToken string        `json:"next_page_token,omitempty"`
}
