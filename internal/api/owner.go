package api

import "time"

// EngineOwner is the manager that owns an engine: one Terraform resource instance (an
// engine_release or an engine_canary) in one workspace. Ownership coordinates well-behaved
// managers; the admin key, not the token, is what guards the API.
type EngineOwner struct {
	// Token identifies the owning resource instance; claims and releases are decided on it.
	Token string `json:"token"`
	// Manager names the owner for humans: a workspace, a team, a pipeline.
	Manager string `json:"manager"`
	// ResourceType is the owning resource's type, such as engine_release.
	ResourceType string `json:"resource_type"`
	// Resource is the owning resource's id (for a canary, its name).
	Resource string `json:"resource,omitempty"`
	// Since is when this token first claimed the engine.
	Since time.Time `json:"since"`
}

// ClaimOwnerRequest claims an engine for a manager. A claim by the owner's own token refreshes the
// labels and keeps Since; a claim while another token owns the engine is 409 ENGINE_OWNED unless
// TakeOver is set.
type ClaimOwnerRequest struct {
	Token        string `json:"token"`
	Manager      string `json:"manager"`
	ResourceType string `json:"resource_type"`
	Resource     string `json:"resource,omitempty"`
	TakeOver     bool   `json:"take_over,omitempty"`
}
