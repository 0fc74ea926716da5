// Package client is the typed Go client of the Engine control API (see internal/api). It owns
// auth, retries with backoff and Retry-After, idempotency keys, long-poll waits and typed errors.
// It imports nothing from the Terraform plugin framework.
package client

import (
	"context"
	"time"
)

// Logger receives request/response debug lines. The provider adapts tflog to it; nil discards.
// The key header is redacted before any line reaches it.
type Logger interface {
	Debug(ctx context.Context, msg string, fields map[string]any)
}

// Config configures a Client.
type Config struct {
	Endpoint           string // base URL, e.g. http://127.0.0.1:8470
	APIKey             string
	CACertPEM          []byte // extra trusted CA certificates (PEM); nil uses the system pool
	InsecureSkipVerify bool
	RequestTimeout     time.Duration // per HTTP attempt; a long-poll adds its wait on top
	MaxRetries         int           // retries after the first attempt
	UserAgent          string
	Logger             Logger
	// MaxConnsPerHost sizes connection reuse for concurrency (default 64).
	MaxConnsPerHost int
}

// ListEnginesOptions filters GET /v1/engines. Empty fields do not filter.
type ListEnginesOptions struct {
	Status       string
	Version      string
	UserIDPrefix string
	Limit        int
	PageToken    string
}

// ListSnapshotsOptions filters GET /v1/engines/{user_id}/snapshots.
type ListSnapshotsOptions struct {
	Version string
	Status  string
}
