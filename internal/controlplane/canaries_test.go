package controlplane

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func testCanary() api.Canary {
	return api.Canary{
		Version: "2.4.0", Seed: "seed-1", Steps: []int64{10, 50, 100}, BakeTime: "3m", MaxParallel: 7, Mode: "stepwise",
		Scope:        api.CanaryScope{Selector: &api.Selector{Version: "2.3.0", UserIDPrefix: "user-"}},
		CurrentStep:  10,
		LastAnalysis: json.RawMessage(`{"step":10,"verdict":"pass"}`),
	}
}

// A canary's record keeps its configuration and the true stable version of each moved engine
// across replacement, idempotent re-recording and a restart; DELETE drops it.
func TestCanaryRecord_roundTripAndRestart(t *testing.T) {
	e := newEnv(t, withSeed(5, "2.3.0"))
	const id = "canary-0123abcd"
	var c api.Canary
	e.ok(e.do("PUT", "/v1/canaries/"+id, testCanary()), 201, &c)
	if c.ID != id || c.MaxParallel != 7 || c.BakeTime != "3m" || c.MovedCount != 0 || c.CreatedAt.IsZero() {
		t.Fatalf("created record = %+v", c)
	}
	moved := api.RecordMovedRequest{Engines: []api.MovedEngine{
		{UserID: "user-0001", StableVersion: "2.3.0", SnapshotID: "snap-1"},
		{UserID: "user-0002", StableVersion: "2.3.0"},
	}}
	var m api.MovedEngines
	e.ok(e.do("POST", "/v1/canaries/"+id+"/moved", moved), 200, &m)
	if m.Moved != 2 || len(m.Engines) != 2 || m.Engines[0].RecordedAt == nil {
		t.Fatalf("recorded = %+v", m)
	}
	// Recording again without a snapshot keeps the snapshot; a second entry adds one.
	again := api.RecordMovedRequest{Engines: []api.MovedEngine{
		{UserID: "user-0001", StableVersion: "2.3.0"}, {UserID: "user-0003", StableVersion: "2.3.0"}}}
	e.ok(e.do("POST", "/v1/canaries/"+id+"/moved", again), 200, &m)
	if m.Moved != 3 || m.Engines[0].SnapshotID != "snap-1" {
		t.Fatalf("re-recorded = %+v", m)
	}
	// Replacing the configuration keeps the moved engines.
	next := testCanary()
	next.CurrentStep = 50
	e.ok(e.do("PUT", "/v1/canaries/"+id, next), 200, &c)
	if c.MovedCount != 3 || c.CurrentStep != 50 {
		t.Fatalf("replaced record = %+v", c)
	}

	e2 := e.restart()
	e2.ok(e2.do("GET", "/v1/canaries/"+id, nil), 200, &c)
	if c.CurrentStep != 50 || c.Seed != "seed-1" || c.MovedCount != 3 || string(c.LastAnalysis) != `{"step":10,"verdict":"pass"}` ||
		c.Scope.Selector == nil || c.Scope.Selector.Version != "2.3.0" {
		t.Fatalf("record after restart = %+v", c)
	}
	var page api.MovedEngines
	e2.ok(e2.do("GET", "/v1/canaries/"+id+"/moved?limit=2", nil), 200, &page)
	if page.Moved != 3 || len(page.Engines) != 2 || page.NextPageToken == "" ||
		page.Engines[0].UserID != "user-0001" || page.Engines[0].SnapshotID != "snap-1" {
		t.Fatalf("first page after restart = %+v", page)
	}
	var page2 api.MovedEngines
	e2.ok(e2.do("GET", "/v1/canaries/"+id+"/moved?limit=2&page_token="+page.NextPageToken, nil), 200, &page2)
	if len(page2.Engines) != 1 || page2.Engines[0].UserID != "user-0003" || page2.Engines[0].SnapshotID != "" || page2.NextPageToken != "" {
		t.Fatalf("second page = %+v", page2)
	}
	e2.ok(e2.do("DELETE", "/v1/canaries/"+id, nil), 204, nil)
	e2.ok(e2.do("DELETE", "/v1/canaries/"+id, nil), 204, nil)
	r := e2.do("GET", "/v1/canaries/"+id, nil)
	if r.status != 404 || r.errCode() != api.CodeCanaryNotFound {
		t.Fatalf("GET after DELETE = %d %s", r.status, r.body)
	}
	if r := e2.do("GET", "/v1/canaries/"+id+"/moved", nil); r.status != 404 {
		t.Fatalf("moved after DELETE = %d %s", r.status, r.body)
	}
	e3 := e2.restart()
	if r := e3.do("GET", "/v1/canaries/"+id, nil); r.status != 404 {
		t.Fatalf("a deleted record came back after a restart: %d %s", r.status, r.body)
	}
}

// Bad records and batches are refused with the field named, and change nothing.
func TestCanaryRecord_badInput(t *testing.T) {
	e := newEnv(t, withSeed(3, "2.3.0"))
	const id = "canary-bad"
	cases := map[string]struct {
		mut   func(*api.Canary)
		field string
	}{
		"unknown version": {func(c *api.Canary) { c.Version = "9.9.9" }, "version"},
		"steps down":      {func(c *api.Canary) { c.Steps = []int64{50, 10} }, "steps"},
		"bake":            {func(c *api.Canary) { c.BakeTime = "soon" }, "bake_time"},
		"no scope":        {func(c *api.Canary) { c.Scope = api.CanaryScope{} }, "scope"},
		"bad selector":    {func(c *api.Canary) { c.Scope.Selector.Version = "1.0.0" }, "version"},
		"other id":        {func(c *api.Canary) { c.ID = "canary-other" }, "id"},
	}
	for name, tc := range cases {
		c := testCanary()
		tc.mut(&c)
		r := e.bad("PUT", "/v1/canaries/"+id, c)
		if r.status/100 != 4 || r.errDetail().Field != tc.field {
			t.Errorf("%s: %d %s, want a 4xx naming %q", name, r.status, r.body, tc.field)
		}
	}
	if r := e.do("GET", "/v1/canaries/"+id, nil); r.status != 404 {
		t.Fatalf("a refused PUT created a record: %d %s", r.status, r.body)
	}
	one := api.RecordMovedRequest{Engines: []api.MovedEngine{{UserID: "user-0001", StableVersion: "2.3.0"}}}
	if r := e.do("POST", "/v1/canaries/"+id+"/moved", one); r.status != 404 || r.errCode() != api.CodeCanaryNotFound {
		t.Fatalf("moved on a missing canary = %d %s", r.status, r.body)
	}
	e.ok(e.do("PUT", "/v1/canaries/"+id, testCanary()), 201, nil)
	for name, m := range map[string]api.MovedEngine{
		"no engine":   {UserID: "user-9999", StableVersion: "2.3.0"},
		"bad version": {UserID: "user-0001", StableVersion: "0.0.1"},
	} {
		batch := api.RecordMovedRequest{Engines: []api.MovedEngine{{UserID: "user-0002", StableVersion: "2.3.0"}, m}}
		r := e.do("POST", "/v1/canaries/"+id+"/moved", batch)
		if r.status != 404 {
			t.Errorf("%s: %d %s, want 404", name, r.status, r.body)
		}
	}
	var c api.Canary
	e.ok(e.do("GET", "/v1/canaries/"+id, nil), 200, &c)
	if c.MovedCount != 0 {
		t.Fatalf("a refused batch recorded %d engines", c.MovedCount)
	}
}

// The selector returns every match across pages, in order, with the total on every page.
func TestEngineIDs_selectorPagesAndCounts(t *testing.T) {
	e := newEnv(t, withSeed(25, "2.3.0"))
	for i := 1; i <= 5; i++ {
		e.wait(e.startOp(fmt.Sprintf("/v1/engines/user-%04d/upgrade", i*5), api.UpgradeRequest{Version: "2.3.1"}))
	}
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		var p api.EngineIDs
		e.ok(e.do("GET", "/v1/engine-ids?version=2.3.0&limit=7&page_token="+tok, nil), 200, &p)
		if p.Total != 20 {
			t.Fatalf("page %d total = %d, want 20", pages, p.Total)
		}
		got = append(got, p.UserIDs...)
		if tok = p.NextPageToken; tok == "" {
			break
		}
	}
	if len(got) != 20 || got[0] != "user-0001" || got[4] != "user-0006" || got[19] != "user-0024" {
		t.Fatalf("ids = %v", got)
	}
	var p api.EngineIDs
	e.ok(e.do("GET", "/v1/engine-ids?version=2.3.1&user_id_prefix=user-001", nil), 200, &p)
	if p.Total != 2 || len(p.UserIDs) != 2 || p.UserIDs[0] != "user-0010" || p.UserIDs[1] != "user-0015" {
		t.Fatalf("2.3.1 under user-001 = %+v", p)
	}
	for _, q := range []string{"status=asleep", "version=9.9.9", "limit=10001", "page_token=!!"} {
		if r := e.bad("GET", "/v1/engine-ids?"+q, nil); r.status/100 != 4 {
			t.Errorf("?%s answered %d", q, r.status)
		}
	}
}
