package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

func TestOwnership_claimConflictTakeOverRelease(t *testing.T) {
	e := newEnv(t)
	const u, path = "user-0001", "/v1/engines/user-0001/owner"
	before := e.engine(u)
	if before.Owner != nil {
		t.Fatalf("a fresh engine has an owner: %+v", before.Owner)
	}
	a := api.ClaimOwnerRequest{Token: "tok-a", Manager: "team-a", ResourceType: "engine_release", Resource: u}
	var got api.EngineOwner
	e.ok(e.do("PUT", path, a), 200, &got)
	if got.Token != "tok-a" || got.Manager != "team-a" || got.Since.IsZero() {
		t.Fatalf("claim = %+v", got)
	}
	since := got.Since
	// The same token again is the same claim: since stays, the labels follow.
	a.Manager = "team-a-renamed"
	e.ok(e.do("PUT", path, a), 200, &got)
	if !got.Since.Equal(since) || got.Manager != "team-a-renamed" {
		t.Fatalf("re-claim = %+v, want since %s kept and the new label", got, since)
	}
	// Another token is refused, naming the owner, and changes nothing.
	c := api.ClaimOwnerRequest{Token: "tok-c", Manager: "team-c", ResourceType: "engine_release", Resource: u}
	d := e.wantErr(e.do("PUT", path, c), http.StatusConflict, api.CodeEngineOwned)
	if !strings.Contains(d.Message, `"team-a-renamed"`) || !strings.Contains(d.Message, "engine_release") ||
		!strings.Contains(d.Message, "take_over") {
		t.Fatalf("conflict message does not name the owner and the way out: %q", d.Message)
	}
	if o := e.engine(u).Owner; o == nil || o.Token != "tok-a" {
		t.Fatalf("a refused claim changed the owner: %+v", o)
	}
	// A release by another token is refused too.
	e.wantErr(e.do("DELETE", path+"?token=tok-c", nil), http.StatusConflict, api.CodeEngineOwned)
	// take_over moves it, and the list shows the new owner.
	c.TakeOver = true
	e.ok(e.do("PUT", path, c), 200, &got)
	if got.Token != "tok-c" || got.Since.Before(since) {
		t.Fatalf("take over = %+v", got)
	}
	var l api.EngineList
	e.ok(e.do("GET", "/v1/engines", nil), 200, &l)
	for _, en := range l.Engines {
		if owned := en.Owner != nil; owned != (en.UserID == u) || owned && en.Owner.Manager != "team-c" {
			t.Fatalf("list shows %s owned by %+v", en.UserID, en.Owner)
		}
	}
	// Ownership is not a state change of the engine: If-Match planned before it still holds.
	if after := e.engine(u); after.Generation != before.Generation {
		t.Fatalf("ownership changed the generation: %d -> %d", before.Generation, after.Generation)
	}
	// The owner survives a restart.
	e = e.restart()
	if o := e.engine(u).Owner; o == nil || o.Token != "tok-c" || o.Manager != "team-c" {
		t.Fatalf("owner after restart = %+v", o)
	}
	e.ok(e.do("DELETE", path+"?token=tok-c", nil), 204, nil)
	if o := e.engine(u).Owner; o != nil {
		t.Fatalf("owner after release = %+v", o)
	}
	e.ok(e.do("DELETE", path+"?token=tok-c", nil), 204, nil) // released already
}

func TestOwnership_badClaims(t *testing.T) {
	e := newEnv(t)
	path := "/v1/engines/user-0001/owner"
	for _, c := range []struct {
		body  api.ClaimOwnerRequest
		field string
	}{
		{api.ClaimOwnerRequest{Token: "has space", Manager: "m", ResourceType: "engine_release"}, "token"},
		{api.ClaimOwnerRequest{Token: "t", ResourceType: "engine_release"}, "manager"},
		{api.ClaimOwnerRequest{Token: "t", Manager: "m"}, "resource_type"},
	} {
		if d := e.wantErr(e.bad("PUT", path, c.body), http.StatusBadRequest, api.CodeInvalidRequest); d.Field != c.field {
			t.Errorf("claim %+v: field %q, want %q", c.body, d.Field, c.field)
		}
	}
	e.wantErr(e.do("PUT", "/v1/engines/nobody/owner", api.ClaimOwnerRequest{Token: "t", Manager: "m", ResourceType: "x"}),
		http.StatusNotFound, api.CodeEngineNotFound)
	if o := e.engine("user-0001").Owner; o != nil {
		t.Fatalf("bad claims set an owner: %+v", o)
	}
}
