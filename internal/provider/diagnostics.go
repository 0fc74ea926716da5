package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// clientErrorDiag turns an error from the client into one diagnostic whose detail says what the
// control plane answered, with its identifiers, and what to do next. summary names the action
// ("Engine Read Failed").
func clientErrorDiag(summary string, err error) diag.Diagnostic {
	return diag.NewErrorDiagnostic(summary, clientErrorDetail(err))
}

// clientErrorAttrDiag is clientErrorDiag pointing at the attribute whose value caused the call.
func clientErrorAttrDiag(p path.Path, summary string, err error) diag.Diagnostic {
	return diag.NewAttributeErrorDiagnostic(p, summary, clientErrorDetail(err))
}

// clientErrorDetail renders err for a human: the control plane's code and message, the request,
// and the next step. Resources never look at status codes; this is the one place that maps them.
func clientErrorDetail(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		what := fmt.Sprintf("The control plane answered %s %s with HTTP %d", ce.Method, ce.Path, ce.StatusCode)
		if ce.Code != "" {
			what += " " + ce.Code
		}
		// The sentence gets its own full stop: a message that ends with one must not double it.
		if msg := strings.TrimRight(strings.TrimSpace(ce.Message), "."); msg != "" {
			what += ": " + msg
		}
		if ce.Field != "" {
			what += fmt.Sprintf(" (field %q)", ce.Field)
		}
		return what + ".\n\n" + nextStep(ce)
	}

	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var recordHeader tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("The request was cancelled (%s). Nothing further was sent; run the command again to continue.", err)
	case errors.As(err, &unknownAuthority):
		return fmt.Sprintf("The control plane's TLS certificate is not signed by a trusted CA: %s.\n\n"+
			"Trust its CA with ca_cert_pem (or %s) or ca_cert_file in the provider block.", err, envCACertPEM)
	case errors.As(err, &hostname), errors.As(err, &certInvalid):
		return fmt.Sprintf("The control plane's TLS certificate was rejected: %s.\n\n"+
			"Check that endpoint uses the host name the certificate was issued for, and that the certificate is valid.", err)
	case errors.As(err, &recordHeader):
		return fmt.Sprintf("The control plane did not answer TLS: %s.\n\nIf it serves plain HTTP, use an http:// endpoint.", err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("The control plane did not answer in time: %s.\n\n"+
			"Check that endpoint (or %s) points at a running control plane, or raise request_timeout (or %s).", err, envEndpoint, envRequestTimeout)
	}
	return fmt.Sprintf("The request to the control plane failed: %s.\n\n"+
		"Check that endpoint (or %s) points at a running, reachable control plane; the request was retried up to max_retries times.",
		err, envEndpoint)
}

func nextStep(ce *client.Error) string {
	switch {
	case ce.Code == api.CodeInvalidKey || ce.StatusCode == 401 || ce.StatusCode == 403:
		return fmt.Sprintf("The control plane rejected the API key: check api_key / %s.", envAPIKey)
	case ce.Code == api.CodeEngineNotFound:
		return "Check the user_id: data \"engine_instances\" lists the engines the control plane knows."
	case ce.Code == api.CodeVersionNotFound:
		return "Use a version from the release catalog: data \"engine_versions\" lists them."
	case ce.Code == api.CodeSnapshotNotFound:
		return "The snapshot no longer exists: it may have been deleted out of band. Take a new one (resource \"engine_brain_snapshot\")."
	case ce.Code == api.CodeOperationInProgress:
		return fmt.Sprintf("Operation %s is still running on this engine and the control plane allows one at a time. "+
			"Wait for it to finish, then run the command again.", orUnknown(ce.OperationID))
	case ce.Code == api.CodePreconditionFailed:
		return "The engine changed since Terraform last read it. Run terraform plan again to see its current state."
	case ce.Code == api.CodeRateLimited || ce.StatusCode == 429:
		return "The control plane kept rate limiting after every retry. Lower -parallelism, or raise max_retries (or " + envMaxRetries + ")."
	case ce.StatusCode >= 500:
		return "The control plane failed even after retries. Check its logs, then run the command again: operations are idempotent."
	case ce.Code == api.CodeInvalidRequest:
		return "The provider sent a request the control plane does not accept: check the values above, and report a bug if they look right."
	}
	return "Check the values above and the control plane's logs."
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(unknown id)"
	}
	return s
}
