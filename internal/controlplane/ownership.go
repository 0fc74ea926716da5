package controlplane

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Ownership: which manager (one Terraform resource instance) owns an engine. The owner is a field
// of the engine, persisted with it, and shown by GET /v1/engines and GET /v1/engines/{user_id};
// claiming and releasing it never changes the engine's generation, so a plan's If-Match is not
// disturbed by a claim. An engine's owner is replaced, never edited in place, so a view taken
// under the lock stays valid after it.

var ownerTokenRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// ownerConflict is the 409 a claim or release gets while another token owns the engine.
func ownerConflict(userID string, o *api.EngineOwner, verb string) *apiError {
	return newErr(http.StatusConflict, api.CodeEngineOwned, fmt.Sprintf(
		"user %s's engine is owned by manager %q (%s %s, since %s); %s refused. Release it from that manager, or claim it with take_over = true",
		userID, o.Manager, o.ResourceType, o.Resource, o.Since.UTC().Format(time.RFC3339), verb))
}

func checkClaim(req api.ClaimOwnerRequest) *apiError {
	switch {
	case !ownerTokenRE.MatchString(req.Token):
		return badField("token", "token must be 1 to 128 printable ASCII characters without spaces")
	case req.Manager == "" || len(req.Manager) > 256:
		return badField("manager", "manager must be 1 to 256 characters: the owner's name for humans, such as a workspace")
	case req.ResourceType == "" || len(req.ResourceType) > 64:
		return badField("resource_type", "resource_type must be 1 to 64 characters, such as engine_release")
	case len(req.Resource) > 256:
		return badField("resource", "resource must be at most 256 characters")
	}
	return nil
}

func (s *Server) claimOwner(w http.ResponseWriter, r *http.Request, p params) {
	var req api.ClaimOwnerRequest
	if apiErr := decodeBody(w, r, &req, false); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if apiErr := checkClaim(req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	e := s.lockEngine(w, p["user_id"])
	if e == nil {
		return
	}
	defer s.mu.Unlock()
	cur := e.Owner
	if cur != nil && cur.Token != req.Token && !req.TakeOver {
		writeError(w, ownerConflict(e.UserID, cur, "the claim is"))
		return
	}
	next := &api.EngineOwner{Token: req.Token, Manager: req.Manager, ResourceType: req.ResourceType, Resource: req.Resource,
		Since: time.Now().UTC()}
	if cur != nil && cur.Token == req.Token {
		next.Since = cur.Since
	}
	if apiErr := s.setOwnerLocked(e, next); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if cur != nil && cur.Token != req.Token {
		s.log.Info("engine taken over", "user_id", e.UserID, "from_manager", cur.Manager, "to_manager", req.Manager)
	}
	writeJSON(w, http.StatusOK, *next)
}

func (s *Server) releaseOwner(w http.ResponseWriter, r *http.Request, p params) {
	token := r.URL.Query().Get("token")
	if !ownerTokenRE.MatchString(token) {
		writeError(w, badField("token", "token must be 1 to 128 printable ASCII characters without spaces: the owner's token"))
		return
	}
	e := s.lockEngine(w, p["user_id"])
	if e == nil {
		return
	}
	defer s.mu.Unlock()
	cur := e.Owner
	switch {
	case cur == nil:
	case cur.Token != token:
		writeError(w, ownerConflict(e.UserID, cur, "the release is"))
		return
	default:
		if apiErr := s.setOwnerLocked(e, nil); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// setOwnerLocked replaces e's owner, written through to the registry first; on a failed write
// the owner stays as it was.
func (s *Server) setOwnerLocked(e *engineState, o *api.EngineOwner) *apiError {
	cur := e.Owner
	e.Owner = o
	if err := s.reg.putEngines(e.Engine); err != nil {
		e.Owner = cur
		return newErr(http.StatusInternalServerError, api.CodeInternal, err.Error())
	}
	return nil
}
