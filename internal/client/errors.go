package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// Error is a non-2xx answer of the control API. Resources look at its Code (through the
// helpers below), never at the HTTP status.
type Error struct {
	StatusCode  int
	Code        string // stable api.Code*; empty when the body was not the API's error JSON
	Message     string
	Field       string // the request field at fault, when the server names one
	OperationID string // on OPERATION_IN_PROGRESS: the operation holding the engine
	// RetryAfter is the server's Retry-After (capped), set on the final 429/503 after retries.
	RetryAfter time.Duration
	Method     string
	Path       string
}

func (e *Error) Error() string {
	if e.isInvalidKey() {
		return fmt.Sprintf("the control plane rejected the API key (%s %s: HTTP %d %s): check the provider's api_key attribute or the ENGINE_API_KEY environment variable",
			e.Method, e.Path, e.StatusCode, e.codeOr(api.CodeInvalidKey))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %q)", e.Field)
	}
	if e.OperationID != "" && !strings.Contains(e.Message, e.OperationID) {
		fmt.Fprintf(&b, "; operation %s is already running on this engine: wait for it to finish, then try again", e.OperationID)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; the control plane asked to retry after %s", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) codeOr(def string) string {
	if e.Code != "" {
		return e.Code
	}
	return def
}

func (e *Error) isInvalidKey() bool {
	return e.Code == api.CodeInvalidKey || (e.Code == "" && e.StatusCode == http.StatusUnauthorized)
}

// newError builds the *Error of a non-2xx response from its body, which may or may not be the
// API's {"error":{...}} JSON (a proxy's HTML page still yields a useful message).
func newError(method, path string, resp *http.Response, body []byte, maxRetryAfter time.Duration) *Error {
	e := &Error{StatusCode: resp.StatusCode, Method: method, Path: path}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter); ok {
		e.RetryAfter = d
	}
	if detail, ok := decodeErrorBody(body); ok {
		e.Code, e.Message, e.Field, e.OperationID = detail.Code, detail.Message, detail.Field, detail.OperationID
		return e
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		e.Message = fmt.Sprintf("the server redirected to %q, which the client does not follow: set endpoint to the control plane's own URL", resp.Header.Get("Location"))
	default:
		e.Message = fmt.Sprintf("unexpected %s response that is not the control API's error JSON", http.StatusText(resp.StatusCode))
		if s := snippet(body); s != "" {
			e.Message += ": " + s
		}
	}
	return e
}

// snippet is the start of a body as one printable line, for error messages.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After value (delay seconds or an HTTP date) and caps it.
func parseRetryAfter(v string, now time.Time, maxWait time.Duration) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxWait/time.Second) {
			return maxWait, true
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, maxWait), true
}

// IsNotFound reports whether err says the addressed engine, snapshot, operation or version
// does not exist (404 with an *_NOT_FOUND code). A 404 without such a code, such as an unknown
// route from an endpoint pointed at the wrong server, is deliberately not "not found": treating
// it so would make Terraform forget resources that still exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound && strings.HasSuffix(e.Code, "_NOT_FOUND")
}

// HasCode reports whether err is an *Error carrying the stable code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// OperationInProgress returns the id of the operation that holds the engine when err is an
// OPERATION_IN_PROGRESS conflict.
func OperationInProgress(err error) (opID string, ok bool) {
	var e *Error
	if errors.As(err, &e) && e.Code == api.CodeOperationInProgress {
		return e.OperationID, true
	}
	return "", false
}

// IsInvalidKey reports whether the control plane rejected the API key.
func IsInvalidKey(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.isInvalidKey()
}

// IsPreconditionFailed reports whether an If-Match generation no longer matched the engine.
func IsPreconditionFailed(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Code == api.CodePreconditionFailed || (e.Code == "" && e.StatusCode == http.StatusPreconditionFailed))
}

// IsRateLimited reports whether the control plane was still rate limiting after all retries.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Code == api.CodeRateLimited || e.StatusCode == http.StatusTooManyRequests)
}

// isTLSError reports certificate and protocol mismatches: retrying them cannot help, and
// they need a different fix (trust the CA, or fix the scheme) than an unreachable server.
func isTLSError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		record           tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verification), errors.As(err, &record):
		return true
	}
	return err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}
