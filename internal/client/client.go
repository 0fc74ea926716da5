// Package client is the typed Go client of the Engine control API (see internal/api). It owns
// auth, retries with backoff and Retry-After, idempotency keys, long-poll waits and typed errors.
// It imports nothing from the Terraform plugin framework.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Logger receives request/response debug lines. The provider adapts tflog to it; nil discards.
// The key header is redacted before any line reaches it.
type Logger interface {
	Debug(ctx context.Context, msg string, fields map[string]any)
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	Endpoint           string // base URL, e.g. http://127.0.0.1:8470
	APIKey             string
	CACertPEM          []byte // extra trusted CA certificates (PEM); nil uses the system pool
	InsecureSkipVerify bool
	RequestTimeout     time.Duration // per HTTP attempt; a long-poll adds its wait on top (default 30s)
	// MaxRetries is the number of retries after the first attempt, taken literally: 0 means
	// none, so the provider can pass max_retries straight through. Callers wanting the usual
	// behaviour pass DefaultMaxRetries.
	MaxRetries int
	UserAgent  string
	Logger     Logger
	// MaxConnsPerHost sizes connection reuse for concurrency (default 64).
	MaxConnsPerHost int

	// RetryWaitMin and RetryWaitMax bound the exponential backoff between retries
	// (defaults 100ms and 5s). Tests shorten them.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// MaxRetryAfter caps how long a server's Retry-After can hold a request (default 60s), so a
	// misbehaving server cannot park an apply for hours.
	MaxRetryAfter time.Duration
}

// Defaults applied by New to zero Config fields.
const (
	DefaultRequestTimeout  = 30 * time.Second
	DefaultMaxRetries      = 4 // what the provider passes when max_retries is unset
	DefaultMaxConnsPerHost = 64
	DefaultRetryWaitMin    = 100 * time.Millisecond
	DefaultRetryWaitMax    = 5 * time.Second
	DefaultMaxRetryAfter   = 60 * time.Second
	DefaultUserAgent       = "terraform-provider-engine"
)

// maxResponseBytes bounds how much of a response body is read: a fleet listing is a few MB at
// most, and an endpoint pointed at the wrong server must not exhaust memory.
const maxResponseBytes = 64 << 20

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

// Client talks to one control plane. It is safe for concurrent use; share one per provider.
type Client struct {
	cfg       Config
	base      *url.URL
	transport *http.Transport
	http      *retryablehttp.Client
}

// New validates cfg and builds a Client. It does not contact the control plane.
func New(cfg Config) (*Client, error) {
	base, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.APIKey == "" {
		return nil, errors.New("the API key is empty: set the provider's api_key attribute or the ENGINE_API_KEY environment variable")
	}
	if strings.TrimSpace(cfg.APIKey) != cfg.APIKey || strings.ContainsFunc(cfg.APIKey, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		// Typically a trailing newline from file(); the key itself is never echoed.
		return nil, errors.New("the API key has surrounding whitespace or a control character (often a trailing newline read from a file): trim api_key / ENGINE_API_KEY, for example with trimspace(file(...))")
	}
	if cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("max retries %d is negative: use 0 (no retries) or more", cfg.MaxRetries)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("request timeout %s is negative: use a positive duration such as 30s", cfg.RequestTimeout)
	}
	applyDefaults(&cfg)

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, and the provider warns when it is set
	if len(cfg.CACertPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("the CA certificate holds no PEM certificate: ca_cert_pem / ca_cert_file must contain at least one \"-----BEGIN CERTIFICATE-----\" block")
		}
		tlsCfg.RootCAs = pool
	}

	// Our own transport: the default keeps two idle connections per host, which makes a
	// parallel plan of hundreds of engines reconnect on nearly every request.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost:   cfg.MaxConnsPerHost,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsCfg,
	}

	c := &Client{cfg: cfg, base: base, transport: tr}
	c.http = &retryablehttp.Client{
		HTTPClient: &http.Client{
			// attemptTransport hides CloseIdleConnections from retryablehttp, which otherwise
			// empties the shared pool every time one request gives up.
			Transport: &attemptTransport{next: tr, log: cfg.Logger, defaultTimeout: cfg.RequestTimeout},
			// The control API never redirects; following one would forward the key header
			// to whatever host the redirect names.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.MaxRetries,
		CheckRetry:   c.checkRetry,
		Backoff:      c.backoff,
		// Give the last response back so it becomes a typed *Error rather than "giving up".
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c, nil
}

func applyDefaults(cfg *Config) {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = DefaultRetryWaitMin
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = DefaultRetryWaitMax
	}
	if cfg.RetryWaitMax < cfg.RetryWaitMin {
		cfg.RetryWaitMax = cfg.RetryWaitMin
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
}

func parseEndpoint(raw string) (*url.URL, error) {
	const hint = "set the provider's endpoint attribute or ENGINE_ENDPOINT to an absolute URL such as http://127.0.0.1:8470"
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("the endpoint is empty: " + hint)
	}
	shown := RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's own error quotes the whole URL, credentials included.
		return nil, fmt.Errorf("the endpoint %q is not a URL: %s", shown, hint)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the endpoint %q must use http:// or https://: %s", shown, hint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the endpoint %q has no host: %s", shown, hint)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the endpoint %q must not carry credentials, a query or a fragment: %s", shown, hint)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// RedactURL hides the user information of a URL written as scheme://user:password@host (or
// without the scheme), so an endpoint echoed in an error never shows a password. It works on the
// raw text, so a URL that does not parse is redacted too: everything between "://" (or the
// start) and the last "@" counts as user information.
func RedactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	return scheme + redactedValue + rest[at:]
}

// Endpoint returns the normalized base URL the client talks to.
func (c *Client) Endpoint() string { return c.base.String() }

// Close releases idle connections. The client stays usable.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// NewIdempotencyKey returns a random UUID (version 4) for the Idempotency-Key header. Callers
// record it before sending, so a retry after a crash reuses it and never starts work twice.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24: it crashes the program instead
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var idRE = regexp.MustCompile(api.IDPattern)

// checkID rejects an id before it reaches a URL: ids are path segments, so a bad one would
// address a different resource instead of failing.
func checkID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%s is empty: pass the %s of an existing object", field, field)
	}
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s %q is not a valid id: ids match %s", field, id, api.IDPattern)
	}
	return nil
}

// request is one logical API call; retries happen below it.
type request struct {
	method         string
	path           string // unescaped route path, ids already checked
	query          url.Values
	body           any
	idempotencyKey string
	ifMatch        int64
	wait           time.Duration // a long-poll's server-side wait, added to the attempt timeout
	// idempotent marks a write whose repeat has the effect of one (a PATCH of absolute values).
	idempotent bool
}

// retryable reports whether the request may be sent again after a failure: reads and
// deletes are idempotent, a POST is only when its Idempotency-Key makes the server
// answer a repeat with the first result, and a write marked idempotent is by its nature.
func (r request) retryable() bool {
	switch r.method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return true
	case http.MethodPost:
		return r.idempotencyKey != "" || r.idempotent
	}
	return r.idempotent
}

// do sends r and decodes a 2xx JSON body into out (when out is not nil). Every non-2xx
// answer becomes an *Error.
func (c *Client) do(ctx context.Context, r request, out any) error {
	u := *c.base
	u.Path = c.base.Path + r.path
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}

	var body any
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("%s %s: encoding request body: %w", r.method, r.path, err)
		}
		body = b
	}

	st := &callState{retryable: r.retryable(), timeout: c.cfg.RequestTimeout + r.wait}
	req, err := retryablehttp.NewRequestWithContext(withCallState(ctx, st), r.method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: building request: %w", r.method, r.path, err)
	}
	req.Header.Set(api.KeyHeader, c.cfg.APIKey)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.idempotencyKey != "" {
		req.Header.Set(api.IdempotencyHeader, r.idempotencyKey)
	}
	if r.ifMatch > 0 {
		// The engine's ETag is its generation as a quoted entity tag.
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(r.ifMatch, 10)))
	}

	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		return c.transportError(ctx, r, st, err)
	}
	defer func() { _ = resp.Body.Close() }()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", r.method, r.path, ctx.Err())
		}
		return fmt.Errorf("%s %s: reading the response: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.scrub(newError(r.method, r.path, resp, data, c.cfg.MaxRetryAfter))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the control plane at %s sent a response that is not the expected JSON (%w): check that endpoint points at an Engine control plane",
			r.method, r.path, c.base, err)
	}
	return nil
}

// scrub takes the API key out of an error built from a response body: a proxy or a broken
// server that echoes request headers must not put the key into a Terraform diagnostic
// (FuzzResponseDecoding holds this).
func (c *Client) scrub(e *Error) *Error {
	k := c.cfg.APIKey
	for _, s := range []*string{&e.Message, &e.Code, &e.Field, &e.OperationID} {
		*s = strings.ReplaceAll(*s, k, redactedValue)
	}
	return e
}

// transportError explains a request that got no usable response, keeping the cause in the
// chain so errors.Is(err, context.Canceled) and friends work.
func (c *Client) transportError(ctx context.Context, r request, st *callState, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", r.method, r.path, ctxErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	attempts := st.attempts.Load()
	tries := "1 attempt"
	if attempts != 1 {
		tries = fmt.Sprintf("%d attempts", attempts)
	}
	what, hint := c.describeTransportError(err)
	return fmt.Errorf("%s %s: %s after %s: %w (%s)", r.method, r.path, what, tries, err, hint)
}

// describeTransportError says what went wrong on the way to the control plane, naming the
// endpoint, and what to check: a refused connection, a host name that does not resolve, a
// certificate that is not trusted and a server that did not answer in time need different fixes.
func (c *Client) describeTransportError(err error) (what, hint string) {
	hint = "check endpoint / ENGINE_ENDPOINT and that the control plane is running"
	var (
		dnsErr  *net.DNSError
		timeout *attemptTimeoutError
	)
	switch {
	case isTLSError(err):
		return fmt.Sprintf("the TLS handshake with the control plane at %s failed", c.base),
			"check the server certificate: trust its CA with ca_cert_pem / ca_cert_file (or ENGINE_CA_CERT_PEM), or check that the endpoint's scheme (http/https) matches the server"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("the host name %q of the endpoint %s could not be resolved", c.base.Hostname(), c.base),
			"check the host name in endpoint / ENGINE_ENDPOINT and the machine's DNS"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing accepts connections at %s (connection refused)", c.base), hint
	case errors.As(err, &timeout):
		return fmt.Sprintf("the control plane at %s did not answer in time", c.base),
			"check that the control plane is not overloaded or stuck, or raise request_timeout / ENGINE_REQUEST_TIMEOUT"
	}
	return fmt.Sprintf("no response from the control plane at %s", c.base), hint
}

// decodeErrorBody reads the API's {"error":{...}} body; false when the body is anything else.
func decodeErrorBody(data []byte) (api.ErrorDetail, bool) {
	var eb api.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&eb); err != nil || eb.Error.Code == "" {
		return api.ErrorDetail{}, false
	}
	return eb.Error, true
}
