// Package api owns the Engine control API contract: the OpenAPI document (openapi.yaml, the single
// source of truth) and the Go wire types that the client and the local control plane exchange.
// It has no behaviour and imports nothing beyond the standard library.
package api

import (
	_ "embed"
	"time"
)

// OpenAPI is the control API's OpenAPI 3 document, served by the control plane at /openapi.yaml
// and used by the contract tests to validate every request and response.
//
//go:embed openapi.yaml
var OpenAPI []byte

// KeyHeader carries the control plane's single admin key on every request except /health.
const KeyHeader = "X-Engine-Admin-Key"

// IdempotencyHeader makes a POST that starts work safe to retry: the same key with the same body
// returns the same operation.
const IdempotencyHeader = "Idempotency-Key"

// Base is the path prefix of every keyed endpoint.
const Base = "/v1"

// Stable error codes, carried as {"error":{"code","message"}}.
const (
	CodeInvalidKey          = "INVALID_KEY"
	CodeEngineNotFound      = "ENGINE_NOT_FOUND"
	CodeVersionNotFound     = "VERSION_NOT_FOUND"
	CodeSnapshotNotFound    = "SNAPSHOT_NOT_FOUND"
	CodeOperationNotFound   = "OPERATION_NOT_FOUND"
	CodeSnapshotRequired    = "SNAPSHOT_REQUIRED"
	CodeSnapshotMismatch    = "SNAPSHOT_MISMATCH"
	CodeSnapshotRetained    = "SNAPSHOT_RETAINED"
	CodeSnapshotCorrupt     = "SNAPSHOT_CORRUPT"
	CodeMigrationRequired   = "MIGRATION_REQUIRED"
	CodeOperationInProgress = "OPERATION_IN_PROGRESS"
	CodePreconditionFailed  = "PRECONDITION_FAILED"
	CodeRateLimited         = "RATE_LIMITED"
	CodeIdempotencyMismatch = "IDEMPOTENCY_KEY_REUSED"
	CodeInvalidRequest      = "INVALID_REQUEST"
	CodeBodyTooLarge        = "BODY_TOO_LARGE"
	CodeEngineUnavailable   = "ENGINE_UNAVAILABLE"
	CodeDowngradeNotAllowed = "DOWNGRADE_NOT_ALLOWED"
	CodeInternal            = "INTERNAL"
	CodeFaultInjected       = "FAULT_INJECTED"
	CodeNotFound            = "NOT_FOUND"
	CodeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	// CodeMigrationFailed marks an engine whose brain migration failed: the transaction rolled
	// back and the brain's dirty flag is set, so no version boots on it until a restore.
	CodeMigrationFailed = "MIGRATION_FAILED"
	// CodeHealthCheckFailed marks an engine that booted but never reported healthy in time.
	CodeHealthCheckFailed = "HEALTH_CHECK_FAILED"
	// CodeImageNotFound refuses an upgrade or restore (docker runtime) whose version's image
	// the Docker daemon does not have: nothing was stopped or changed.
	CodeImageNotFound = "IMAGE_NOT_FOUND"
	// CodeInterrupted marks an operation the control plane could not finish because it stopped
	// while the operation ran; the engine is left in the state its brain shows.
	CodeInterrupted = "OPERATION_INTERRUPTED"
	// CodeEngineOwned refuses a claim or release of an engine another manager owns.
	CodeEngineOwned = "ENGINE_OWNED"
)

// ErrorBody is the body of every non-2xx response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the stable code and the human message of an error. OperationID is set on
// OPERATION_IN_PROGRESS and names the operation that holds the engine.
type ErrorDetail struct {
	Code        string `json:"code"`
	Message     string `json:"message"`
	Field       string `json:"field,omitempty"`
	OperationID string `json:"operation_id,omitempty"`
}

// Engine statuses.
const (
	StatusProvisioning = "provisioning"
	StatusRunning      = "running"
	StatusDraining     = "draining"
	StatusUpgrading    = "upgrading"
	StatusStopped      = "stopped"
	StatusFailed       = "failed"
)

// EngineStatuses lists every engine status, in lifecycle order.
var EngineStatuses = []string{StatusProvisioning, StatusRunning, StatusDraining, StatusUpgrading, StatusStopped, StatusFailed}

// Engine is one user's engine as the control plane sees it.
type Engine struct {
	UserID             string     `json:"user_id"`
	EngineID           string     `json:"engine_id"`
	EngineVersion      string     `json:"engine_version"`
	SchemaVersion      int        `json:"schema_version"`
	Status             string     `json:"status"`
	URL                string     `json:"url"`
	LastHealthAt       *time.Time `json:"last_health_at,omitempty"`
	Health             Health     `json:"health"`
	BrainWrites        int64      `json:"brain_writes"`
	Generation         int64      `json:"generation"`
	CurrentOperationID string     `json:"current_operation_id,omitempty"`
	// LastMigrationAt is when the brain's schema last moved or a restore last replaced the brain;
	// a snapshot older than it cannot protect the next upgrade.
	LastMigrationAt *time.Time `json:"last_migration_at,omitempty"`
	// Error explains a failed engine (for example MIGRATION_REQUIRED).
	Error *ErrorDetail `json:"error,omitempty"`
	// Owner is the manager that claimed the engine (PUT /v1/engines/{user_id}/owner); nil when none.
	Owner *EngineOwner `json:"owner,omitempty"`
	// RehearsalID marks a staging engine a rehearsal booted: never part of the fleet, listed only
	// with ?include_staging=true.
	RehearsalID string `json:"rehearsal_id,omitempty"`
}

// Health is the engine's /health answer.
type Health struct {
	Status     string            `json:"status"`
	Subsystems map[string]string `json:"subsystems,omitempty"`
}

// EngineList is one page of engines. NextPageToken is empty on the last page.
type EngineList struct {
	Engines       []Engine `json:"engines"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

// Migration is one brain schema change shipped by a version.
type Migration struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	FromSchema  int    `json:"from_schema"`
	ToSchema    int    `json:"to_schema"`
	ForwardOnly bool   `json:"forward_only"`
	Destructive bool   `json:"destructive"`
	// SQL is the migration's statements; the control plane runs them in one transaction.
	SQL string `json:"sql,omitempty"`
}

// Profile is a version's behaviour: what the local control plane's simulated engines report.
type Profile struct {
	BootSeconds   float64  `json:"boot_seconds"`
	ErrorRate     float64  `json:"error_rate"`
	P99LatencyMS  float64  `json:"p99_latency_ms"`
	CacheHitRatio float64  `json:"cache_hit_ratio"`
	EvalScore     float64  `json:"eval_score"`
	WarningKinds  []string `json:"warning_kinds,omitempty"`
}

// Version is one release in the catalog.
type Version struct {
	Version           string      `json:"version"`
	SchemaVersion     int         `json:"schema_version"`
	Breaking          bool        `json:"breaking"`
	BreakingChanges   []string    `json:"breaking_changes,omitempty"`
	MigrationGuideURL string      `json:"migration_guide_url,omitempty"`
	ReleaseNotes      string      `json:"release_notes,omitempty"`
	Migrations        []Migration `json:"migrations,omitempty"`
	Profile           Profile     `json:"profile"`
}

// VersionList is the release catalog, oldest first.
type VersionList struct {
	Versions []Version `json:"versions"`
}

// Hop is one step of an upgrade path: from a version to the next catalog version whose brain
// schema differs (or to the target).
type Hop struct {
	From       string      `json:"from"`
	To         string      `json:"to"`
	Kind       string      `json:"kind"`
	Migrations []Migration `json:"migrations"`
}

// UpgradePath is everything an upgrade from one version to another implies.
type UpgradePath struct {
	From               string      `json:"from"`
	To                 string      `json:"to"`
	Kind               string      `json:"kind"`
	Valid              bool        `json:"valid"`
	Reason             string      `json:"reason,omitempty"`
	Hops               []Hop       `json:"hops"`
	Migrations         []Migration `json:"migrations"`
	FromSchema         int         `json:"from_schema"`
	ToSchema           int         `json:"to_schema"`
	ForwardOnly        bool        `json:"forward_only"`
	Destructive        bool        `json:"destructive"`
	BreakingChanges    []string    `json:"breaking_changes"`
	MigrationGuideURLs []string    `json:"migration_guide_urls"`
	RequiresSnapshot   bool        `json:"requires_snapshot"`
	// RequiresRestore is true for a downgrade below the brain's schema: only a snapshot restore
	// can bring the old version back.
	RequiresRestore bool `json:"requires_restore"`
}

// Snapshot statuses.
const (
	SnapshotVerified = "verified"
	SnapshotCorrupt  = "corrupt"
	SnapshotMissing  = "missing"
)

// SnapshotStatuses lists every snapshot status.
var SnapshotStatuses = []string{SnapshotVerified, SnapshotCorrupt, SnapshotMissing}

// Snapshot is a verified copy of one engine's brain.
type Snapshot struct {
	ID            string    `json:"id"`
	UserID        string    `json:"user_id"`
	EngineID      string    `json:"engine_id"`
	EngineVersion string    `json:"engine_version"`
	SchemaVersion int       `json:"schema_version"`
	SizeBytes     int64     `json:"size_bytes"`
	SHA256        string    `json:"sha256"`
	BrainWrites   int64     `json:"brain_writes"`
	Description   string    `json:"description,omitempty"`
	RetentionDays int       `json:"retention_days"`
	CreatedAt     time.Time `json:"created_at"`
	RetainUntil   time.Time `json:"retain_until"`
	Status        string    `json:"status"`
}

// SnapshotList is an engine's snapshots, newest first.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// CreateSnapshotRequest starts a snapshot operation.
type CreateSnapshotRequest struct {
	Description   string `json:"description,omitempty"`
	RetentionDays int    `json:"retention_days,omitempty"`
}

// UpdateSnapshotRequest changes a snapshot's mutable fields; nil leaves a field as it is.
type UpdateSnapshotRequest struct {
	Description   *string `json:"description,omitempty"`
	RetentionDays *int    `json:"retention_days,omitempty"`
}

// UpgradeRequest moves an engine to Version. SnapshotID must name a verified snapshot of this
// engine at its current version and schema when the path migrates the brain.
type UpgradeRequest struct {
	Version              string `json:"version"`
	SnapshotID           string `json:"snapshot_id,omitempty"`
	AllowDowngrade       bool   `json:"allow_downgrade,omitempty"`
	DrainTimeoutSeconds  int    `json:"drain_timeout_seconds,omitempty"`
	HealthTimeoutSeconds int    `json:"health_timeout_seconds,omitempty"`
}

// RestoreRequest swaps the engine's brain for a snapshot's and boots Version on it.
type RestoreRequest struct {
	SnapshotID           string `json:"snapshot_id"`
	Version              string `json:"version"`
	DrainTimeoutSeconds  int    `json:"drain_timeout_seconds,omitempty"`
	HealthTimeoutSeconds int    `json:"health_timeout_seconds,omitempty"`
}

// EvalRequest runs an eval suite against the engine's current version.
type EvalRequest struct {
	Suite string `json:"suite"`
}

// Operation kinds.
const (
	OpSnapshot = "snapshot"
	OpUpgrade  = "upgrade"
	OpRestore  = "restore"
	OpEval     = "eval"
)

// Operation statuses.
const (
	OpPending   = "pending"
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
	// StepSkipped is the status of a step that never ran because an earlier one failed or the
	// operation was interrupted (steps only; an operation is never skipped).
	StepSkipped = "skipped"
)

// Step names, in the order an upgrade runs them.
const (
	StepSnapshot = "snapshot"
	StepVerify   = "verify"
	StepDrain    = "drain"
	StepStop     = "stop"
	StepMigrate  = "migrate"
	StepRestore  = "restore"
	StepBoot     = "boot"
	StepHealth   = "health"
	StepEval     = "eval"
	StepRollback = "rollback"
)

// Step is one ordered step of an operation.
type Step struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Message    string     `json:"message,omitempty"`
}

// Operation is long work on one engine. Revision increases on every change, so a long-poll
// (GET /v1/operations/{id}?wait=25s&revision=N) returns as soon as the operation moves past N.
type Operation struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	UserID      string       `json:"user_id"`
	Status      string       `json:"status"`
	Revision    int64        `json:"revision"`
	Steps       []Step       `json:"steps"`
	Error       *ErrorDetail `json:"error,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	FinishedAt  *time.Time   `json:"finished_at,omitempty"`
	FromVersion string       `json:"from_version,omitempty"`
	ToVersion   string       `json:"to_version,omitempty"`
	SnapshotID  string       `json:"snapshot_id,omitempty"`
	// IdempotencyKey is the key the operation was started with: a client that lost the answer
	// to its POST (killed, interrupted) finds its operation again by it.
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Result         OperationResult `json:"result"`
}

// OperationResult carries what an operation produced.
type OperationResult struct {
	SnapshotID    string  `json:"snapshot_id,omitempty"`
	EvalSuite     string  `json:"eval_suite,omitempty"`
	EvalScore     float64 `json:"eval_score,omitempty"`
	EngineVersion string  `json:"engine_version,omitempty"`
	SchemaVersion int     `json:"schema_version,omitempty"`
	RehearsalID   string  `json:"rehearsal_id,omitempty"`
}

// Done reports whether the operation has finished, either way.
func (o Operation) Done() bool { return o.Status == OpSucceeded || o.Status == OpFailed }

// Metrics is an engine's behaviour over a window.
type Metrics struct {
	UserID        string    `json:"user_id"`
	EngineVersion string    `json:"engine_version"`
	WindowSeconds int       `json:"window_seconds"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	Requests      int64     `json:"requests"`
	Errors        int64     `json:"errors"`
	ErrorRate     float64   `json:"error_rate"`
	P99LatencyMS  float64   `json:"p99_latency_ms"`
	CacheHitRatio float64   `json:"cache_hit_ratio"`
	WarningKinds  []string  `json:"warning_kinds"`
}

// TurnsRequest writes test traffic into an engine's brain.
type TurnsRequest struct {
	Count   int    `json:"count"`
	Content string `json:"content,omitempty"`
}

// Turn is one conversation turn stored in a brain.
type Turn struct {
	ID        int64     `json:"id"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
}

// TurnsResult is what a turns write did.
type TurnsResult struct {
	Written     int    `json:"written"`
	BrainWrites int64  `json:"brain_writes"`
	Turns       []Turn `json:"turns"`
}

// TurnList is the turns stored in an engine's brain, oldest first.
type TurnList struct {
	Turns []Turn `json:"turns"`
}

// ServiceHealth is the control plane's own /health answer.
type ServiceHealth struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Engines int    `json:"engines"`
}

// Fault is one injected fault (only with --enable-faults). Empty scope fields match everything.
type Fault struct {
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"`
	// Scope: a user id, a version, or neither (global).
	UserID  string `json:"user_id,omitempty"`
	Version string `json:"version,omitempty"`
	// Probability in (0,1] for request faults; 1 when zero.
	Probability float64 `json:"probability,omitempty"`
	// Count limits how many times the fault fires; 0 means unlimited.
	Count             int `json:"count,omitempty"`
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
	DelayMS           int `json:"delay_ms,omitempty"`
	// Path restricts request faults to paths with this prefix.
	PathPrefix string `json:"path_prefix,omitempty"`
	Method     string `json:"method,omitempty"`
	Fired      int    `json:"fired,omitempty"`
}

// Fault kinds.
const (
	FaultServerError    = "server_error"    // 5xx before doing the work
	FaultRateLimit      = "rate_limit"      // 429, with Retry-After when RetryAfterSeconds > 0
	FaultDropResponse   = "drop_response"   // do the work, then drop the connection
	FaultSlowResponse   = "slow_response"   // delay the response by DelayMS
	FaultMigrationFail  = "migration_fail"  // a migration fails half-way
	FaultHealthNeverOK  = "health_never_ok" // health never turns ok after boot
	FaultEvalRegression = "eval_regression" // eval scores drop sharply
	FaultProcessKill    = "process_kill"    // process runtime: kill the engine mid-migration
	FaultIgnoreSIGTERM  = "ignore_sigterm"  // process runtime: engine ignores SIGTERM
)

// FaultKinds lists every fault kind.
var FaultKinds = []string{FaultServerError, FaultRateLimit, FaultDropResponse, FaultSlowResponse, FaultMigrationFail, FaultHealthNeverOK, FaultEvalRegression, FaultProcessKill, FaultIgnoreSIGTERM}

// FaultList is the faults in force.
type FaultList struct {
	Faults []Fault `json:"faults"`
}

// Stats counts what the control plane has served and run, for tests and benchmarks.
type Stats struct {
	Requests   map[string]int64 `json:"requests"`
	Operations map[string]int64 `json:"operations"`
	// OperationsByUser counts operations started per user and kind ("user/kind").
	OperationsByUser map[string]int64 `json:"operations_by_user"`
}

// OperationList is an engine's operations, newest first.
type OperationList struct {
	Operations []Operation `json:"operations"`
}

// The control API's routes. {user_id}, {snapshot_id} and {operation_id} are path parameters;
// ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ (so they can never hold a path character).
//
//	GET    /health                                open: the control plane's own health
//	GET    /openapi.yaml                          open: this contract
//	GET    /v1/engines                            ?status= &version= &user_id_prefix= &limit= &page_token=
//	GET    /v1/engines/{user_id}                  ETag is the engine's generation
//	GET    /v1/versions                           the release catalog, oldest first
//	GET    /v1/upgrade-path                       ?from= &to=
//	POST   /v1/engines/{user_id}/snapshots        Idempotency-Key; 202 Operation (kind snapshot)
//	GET    /v1/engines/{user_id}/snapshots        ?version= &status=; newest first
//	GET    /v1/snapshots/{snapshot_id}            status re-verified against the file
//	PATCH  /v1/snapshots/{snapshot_id}            description, retention_days
//	DELETE /v1/snapshots/{snapshot_id}            ?force=true inside retention; 204
//	POST   /v1/engines/{user_id}/upgrade          Idempotency-Key, optional If-Match: generation; 202 Operation
//	POST   /v1/engines/{user_id}/restore          Idempotency-Key, optional If-Match; 202 Operation
//	POST   /v1/engines/{user_id}/evals            Idempotency-Key; 202 Operation (kind eval)
//	GET    /v1/engines/{user_id}/operations       newest first
//	GET    /v1/operations/{operation_id}          ?wait=25s &revision=N long-poll
//	GET    /v1/engines/{user_id}/metrics          ?window=300s
//	POST   /v1/engines/{user_id}/turns            test traffic written into the brain
//	GET    /v1/engines/{user_id}/turns            the turns in the brain, oldest first
//	GET    /v1/faults, POST /v1/faults, DELETE /v1/faults   only with --enable-faults (else 404)
//	GET    /v1/stats                              request and operation counters
const (
	PathHealth  = "/health"
	PathOpenAPI = "/openapi.yaml"
)

// IDPattern is the pattern every user, snapshot and operation id matches.
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`

// MaxWait is the longest long-poll the control plane holds.
const MaxWait = 60 * time.Second
