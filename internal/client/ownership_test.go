package client_test

import (
	"context"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// A claim is a PUT whose repeat has the effect of one: a dropped answer is retried into the same
// owner (since kept), never into a conflict with itself; another token gets ENGINE_OWNED, and only
// the owner's token releases.
func TestControlPlane_ownership(t *testing.T) {
	c := startControlPlane(t, true, 0.001)
	ctx := context.Background()
	const user = "user-0001"
	drop := api.Fault{Kind: api.FaultDropResponse, Method: "PUT", PathPrefix: "/v1/engines/" + user + "/owner", Count: 1}
	if _, err := c.AddFault(ctx, drop); err != nil {
		t.Fatal(err)
	}
	a := api.ClaimOwnerRequest{Token: "tok-a", Manager: "team-a", ResourceType: "engine_release", Resource: user}
	got, err := c.ClaimOwner(ctx, user, a)
	if err != nil || got.Token != "tok-a" || got.Manager != "team-a" {
		t.Fatalf("claim through a dropped answer = %+v, %v", got, err)
	}
	_, err = c.ClaimOwner(ctx, user, api.ClaimOwnerRequest{Token: "tok-c", Manager: "team-c", ResourceType: "engine_release"})
	if !client.HasCode(err, api.CodeEngineOwned) {
		t.Fatalf("a second manager's claim: %v, want ENGINE_OWNED", err)
	}
	if err := c.ReleaseOwner(ctx, user, "tok-c"); !client.HasCode(err, api.CodeEngineOwned) {
		t.Fatalf("a release by another token: %v, want ENGINE_OWNED", err)
	}
	if e, err := c.GetEngine(ctx, user); err != nil || e.Owner == nil || e.Owner.Token != "tok-a" || !e.Owner.Since.Equal(got.Since) {
		t.Fatalf("owner after the refusals = %+v, %v", e.Owner, err)
	}
	if err := c.ReleaseOwner(ctx, user, "tok-a"); err != nil {
		t.Fatal(err)
	}
	if e, err := c.GetEngine(ctx, user); err != nil || e.Owner != nil {
		t.Fatalf("owner after the release = %+v, %v", e.Owner, err)
	}
	if _, err := c.ClaimOwner(ctx, user, api.ClaimOwnerRequest{Manager: "m", ResourceType: "engine_release"}); err == nil {
		t.Fatal("a claim without a token was sent")
	}
}
