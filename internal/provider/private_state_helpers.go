package provider

// Private state: what an interrupted apply leaves for the next plan and apply to find (the
// pending operation, by id or by idempotency key; JSON records such as an unjudged bake).

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// pendingOperation is what private state keeps of an operation an interrupted apply left running.
type pendingOperation struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	// Key is the Idempotency-Key of a POST whose answer never came (ID is then empty): the
	// operation, if the POST arrived, is found by it.
	Key string `json:"key,omitempty"`
}

func setPendingOperation(ctx context.Context, p interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}, key string, op api.Operation) diag.Diagnostics {
	return setPrivateJSON(ctx, p, key, pendingOperation{ID: op.ID, UserID: op.UserID, Kind: op.Kind})
}

func getPendingOperation(ctx context.Context, p interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, key string) (api.Operation, bool, diag.Diagnostics) {
	b, diags := p.GetKey(ctx, key)
	if diags.HasError() || len(b) == 0 || string(b) == "null" {
		return api.Operation{}, false, diags
	}
	var po pendingOperation
	if err := json.Unmarshal(b, &po); err != nil || po.ID == "" {
		return api.Operation{}, false, diags
	}
	return api.Operation{ID: po.ID, UserID: po.UserID, Kind: po.Kind, Status: api.OpRunning}, true, diags
}

// setPrivateJSON writes v as JSON under key in private state.
func setPrivateJSON(ctx context.Context, priv interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}, key string, v any) diag.Diagnostics {
	b, err := json.Marshal(v)
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Private State Not Written", err.Error())
		return diags
	}
	return priv.SetKey(ctx, key, b)
}

// getPrivateJSON reads key's JSON from private state into v; false when absent or unreadable.
func getPrivateJSON(ctx context.Context, priv interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, key string, v any) bool {
	b, diags := priv.GetKey(ctx, key)
	if diags.HasError() || len(b) == 0 || string(b) == "null" {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// setPendingKey records the idempotency key of a POST whose answer never came.
func setPendingKey(ctx context.Context, priv privateState, userID, key string) diag.Diagnostics {
	b, err := json.Marshal(pendingOperation{UserID: userID, Kind: api.OpUpgrade, Key: key})
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Private State Not Written", err.Error())
		return diags
	}
	return priv.SetKey(ctx, privateReleaseOp, b)
}

// privateCanaryHeld is the private state key of the users the last refresh or plan held above
// the canary's version, with the versions they run (a JSON object).
const privateCanaryHeld = "canary_held"

// getHeld reads the held users of scope from private state: none when absent. A user no longer
// in scope (taken out of user_ids) is no longer held.
func getHeld(ctx context.Context, p privateState, scope []string) (map[string]string, diag.Diagnostics) {
	if p == nil {
		return nil, nil
	}
	b, diags := p.GetKey(ctx, privateCanaryHeld)
	var recorded map[string]string
	if len(b) > 0 {
		_ = json.Unmarshal(b, &recorded) // unreadable: hold none, so every drift is checked afresh
	}
	var held map[string]string
	for _, u := range scope {
		if v, ok := recorded[u]; ok {
			if held == nil {
				held = map[string]string{}
			}
			held[u] = v
		}
	}
	return held, diags
}

// setHeld records held in private state, or removes the key when none is held.
func setHeld(ctx context.Context, p privateState, held map[string]string) diag.Diagnostics {
	if len(held) == 0 {
		if b, diags := p.GetKey(ctx, privateCanaryHeld); len(b) == 0 {
			return diags // nothing recorded: nothing to remove
		}
		return p.SetKey(ctx, privateCanaryHeld, nil)
	}
	return setPrivateJSON(ctx, p, privateCanaryHeld, held)
}
