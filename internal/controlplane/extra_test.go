package controlplane

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// TestTLSServer: the provider's harness also runs the handler under httptest.NewTLSServer.
func TestTLSServer(t *testing.T) {
	srv, err := New(Options{DataDir: t.TempDir(), APIKey: testKey, SeedEngines: 1, SeedBrainRows: 1, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	c := newTestClient(t)
	ct, ok := c.Transport.(*contractTransport)
	if !ok {
		t.Fatalf("test client transport is %T, want *contractTransport", c.Transport)
	}
	ct.base = ts.Client().Transport
	e := &env{t: t, srv: srv, ts: ts, c: c}
	en := e.engine("user-0001")
	if !strings.HasPrefix(en.URL, "https://") {
		t.Fatalf("url = %s", en.URL)
	}
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "2.3.1"}))
	if op.Status != api.OpSucceeded {
		t.Fatalf("upgrade over TLS: %+v", op.Error)
	}
}

func TestDrainTimeout_ChangesNothing(t *testing.T) {
	e := newEnv(t)
	const u = "user-0001"
	release, done := e.holdTurnInFlight(u, "slow turn")
	// 1s nominal drain timeout is 1ms here: the turn is still in flight when it expires.
	op := e.wait(e.startOp("/v1/engines/"+u+"/upgrade", api.UpgradeRequest{Version: "2.3.1", DrainTimeoutSeconds: 1}))
	release()
	if r := <-done; r.status != 200 {
		t.Fatalf("turn: %d %s", r.status, r.body)
	}
	if op.Status != api.OpFailed || op.Error.Code != api.CodeEngineUnavailable || !strings.Contains(op.Error.Message, "drain_timeout_seconds") {
		t.Fatalf("op = %+v", op)
	}
	en := e.engine(u)
	if en.Status != api.StatusRunning || en.EngineVersion != "2.3.0" || en.CurrentOperationID != "" {
		t.Fatalf("engine = %+v", en)
	}
	e.turns(u, 1, "still serving")
}

func TestCatalogFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(v)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	custom := []api.Version{
		{Version: "1.0.0", SchemaVersion: 1, Profile: api.Profile{BootSeconds: 1, ErrorRate: 0.01, P99LatencyMS: 100, CacheHitRatio: 0.5, EvalScore: 0.8}},
		{Version: "1.1.0", SchemaVersion: 2, Profile: api.Profile{BootSeconds: 1, ErrorRate: 0.01, P99LatencyMS: 100, CacheHitRatio: 0.5, EvalScore: 0.8},
			Migrations: []api.Migration{{ID: "0002_notes", Description: "notes", FromSchema: 1, ToSchema: 2, ForwardOnly: true, SQL: "CREATE TABLE notes (id INTEGER PRIMARY KEY);"}}},
	}
	vs, err := LoadCatalogFile(write("ok.json", api.VersionList{Versions: custom}))
	if err != nil || len(vs) != 2 {
		t.Fatalf("load: %v", err)
	}
	e := newEnv(t, withCatalog(vs), withSeed(1, "1.0.0"))
	sn := e.snapshot("user-0001")
	op := e.wait(e.startOp("/v1/engines/user-0001/upgrade", api.UpgradeRequest{Version: "1.1.0", SnapshotID: sn.ID}))
	if op.Status != api.OpSucceeded || e.engine("user-0001").SchemaVersion != 2 {
		t.Fatalf("custom catalog upgrade: %+v", op.Error)
	}

	broken := append([]api.Version(nil), custom...)
	broken[1].Migrations = []api.Migration{{ID: "x", FromSchema: 3, ToSchema: 4, SQL: "SELECT 1;"}}
	for name, content := range map[string]any{
		"gap.json":     api.VersionList{Versions: broken},
		"unknown.json": map[string]any{"versions": []any{}, "extra": 1},
		"empty.json":   api.VersionList{},
	} {
		if _, err := LoadCatalogFile(write(name, content)); err == nil {
			t.Errorf("%s should be refused", name)
		}
	}
	if _, err := LoadCatalogFile(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("a missing file should be refused")
	}
	if _, err := New(Options{DataDir: t.TempDir(), APIKey: "k", SeedVersion: "9.9.9"}); err == nil || !strings.Contains(err.Error(), "9.9.9") {
		t.Errorf("unknown seed version: %v", err)
	}
	if _, err := New(Options{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "APIKey") {
		t.Errorf("missing key: %v", err)
	}
}

func TestParseWaitCapsAtMaxWait(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "25s": 25 * time.Second, "7": 7 * time.Second, "10m": api.MaxWait} {
		got, e := parseWait(in)
		if e != nil || got != want {
			t.Errorf("parseWait(%q) = %v, %v; want %v", in, got, e, want)
		}
	}
}
