package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// StartRehearsal starts rehearsing an upgrade of the engine to req.Version on a staging engine
// (op.Result.RehearsalID names the rehearsal).
func (c *Client) StartRehearsal(ctx context.Context, userID, idempotencyKey string, req api.RehearsalRequest) (api.Operation, error) {
	if req.Version == "" {
		return api.Operation{}, errors.New("rehearsal request has no version: set the version to rehearse")
	}
	return c.startOperation(ctx, userID, "rehearsals", idempotencyKey, 0, req)
}

// GetRehearsal reads a rehearsal: its status, verdict, figures and staging engine.
func (c *Client) GetRehearsal(ctx context.Context, id string) (api.Rehearsal, error) {
	var out api.Rehearsal
	if err := checkID("rehearsal_id", id); err != nil {
		return out, err
	}
	err := c.do(ctx, request{method: http.MethodGet, path: rehearsalPath(id)}, &out)
	return out, err
}

// ListRehearsals reads an engine's rehearsals, newest first.
func (c *Client) ListRehearsals(ctx context.Context, userID string) ([]api.Rehearsal, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	var out api.RehearsalList
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "rehearsals")}, &out)
	return out.Rehearsals, err
}

// DeleteRehearsal stops the rehearsal's staging engine and deletes its brain; the record stays.
// Deleting one already torn down succeeds again.
func (c *Client) DeleteRehearsal(ctx context.Context, id string) error {
	if err := checkID("rehearsal_id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: rehearsalPath(id)}, nil)
}

func rehearsalPath(id string) string { return api.Base + "/rehearsals/" + id }
