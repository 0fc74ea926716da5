package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// The selector and the canary records (GET /v1/engine-ids, /v1/canaries/...).

// EngineIDs reads one page of the user ids opts selects (opts.Limit up to api.MaxEngineIDsPage,
// default 1000) and the count of every match.
func (c *Client) EngineIDs(ctx context.Context, opts ListEnginesOptions) (api.EngineIDs, error) {
	var out api.EngineIDs
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/engine-ids", query: opts.query()}, &out)
	return out, err
}

// AllEngineIDs pages through every user id opts selects, in user id order (10,000 a page unless
// opts.Limit says otherwise).
func (c *Client) AllEngineIDs(ctx context.Context, opts ListEnginesOptions) ([]string, error) {
	if opts.Limit == 0 {
		opts.Limit = api.MaxEngineIDsPage
	}
	return pageAll(api.Base+"/engine-ids", "ids", opts.PageToken, func(token string) ([]string, string, error) {
		opts.PageToken = token
		page, err := c.EngineIDs(ctx, opts)
		return page.UserIDs, page.NextPageToken, err
	})
}

func canaryPath(id string) string { return api.Base + "/canaries/" + id }

// PutCanary creates or replaces a canary's record; its moved engines stay. A PUT of absolute
// values, so it is retried.
func (c *Client) PutCanary(ctx context.Context, rec api.Canary) (api.Canary, error) {
	if err := checkID("canary_id", rec.ID); err != nil {
		return api.Canary{}, err
	}
	var out api.Canary
	err := c.do(ctx, request{method: http.MethodPut, path: canaryPath(rec.ID), body: rec, idempotent: true}, &out)
	return out, err
}

// GetCanary reads a canary's record (IsNotFound when there is none).
func (c *Client) GetCanary(ctx context.Context, id string) (api.Canary, error) {
	if err := checkID("canary_id", id); err != nil {
		return api.Canary{}, err
	}
	var out api.Canary
	err := c.do(ctx, request{method: http.MethodGet, path: canaryPath(id)}, &out)
	return out, err
}

// DeleteCanary drops a canary's record and its moved engines; deleting none is not an error.
func (c *Client) DeleteCanary(ctx context.Context, id string) error {
	if err := checkID("canary_id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: canaryPath(id)}, nil)
}

// RecordMoved records moved engines on a canary in batches of api.MaxMovedBatch. Recording is
// idempotent, so it is retried.
func (c *Client) RecordMoved(ctx context.Context, id string, engines []api.MovedEngine) error {
	if err := checkID("canary_id", id); err != nil {
		return err
	}
	for len(engines) > 0 {
		n := min(len(engines), api.MaxMovedBatch)
		var out api.MovedEngines
		body := api.RecordMovedRequest{Engines: engines[:n]}
		req := request{method: http.MethodPost, path: canaryPath(id) + "/moved", body: body, idempotent: true}
		if err := c.do(ctx, req, &out); err != nil {
			return err
		}
		engines = engines[n:]
	}
	return nil
}

// MovedEngines reads every moved engine of a canary, in user id order.
func (c *Client) MovedEngines(ctx context.Context, id string) ([]api.MovedEngine, error) {
	if err := checkID("canary_id", id); err != nil {
		return nil, err
	}
	return pageAll(canaryPath(id)+"/moved", "engines", "", func(token string) ([]api.MovedEngine, string, error) {
		q := url.Values{"limit": {strconv.Itoa(api.MaxMovedBatch)}}
		setIf(q, "page_token", token)
		var page api.MovedEngines
		err := c.do(ctx, request{method: http.MethodGet, path: canaryPath(id) + "/moved", query: q}, &page)
		return page.Engines, page.NextPageToken, err
	})
}
