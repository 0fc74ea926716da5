package rollout

import (
	"context"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// StartRehearsal starts a rehearsal of userID's upgrade under key, waiting out another operation
// running on the engine first (the same key, so never twice).
func (d *Driver) StartRehearsal(ctx context.Context, userID, key string, req api.RehearsalRequest) (api.Operation, error) {
	return d.start(ctx, userID, func() (api.Operation, error) { return d.Client.StartRehearsal(ctx, userID, key, req) })
}
