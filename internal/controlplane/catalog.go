package controlplane

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

// baselineSQL creates the brain at the catalog's lowest schema. Table names follow the real
// Engine's brain; brain_meta.brain_writes carries the engine's write counter inside the brain so a
// snapshot records exactly how many writes it holds, even while turns keep arriving.
const baselineSQL = `
CREATE TABLE brain_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO brain_meta (key, value) VALUES ('brain_writes', 0);
CREATE TABLE episodes (id INTEGER PRIMARY KEY, summary TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE knowledge_store (id INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE conversations (id INTEGER PRIMARY KEY, thread_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE social_graph_nodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE observability_events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, created_at TEXT NOT NULL);
`

// DefaultCatalog is the built-in release catalog, modelled on the Engine's documented releases:
// a plain patch (2.3.1), an additive forward-only minor (2.4.0), a bad patch the canary must
// catch (2.4.1) and a breaking major with a destructive migration (3.0.0).
func DefaultCatalog() []api.Version {
	good := func(boot, errRate, p99, cache, eval float64) api.Profile {
		return api.Profile{BootSeconds: boot, ErrorRate: errRate, P99LatencyMS: p99, CacheHitRatio: cache, EvalScore: eval, WarningKinds: []string{}}
	}
	return []api.Version{
		{
			Version: "2.2.0", SchemaVersion: 3,
			ReleaseNotes: "Baseline release: brain schema 3.",
			Profile:      good(2, 0.012, 850, 0.62, 0.86),
		},
		{
			Version: "2.3.0", SchemaVersion: 4,
			ReleaseNotes: "Orchestrator split out (bap-engine); trajectories table for replay.",
			Migrations: []api.Migration{{
				ID: "0004_trajectories", Description: "Add the trajectories table and an index on conversation threads (additive).",
				FromSchema: 3, ToSchema: 4, ForwardOnly: true,
				SQL: `CREATE TABLE trajectories (id INTEGER PRIMARY KEY, episode_id INTEGER, steps TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL);
CREATE INDEX idx_conversations_thread ON conversations (thread_id);`,
			}},
			Profile: good(2, 0.010, 800, 0.65, 0.89),
		},
		{
			Version: "2.3.1", SchemaVersion: 4,
			ReleaseNotes: "Patch: streaming fixes; no brain schema change.",
			Profile:      good(2, 0.010, 790, 0.66, 0.90),
		},
		{
			Version: "2.4.0", SchemaVersion: 5,
			ReleaseNotes: "Skill library; episode importance scores. 2.3.x refuses the migrated brain (MIGRATION_REQUIRED).",
			Migrations: []api.Migration{{
				ID: "0005_skill_library", Description: "Add the skill_library table and episodes.importance (default 0.5); additive but forward-only.",
				FromSchema: 4, ToSchema: 5, ForwardOnly: true,
				SQL: `CREATE TABLE skill_library (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_at TEXT NOT NULL);
ALTER TABLE episodes ADD COLUMN importance REAL NOT NULL DEFAULT 0.5;
CREATE INDEX idx_episodes_importance ON episodes (importance);`,
			}},
			Profile: good(3, 0.010, 780, 0.70, 0.90),
		},
		{
			Version: "2.4.1", SchemaVersion: 5,
			ReleaseNotes: "Patch: retrieval ranking change (known bad: elevated errors and latency).",
			Profile: api.Profile{BootSeconds: 3, ErrorRate: 0.08, P99LatencyMS: 2400, CacheHitRatio: 0.55, EvalScore: 0.71,
				WarningKinds: []string{"retrieval_timeout"}},
		},
		{
			Version: "3.0.0", SchemaVersion: 6, Breaking: true,
			BreakingChanges: []string{
				"knowledge_store values are stored as JSON (value_json); readers of the old text column must change",
				"debug observability events are no longer kept",
			},
			MigrationGuideURL: "https://internal.september.wtf/platform/resources/migration-guides#v2-to-v3",
			ReleaseNotes:      "Major: structured knowledge store.",
			Migrations: []api.Migration{{
				ID: "0006_knowledge_json", Description: "Rewrite knowledge_store values into JSON and drop debug observability events (destructive).",
				FromSchema: 5, ToSchema: 6, ForwardOnly: true, Destructive: true,
				SQL: `CREATE TABLE knowledge_store_v6 (id INTEGER PRIMARY KEY, key TEXT NOT NULL, value_json TEXT NOT NULL, updated_at TEXT NOT NULL);
INSERT INTO knowledge_store_v6 (id, key, value_json, updated_at) SELECT id, key, json_object('text', value), updated_at FROM knowledge_store;
DROP TABLE knowledge_store;
ALTER TABLE knowledge_store_v6 RENAME TO knowledge_store;
DELETE FROM observability_events WHERE kind = 'debug';`,
			}},
			Profile: good(4, 0.009, 760, 0.72, 0.91),
		},
	}
}

// LoadCatalogFile reads a release catalog (api.VersionList JSON) that replaces the built-in one.
func LoadCatalogFile(path string) ([]api.Version, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog file: %w", err)
	}
	var vl api.VersionList
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vl); err != nil {
		return nil, fmt.Errorf("catalog file %s: expected {\"versions\": [...]} JSON: %w", path, err)
	}
	if _, err := checkCatalog(vl.Versions); err != nil {
		return nil, fmt.Errorf("catalog file %s: %w", path, err)
	}
	return vl.Versions, nil
}

// checkCatalog validates a catalog beyond upgrade.NewCatalog: every schema change is reached by
// exactly one migration chain, because the brain migrator numbers migrations by schema version.
func checkCatalog(vs []api.Version) (*upgrade.Catalog, error) {
	if len(vs) == 0 {
		return nil, fmt.Errorf("the catalog lists no versions")
	}
	c, err := upgrade.NewCatalog(vs)
	if err != nil {
		return nil, err
	}
	sorted := c.Versions()
	schema := sorted[0].SchemaVersion
	for _, v := range sorted[1:] {
		for _, m := range v.Migrations {
			if m.FromSchema != schema || m.ToSchema <= m.FromSchema {
				return nil, fmt.Errorf("version %s: migration %q goes from schema %d to %d, but the brain is at schema %d there", v.Version, m.ID, m.FromSchema, m.ToSchema, schema)
			}
			if strings.TrimSpace(m.SQL) == "" {
				return nil, fmt.Errorf("version %s: migration %q has no sql", v.Version, m.ID)
			}
			schema = m.ToSchema
		}
		if schema != v.SchemaVersion {
			return nil, fmt.Errorf("version %s declares schema %d, but its migrations leave the brain at schema %d", v.Version, v.SchemaVersion, schema)
		}
	}
	return c, nil
}
