package api

import "time"

// OpRehearsal is the kind of the operation POST /v1/engines/{user_id}/rehearsals starts.
const OpRehearsal = "rehearsal"

// A rehearsal's own steps, besides snapshot, verify, migrate, boot, health and eval.
const (
	StepCopy    = "copy"
	StepReplay  = "replay"
	StepMetrics = "metrics"
	StepVerdict = "verdict"
)

// Rehearsal statuses.
const (
	RehearsalRunning = "running"
	RehearsalPassed  = "passed"
	RehearsalFailed  = "failed"
	// RehearsalErrored: a step could not run (the copy, the migration, the boot, ...), so there
	// is no verdict; the operation's error says why.
	RehearsalErrored = "errored"
)

// Staging engine statuses of a rehearsal.
const (
	StagingRunning = "running"
	StagingRemoved = "removed"
)

// RehearsalAnalysis is what a rehearsal's verdict checks: the canary's analysis, with the source
// engine as the baseline. Nil thresholds are not checked.
type RehearsalAnalysis struct {
	MaxErrorRate       *float64 `json:"max_error_rate,omitempty"`
	MaxP99LatencyMS    *float64 `json:"max_p99_latency_ms,omitempty"`
	MinCacheHitRatio   *float64 `json:"min_cache_hit_ratio,omitempty"`
	MaxNewWarningKinds int      `json:"max_new_warning_kinds,omitempty"`
	BaselineTolerance  float64  `json:"baseline_tolerance,omitempty"`
	MaxEvalRegression  float64  `json:"max_eval_regression,omitempty"`
}

// RehearsalRequest starts a rehearsal of an upgrade of the engine to Version on a copy of its
// brain. Without SnapshotID the control plane takes and verifies a snapshot first.
type RehearsalRequest struct {
	Version              string            `json:"version"`
	SnapshotID           string            `json:"snapshot_id,omitempty"`
	ReplayTurns          int               `json:"replay_turns,omitempty"`
	EvalSuite            string            `json:"eval_suite,omitempty"`
	MetricsWindowSeconds int               `json:"metrics_window_seconds,omitempty"`
	Analysis             RehearsalAnalysis `json:"analysis"`
	// KeepEngine leaves a passing rehearsal's staging engine running until DELETE.
	KeepEngine bool `json:"keep_engine,omitempty"`
}

// RehearsalMigration is one migration the rehearsal ran on the copy and how long it took: a
// measured forecast of the production upgrade's downtime.
type RehearsalMigration struct {
	ID          string  `json:"id"`
	FromSchema  int     `json:"from_schema"`
	ToSchema    int     `json:"to_schema"`
	Destructive bool    `json:"destructive"`
	DurationMS  float64 `json:"duration_ms"`
}

// RehearsalFigures are one side's figures over the metrics window (and its eval score).
type RehearsalFigures struct {
	Version       string   `json:"version"`
	Requests      int64    `json:"requests"`
	ErrorRate     float64  `json:"error_rate"`
	P99LatencyMS  float64  `json:"p99_latency_ms"`
	CacheHitRatio float64  `json:"cache_hit_ratio"`
	WarningKinds  []string `json:"warning_kinds"`
	EvalScore     *float64 `json:"eval_score,omitempty"`
}

// RehearsalCheck is one failed check of the verdict: the staging figure, the production
// (source engine) figure, the limit it broke and a sentence saying so.
type RehearsalCheck struct {
	Metric     string  `json:"metric"`
	Staging    float64 `json:"staging"`
	Production float64 `json:"production"`
	Threshold  float64 `json:"threshold"`
	Detail     string  `json:"detail"`
}

// Rehearsal is an upgrade rehearsed on a staging engine booted on a copy of the engine's brain.
type Rehearsal struct {
	ID          string `json:"id"`
	UserID      string `json:"user_id"`
	OperationID string `json:"operation_id"`
	Status      string `json:"status"`
	// FromVersion and FromSchema are the source engine's when the rehearsal started: the
	// production upgrade it rehearses goes from there to ToVersion.
	FromVersion string `json:"from_version"`
	FromSchema  int    `json:"from_schema"`
	ToVersion   string `json:"to_version"`
	ToSchema    int    `json:"to_schema"`
	// Path is the versions the upgrade passes through, from FromVersion to ToVersion.
	Path []string `json:"path"`
	// SnapshotID is the verified snapshot whose copy the staging engine ran on, and
	// SnapshotSchema / SnapshotCreatedAt what it held.
	SnapshotID        string     `json:"snapshot_id,omitempty"`
	SnapshotSchema    int        `json:"snapshot_schema,omitempty"`
	SnapshotCreatedAt *time.Time `json:"snapshot_created_at,omitempty"`
	// StagingUserID is the hidden engine the rehearsal booted; StagingURL answers /health while
	// it runs (keep_engine).
	StagingUserID string               `json:"staging_user_id"`
	StagingStatus string               `json:"staging_status"`
	StagingURL    string               `json:"staging_url,omitempty"`
	KeepEngine    bool                 `json:"keep_engine"`
	Migrations    []RehearsalMigration `json:"migrations"`
	ReplayedTurns int                  `json:"replayed_turns"`
	EvalSuite     string               `json:"eval_suite,omitempty"`
	Staging       *RehearsalFigures    `json:"staging,omitempty"`
	Production    *RehearsalFigures    `json:"production,omitempty"`
	FailedChecks  []RehearsalCheck     `json:"failed_checks"`
	Error         *ErrorDetail         `json:"error,omitempty"`
	CreatedAt     time.Time            `json:"created_at"`
	FinishedAt    *time.Time           `json:"finished_at,omitempty"`
}

// RehearsalList is an engine's rehearsals, newest first.
type RehearsalList struct {
	Rehearsals []Rehearsal `json:"rehearsals"`
}

// CodeRehearsalNotFound answers a rehearsal id the control plane does not know.
const CodeRehearsalNotFound = "REHEARSAL_NOT_FOUND"
