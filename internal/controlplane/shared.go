package controlplane

import (
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// This file is the brain code the stand-in Engine (internal/cmd/engine-standin) shares with the
// control plane: one catalog, one migration numbering, one brain layout. A stand-in that
// migrated differently from the control plane would make every process-runtime test meaningless.

// MigrateHooks shape how a stand-in applies its migrations.
type MigrateHooks struct {
	// BeforeEach runs after a migration's dirty flag is committed and before its statements
	// run; a slow hook widens the window in which a killed process leaves a dirty brain.
	BeforeEach func(schema uint)
	// FailFirst makes the first migration the brain still needs run half its statements and
	// fail (the migration_fail fault): the transaction rolls back and the brain stays dirty.
	FailFirst bool
}

// MigrateBrain brings the brain at path to schema target with the catalog's migrations, exactly
// as the control plane's simulated engines do.
func MigrateBrain(path string, catalog []api.Version, target int, h MigrateHooks) error {
	cat, err := checkCatalog(catalog)
	if err != nil {
		return err
	}
	src := newMigrations(cat.Versions())
	if h.FailFirst {
		from := src.base - 1
		if schema, _, err := brainSchema(path); err == nil {
			from = schema
		}
		if from < target {
			src = src.failingAt(nextSchema(cat.Versions(), from))
		}
	}
	return migrateBrainHooked(path, src, target, h.BeforeEach)
}

// nextSchema is the first schema above from that some catalog version uses.
func nextSchema(vs []api.Version, from int) int {
	for _, v := range vs {
		if v.SchemaVersion > from {
			return v.SchemaVersion
		}
	}
	return from
}

// BrainSchema reports the brain's schema and dirty flag; fs.ErrNotExist when there is no brain.
func BrainSchema(path string) (schema int, dirty bool, err error) {
	return brainSchema(path)
}

// OpenBrain opens a brain the way the control plane does (WAL, busy timeout), so an online
// backup from the control plane never blocks the engine process's turns.
func OpenBrain(path string) (*sql.DB, error) { return openBrain(path) }

// AppendTurns writes count turns into the brain and advances its in-brain write counter by
// count, in one transaction. It returns the turns and the counter after the write.
func AppendTurns(db *sql.DB, count int, content string) ([]api.Turn, int64, error) {
	tx, err := db.Begin()
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var writes int64
	if err := tx.QueryRow(`SELECT value FROM brain_meta WHERE key = 'brain_writes'`).Scan(&writes); err != nil {
		return nil, 0, fmt.Errorf("read the brain's write counter: %w", err)
	}
	after := writes + int64(count)
	turns, err := insertTurns(tx, count, content, after)
	return turns, after, err
}

// ParseCatalog checks a catalog and returns it keyed for lookups.
func ParseCatalog(vs []api.Version) (*upgrade.Catalog, error) { return checkCatalog(vs) }

// BrainExists says whether a brain file is there (a missing one is created fresh by migration).
func BrainExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// EngineTurnRequest is the body of an engine process's POST /v1/turns (the stand-in's turn
// endpoint). DelayMS holds the request open that long (unscaled) so tests can have a turn in
// flight when a drain starts.
type EngineTurnRequest struct {
	Count   int    `json:"count"`
	Content string `json:"content,omitempty"`
	DelayMS int    `json:"delay_ms,omitempty"`
}

// EngineTurnResult is one turn's outcome as the Engine's usage events report it.
type EngineTurnResult struct {
	LatencyMS      float64 `json:"latency_ms"`
	InputTokens    int     `json:"input_tokens"`
	OutputTokens   int     `json:"output_tokens"`
	CacheHitTokens int     `json:"cache_hit_tokens"`
	// Error is the warning kind of a failed turn; the user's message is still stored (it is
	// durable before the model answers), the answer is what failed.
	Error string `json:"error,omitempty"`
}

// EngineTurnResponse is what POST /v1/turns returns.
type EngineTurnResponse struct {
	Written     int                `json:"written"`
	BrainWrites int64              `json:"brain_writes"`
	Turns       []api.Turn         `json:"turns"`
	Results     []EngineTurnResult `json:"results"`
}
