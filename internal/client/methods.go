package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// One method per control-API primitive (routes in internal/api). Ids are checked before they
// become path segments; POSTs that start work take the caller's Idempotency-Key, which is
// what makes them safe to retry.

// Health reads the control plane's own /health.
func (c *Client) Health(ctx context.Context) (api.ServiceHealth, error) {
	var out api.ServiceHealth
	err := c.do(ctx, request{method: http.MethodGet, path: api.PathHealth}, &out)
	return out, err
}

// ListEngines reads one page of engines.
func (c *Client) ListEngines(ctx context.Context, opts ListEnginesOptions) (api.EngineList, error) {
	var out api.EngineList
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/engines", query: opts.query()}, &out)
	return out, err
}

// AllEngines pages through every engine matching opts (opts.PageToken is the starting page).
func (c *Client) AllEngines(ctx context.Context, opts ListEnginesOptions) ([]api.Engine, error) {
	return pageAll(api.Base+"/engines", "engines", opts.PageToken, func(token string) ([]api.Engine, string, error) {
		opts.PageToken = token
		page, err := c.ListEngines(ctx, opts)
		return page.Engines, page.NextPageToken, err
	})
}

// query is opts as GET /v1/engines and GET /v1/engine-ids take them.
func (opts ListEnginesOptions) query() url.Values {
	q := url.Values{}
	setIf(q, "status", opts.Status)
	setIf(q, "version", opts.Version)
	setIf(q, "user_id_prefix", opts.UserIDPrefix)
	setIf(q, "page_token", opts.PageToken)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	return q
}

// pageAll reads pages from token on until one has no next token. A server that hands out a token
// twice would keep us paging forever: that is an error.
func pageAll[T any](route, what, token string, next func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	for {
		items, tok, err := next(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if tok == "" {
			return all, nil
		}
		if seen[tok] {
			return nil, fmt.Errorf("GET %s: the control plane returned page token %q twice; stopping after %d %s instead of paging forever",
				route, tok, len(all), what)
		}
		seen[tok] = true
		token = tok
	}
}

// GetEngine reads one engine by user id.
func (c *Client) GetEngine(ctx context.Context, userID string) (api.Engine, error) {
	var out api.Engine
	if err := checkID("user_id", userID); err != nil {
		return out, err
	}
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "")}, &out)
	return out, err
}

// ClaimOwner claims the engine for the manager req names. A repeat with the same token has the
// effect of one, so it is retried; another token's ownership is 409 ENGINE_OWNED unless
// req.TakeOver (OwnedBy reads the owner from the error).
func (c *Client) ClaimOwner(ctx context.Context, userID string, req api.ClaimOwnerRequest) (api.EngineOwner, error) {
	var out api.EngineOwner
	if err := checkID("user_id", userID); err != nil {
		return out, err
	}
	if req.Token == "" {
		return out, errors.New("owner claim has no token: set the token of the resource that claims the engine")
	}
	err := c.do(ctx, request{method: http.MethodPut, path: enginePath(userID, "owner"), body: req, idempotent: true}, &out)
	return out, err
}

// ReleaseOwner gives the engine up, by the owner's token. An engine nobody owns is released
// already; another token's ownership is 409 ENGINE_OWNED and changes nothing.
func (c *Client) ReleaseOwner(ctx context.Context, userID, token string) error {
	if err := checkID("user_id", userID); err != nil {
		return err
	}
	if token == "" {
		return errors.New("owner release has no token: set the token of the resource that owns the engine")
	}
	return c.do(ctx, request{method: http.MethodDelete, path: enginePath(userID, "owner"), query: url.Values{"token": {token}}}, nil)
}

// Versions reads the release catalog, oldest first.
func (c *Client) Versions(ctx context.Context) ([]api.Version, error) {
	var out api.VersionList
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/versions"}, &out)
	return out.Versions, err
}

// UpgradePath reads what moving from one version to another implies.
func (c *Client) UpgradePath(ctx context.Context, from, to string) (api.UpgradePath, error) {
	var out api.UpgradePath
	if from == "" || to == "" {
		return out, fmt.Errorf("upgrade path needs both versions (from %q, to %q): pass versions from the catalog such as 2.3.1", from, to)
	}
	q := url.Values{"from": {from}, "to": {to}}
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/upgrade-path", query: q}, &out)
	return out, err
}

// CreateSnapshot starts a snapshot operation of the engine's brain.
func (c *Client) CreateSnapshot(ctx context.Context, userID, idempotencyKey string, req api.CreateSnapshotRequest) (api.Operation, error) {
	return c.startOperation(ctx, userID, "snapshots", idempotencyKey, 0, req)
}

// GetSnapshot reads a snapshot; the server re-verifies its file on every read.
func (c *Client) GetSnapshot(ctx context.Context, id string) (api.Snapshot, error) {
	var out api.Snapshot
	if err := checkID("snapshot_id", id); err != nil {
		return out, err
	}
	err := c.do(ctx, request{method: http.MethodGet, path: snapshotPath(id)}, &out)
	return out, err
}

// ListSnapshots reads an engine's snapshots, newest first.
func (c *Client) ListSnapshots(ctx context.Context, userID string, opts ListSnapshotsOptions) ([]api.Snapshot, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	q := url.Values{}
	setIf(q, "version", opts.Version)
	setIf(q, "status", opts.Status)
	var out api.SnapshotList
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "snapshots"), query: q}, &out)
	return out.Snapshots, err
}

// UpdateSnapshot changes a snapshot's description or retention. It is not retried: the
// control API gives PATCH no idempotency key.
func (c *Client) UpdateSnapshot(ctx context.Context, id string, req api.UpdateSnapshotRequest) (api.Snapshot, error) {
	var out api.Snapshot
	if err := checkID("snapshot_id", id); err != nil {
		return out, err
	}
	// The patch sets absolute values, so a repeat changes nothing more: it is retried like a
	// read, so a 429 or a dropped response never fails the in-place update of a snapshot.
	err := c.do(ctx, request{method: http.MethodPatch, path: snapshotPath(id), body: req, idempotent: true}, &out)
	return out, err
}

// DeleteSnapshot deletes a snapshot; force deletes one still inside its retention. A retried
// DELETE whose first attempt succeeded answers SNAPSHOT_NOT_FOUND, which callers treat as done.
func (c *Client) DeleteSnapshot(ctx context.Context, id string, force bool) error {
	if err := checkID("snapshot_id", id); err != nil {
		return err
	}
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, request{method: http.MethodDelete, path: snapshotPath(id), query: q}, nil)
}

// Upgrade starts moving the engine to req.Version. ifMatch > 0 sends If-Match with the engine
// generation the caller planned against; 0 sends none.
func (c *Client) Upgrade(ctx context.Context, userID, idempotencyKey string, ifMatch int64, req api.UpgradeRequest) (api.Operation, error) {
	if req.Version == "" {
		return api.Operation{}, errors.New("upgrade request has no version: set the target version")
	}
	return c.startOperation(ctx, userID, "upgrade", idempotencyKey, ifMatch, req)
}

// Restore starts swapping the engine's brain for a snapshot's and booting req.Version on it.
func (c *Client) Restore(ctx context.Context, userID, idempotencyKey string, ifMatch int64, req api.RestoreRequest) (api.Operation, error) {
	if err := checkID("snapshot_id", req.SnapshotID); err != nil {
		return api.Operation{}, err
	}
	if req.Version == "" {
		return api.Operation{}, errors.New("restore request has no version: set the version to boot on the restored brain")
	}
	return c.startOperation(ctx, userID, "restore", idempotencyKey, ifMatch, req)
}

// RunEval starts an eval suite against the engine's current version.
func (c *Client) RunEval(ctx context.Context, userID, idempotencyKey string, req api.EvalRequest) (api.Operation, error) {
	if req.Suite == "" {
		return api.Operation{}, errors.New("eval request has no suite: set the suite to run")
	}
	return c.startOperation(ctx, userID, "evals", idempotencyKey, 0, req)
}

// startOperation is the shared shape of every POST that starts work on an engine.
func (c *Client) startOperation(ctx context.Context, userID, action, idempotencyKey string, ifMatch int64, body any) (api.Operation, error) {
	var out api.Operation
	if err := checkID("user_id", userID); err != nil {
		return out, err
	}
	err := c.do(ctx, request{
		method:         http.MethodPost,
		path:           enginePath(userID, action),
		body:           body,
		idempotencyKey: idempotencyKey,
		ifMatch:        ifMatch,
	}, &out)
	return out, err
}

// ListOperations reads an engine's operations, newest first.
func (c *Client) ListOperations(ctx context.Context, userID string) ([]api.Operation, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	var out api.OperationList
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "operations")}, &out)
	return out.Operations, err
}

// OperationsByKey reads the engine's operations started with idempotencyKey, newest first
// (none when the POST never reached the control plane): how a caller whose POST was cut off
// finds the operation it started without starting it again.
func (c *Client) OperationsByKey(ctx context.Context, userID, idempotencyKey string) ([]api.Operation, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	var out api.OperationList
	q := url.Values{"idempotency_key": {idempotencyKey}}
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "operations"), query: q}, &out)
	return out.Operations, err
}

// Metrics reads an engine's behaviour over the last window (0 takes the server's default).
func (c *Client) Metrics(ctx context.Context, userID string, window time.Duration) (api.Metrics, error) {
	var out api.Metrics
	if err := checkID("user_id", userID); err != nil {
		return out, err
	}
	var q url.Values
	if window > 0 {
		q = url.Values{"window": {seconds(window)}}
	}
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "metrics"), query: q}, &out)
	return out, err
}

// WriteTurns writes test traffic into an engine's brain. It is not retried: a repeat would
// write the turns twice.
func (c *Client) WriteTurns(ctx context.Context, userID string, req api.TurnsRequest) (api.TurnsResult, error) {
	var out api.TurnsResult
	if err := checkID("user_id", userID); err != nil {
		return out, err
	}
	err := c.do(ctx, request{method: http.MethodPost, path: enginePath(userID, "turns"), body: req}, &out)
	return out, err
}

// Turns reads the turns stored in an engine's brain, oldest first.
func (c *Client) Turns(ctx context.Context, userID string) ([]api.Turn, error) {
	if err := checkID("user_id", userID); err != nil {
		return nil, err
	}
	var out api.TurnList
	err := c.do(ctx, request{method: http.MethodGet, path: enginePath(userID, "turns")}, &out)
	return out.Turns, err
}

// Faults reads the injected faults (404 unless the control plane runs with faults enabled).
func (c *Client) Faults(ctx context.Context) ([]api.Fault, error) {
	var out api.FaultList
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/faults"}, &out)
	return out.Faults, err
}

// AddFault injects a fault. It is not retried: a repeat would inject it twice.
func (c *Client) AddFault(ctx context.Context, f api.Fault) (api.Fault, error) {
	var out api.Fault
	err := c.do(ctx, request{method: http.MethodPost, path: api.Base + "/faults", body: f}, &out)
	return out, err
}

// ClearFaults removes every injected fault.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodDelete, path: api.Base + "/faults"}, nil)
}

// Stats reads the control plane's request and operation counters.
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var out api.Stats
	err := c.do(ctx, request{method: http.MethodGet, path: api.Base + "/stats"}, &out)
	return out, err
}

func enginePath(userID, sub string) string {
	p := api.Base + "/engines/" + userID
	if sub != "" {
		p += "/" + sub
	}
	return p
}

func snapshotPath(id string) string { return api.Base + "/snapshots/" + id }

func setIf(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// seconds formats a duration the way the API's wait and window parameters take it ("25s"),
// rounding up so a sub-second value never becomes 0.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + "s"
}
