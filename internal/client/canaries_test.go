package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// The canary record round trip through the client: more moved engines than one request carries
// (batched on write, paged on read), and the selector paged through in full.
func TestControlPlane_canaryRecordBatchesAndPages(t *testing.T) {
	const n = api.MaxMovedBatch + 5
	srv, err := controlplane.New(controlplane.Options{DataDir: t.TempDir(), APIKey: cpKey, SeedEngines: n, SeedVersion: "2.3.0",
		SeedBrainRows: 1, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	c, err := client.New(client.Config{Endpoint: ts.URL, APIKey: cpKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids, err := c.AllEngineIDs(ctx, client.ListEnginesOptions{Version: "2.3.0", Limit: 400})
	if err != nil || len(ids) != n || ids[0] != "user-0001" || ids[n-1] != fmt.Sprintf("user-%04d", n) {
		t.Fatalf("AllEngineIDs: %d ids, %v", len(ids), err)
	}
	page, err := c.EngineIDs(ctx, client.ListEnginesOptions{UserIDPrefix: "user-00", Limit: 10})
	if err != nil || page.Total != 99 || len(page.UserIDs) != 10 || page.NextPageToken == "" {
		t.Fatalf("EngineIDs page: %+v, %v", page, err)
	}

	rec := api.Canary{ID: "canary-big", Version: "2.4.0", Seed: "s", Steps: []int64{10, 100}, BakeTime: "1m", MaxParallel: 50,
		Scope: api.CanaryScope{Selector: &api.Selector{Version: "2.3.0"}}}
	if _, err := c.PutCanary(ctx, rec); err != nil {
		t.Fatal(err)
	}
	moved := make([]api.MovedEngine, n)
	for i, u := range ids {
		moved[i] = api.MovedEngine{UserID: u, StableVersion: "2.3.0", SnapshotID: "snap-" + u}
	}
	if err := c.RecordMoved(ctx, rec.ID, moved); err != nil {
		t.Fatal(err)
	}
	got, err := c.MovedEngines(ctx, rec.ID)
	if err != nil || len(got) != n || got[n-1].SnapshotID != "snap-"+ids[n-1] || got[0].StableVersion != "2.3.0" {
		t.Fatalf("MovedEngines: %d, %v", len(got), err)
	}
	back, err := c.GetCanary(ctx, rec.ID)
	if err != nil || back.MovedCount != n || back.MaxParallel != 50 {
		t.Fatalf("GetCanary: %+v, %v", back, err)
	}
	if err := c.DeleteCanary(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCanary(ctx, rec.ID); !client.IsNotFound(err) {
		t.Fatalf("GetCanary after delete: %v, want not found", err)
	}
	if _, err := c.GetCanary(ctx, "bad/id"); err == nil {
		t.Fatal("a path character in a canary id was sent")
	}
}
