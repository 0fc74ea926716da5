package provider

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// Provider attribute names and the environment variables they fall back to.
const (
	attrEndpoint           = "endpoint"
	attrAPIKey             = "api_key"
	attrCACertPEM          = "ca_cert_pem"
	attrCACertFile         = "ca_cert_file"
	attrInsecureSkipVerify = "insecure_skip_verify"
	attrRequestTimeout     = "request_timeout"
	attrMaxRetries         = "max_retries"

	envEndpoint           = "ENGINE_ENDPOINT"
	envAPIKey             = "ENGINE_API_KEY"
	envCACertPEM          = "ENGINE_CA_CERT_PEM"
	envInsecureSkipVerify = "ENGINE_INSECURE_SKIP_VERIFY"
	envRequestTimeout     = "ENGINE_REQUEST_TIMEOUT"
	envMaxRetries         = "ENGINE_MAX_RETRIES"
)

// Defaults and bounds of the provider settings.
const (
	defaultRequestTimeout = 30 * time.Second
	minRequestTimeout     = time.Second
	maxRequestTimeout     = 10 * time.Minute
	defaultMaxRetries     = 4
	maxMaxRetries         = 20
)

// providerModel is the provider block.
type providerModel struct {
	Endpoint           types.String `tfsdk:"endpoint"`
	APIKey             types.String `tfsdk:"api_key"`
	CACertPEM          types.String `tfsdk:"ca_cert_pem"`
	CACertFile         types.String `tfsdk:"ca_cert_file"`
	InsecureSkipVerify types.Bool   `tfsdk:"insecure_skip_verify"`
	RequestTimeout     types.String `tfsdk:"request_timeout"`
	MaxRetries         types.Int64  `tfsdk:"max_retries"`
	Manager            types.String `tfsdk:"manager"`
}

// resolveConfig turns the provider block plus the environment into a client configuration
// (without UserAgent and Logger, which Configure adds). The configuration wins over the
// environment; every problem is an attribute error that names the attribute and the variable.
func resolveConfig(m providerModel, lookupEnv func(string) (string, bool)) (client.Config, diag.Diagnostics) {
	r := &resolver{lookupEnv: lookupEnv}
	cfg := client.Config{RequestTimeout: defaultRequestTimeout, MaxRetries: defaultMaxRetries}

	if raw, from, ok := r.str(m.Endpoint, attrEndpoint, envEndpoint); ok {
		u, err := parseEndpoint(raw)
		if err != nil {
			r.errorf(attrEndpoint, "Invalid Engine Endpoint", "%s from %s: %s. Set %s (or %s) to the control API's base URL, "+
				"for example \"https://engine-control.example.com\" or \"http://127.0.0.1:8470\".",
				quoteShort(client.RedactURL(raw)), from, err, attrEndpoint, envEndpoint)
		}
		cfg.Endpoint = u
	} else {
		r.missing(attrEndpoint, envEndpoint, "the base URL of the Engine control API")
	}

	if raw, _, ok := r.str(m.APIKey, attrAPIKey, envAPIKey); ok {
		cfg.APIKey = raw
	} else {
		r.missing(attrAPIKey, envAPIKey, "the control API's admin key")
	}

	// A CA in the configuration (either attribute) overrides the environment's.
	switch {
	case known(m.CACertFile):
		file := m.CACertFile.ValueString()
		b, err := os.ReadFile(file)
		if err != nil {
			r.errorf(attrCACertFile, "Unreadable CA Certificate File", "ca_cert_file %q could not be read: %s. Point ca_cert_file at a "+
				"readable PEM file, or pass the certificate itself in ca_cert_pem (or %s).", file, err, envCACertPEM)
			break
		}
		r.checkPEM(b, attrCACertFile, fmt.Sprintf("the file %q named by ca_cert_file", file))
		cfg.CACertPEM = b
	default:
		if raw, from, ok := r.str(m.CACertPEM, attrCACertPEM, envCACertPEM); ok {
			r.checkPEM([]byte(raw), attrCACertPEM, from)
			cfg.CACertPEM = []byte(raw)
		}
	}
	if m.CACertFile.IsUnknown() {
		r.unknownErr(attrCACertFile, "")
	}

	if raw, from, ok := r.str(boolString(m.InsecureSkipVerify), attrInsecureSkipVerify, envInsecureSkipVerify); ok {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			r.errorf(attrInsecureSkipVerify, "Invalid Insecure Skip Verify Setting", "%q from %s is not a boolean. Set "+
				"insecure_skip_verify (or %s) to true or false.", raw, from, envInsecureSkipVerify)
		}
		cfg.InsecureSkipVerify = b
	}
	if cfg.InsecureSkipVerify {
		r.diags.AddAttributeWarning(path.Root(attrInsecureSkipVerify), "TLS Certificate Verification Disabled",
			"insecure_skip_verify is true: the provider will accept any certificate from the control plane, so anyone on the "+
				"network path could read the API key and change engines. Trust the control plane's CA with ca_cert_pem or "+
				"ca_cert_file instead, and remove insecure_skip_verify (or "+envInsecureSkipVerify+").")
	}

	if raw, from, ok := r.str(m.RequestTimeout, attrRequestTimeout, envRequestTimeout); ok {
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		switch {
		case err != nil:
			r.errorf(attrRequestTimeout, "Invalid Request Timeout", "%q from %s is not a duration. Set request_timeout (or %s) to a Go "+
				"duration such as \"30s\" or \"2m\".", raw, from, envRequestTimeout)
		case d < minRequestTimeout || d > maxRequestTimeout:
			r.errorf(attrRequestTimeout, "Invalid Request Timeout", "%q from %s is out of range. Set request_timeout (or %s) "+
				"to a duration between %s and %s.", raw, from, envRequestTimeout, minRequestTimeout, maxRequestTimeout)
		default:
			cfg.RequestTimeout = d
		}
	}

	if raw, from, ok := r.str(int64String(m.MaxRetries), attrMaxRetries, envMaxRetries); ok {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < 0 || n > maxMaxRetries {
			r.errorf(attrMaxRetries, "Invalid Max Retries", "%q from %s is not a whole number between 0 and %d. Set max_retries (or %s) to one.",
				raw, from, maxMaxRetries, envMaxRetries)
		} else {
			cfg.MaxRetries = n
		}
	}
	return cfg, r.diags
}

// resolver collects the diagnostics of resolveConfig.
type resolver struct {
	lookupEnv func(string) (string, bool)
	diags     diag.Diagnostics
	reported  map[string]bool // attributes that already have an error: one clear error each
}

// str returns the configured value when it is set, else the environment variable's when that is
// non-empty; from names the source for messages. An unknown configured value is reported (the
// provider cannot be configured with it) and yields ok=false.
func (r *resolver) str(v types.String, name, env string) (raw, from string, ok bool) {
	switch {
	case v.IsUnknown():
		r.unknownErr(name, env)
		return "", "", false
	case !v.IsNull():
		if v.ValueString() == "" {
			r.errorf(name, "Empty Engine Provider Setting", "%s is set to an empty string. Set it to a value, or remove it to "+
				"use the %s environment variable.", name, env)
			return "", "", false
		}
		return v.ValueString(), "the " + name + " attribute", true
	}
	if env == "" || r.lookupEnv == nil {
		return "", "", false
	}
	if e, set := r.lookupEnv(env); set && e != "" {
		return e, "the " + env + " environment variable", true
	}
	return "", "", false
}

func (r *resolver) unknownErr(name, env string) {
	detail := fmt.Sprintf("The provider cannot be configured because %s is unknown until apply: it depends on a value that does not "+
		"exist yet. Set %s to a value known at plan time (a literal, a variable, or an existing resource's attribute)", name, name)
	if env != "" {
		detail += fmt.Sprintf(", or remove it and set the %s environment variable", env)
	}
	r.addError(name, "Unknown Engine Provider Setting", detail+".")
}

func (r *resolver) missing(name, env, what string) {
	if r.reported[name] {
		return
	}
	r.addError(name, "Missing Engine Provider Setting",
		fmt.Sprintf("The provider needs %s. Set %s in the provider \"engine\" block, or set the %s environment variable.", what, name, env))
}

func (r *resolver) errorf(name, summary, format string, args ...any) {
	r.addError(name, summary, fmt.Sprintf(format, args...))
}

func (r *resolver) addError(name, summary, detail string) {
	if r.reported == nil {
		r.reported = map[string]bool{}
	}
	r.reported[name] = true
	r.diags.AddAttributeError(path.Root(name), summary, detail)
}

func (r *resolver) checkPEM(b []byte, name, from string) {
	if err := checkCertsPEM(b); err != nil {
		r.errorf(name, "Invalid CA Certificate", "The CA certificate from %s is not usable: %s. Provide PEM-encoded certificates "+
			"(\"-----BEGIN CERTIFICATE-----\" blocks) in ca_cert_pem (or %s) or in the file named by ca_cert_file.", from, err, envCACertPEM)
	}
}

// parseEndpoint checks that s is an absolute http(s) URL without credentials, query or fragment,
// and returns it without a trailing slash so paths join cleanly.
func parseEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("it is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("it is not an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("it has no host")
	case u.User != nil:
		return "", errors.New("it carries credentials: pass the key in api_key instead")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("it has a query or fragment: give only scheme, host, port and an optional path prefix")
	}
	return strings.TrimRight(s, "/"), nil
}

// checkCertsPEM requires at least one parseable CERTIFICATE block.
func checkCertsPEM(b []byte) error {
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d cannot be parsed (%w)", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block found")
	}
	return nil
}

func known(v attr.Value) bool { return !v.IsNull() && !v.IsUnknown() }

// boolString and int64String let non-string settings share the string resolution path (env
// variables are strings anyway).
func boolString(v types.Bool) types.String {
	return asString(v, func() string { return strconv.FormatBool(v.ValueBool()) })
}

func int64String(v types.Int64) types.String {
	return asString(v, func() string { return strconv.FormatInt(v.ValueInt64(), 10) })
}

func asString(v attr.Value, format func() string) types.String {
	switch {
	case v.IsUnknown():
		return types.StringUnknown()
	case v.IsNull():
		return types.StringNull()
	}
	return types.StringValue(format())
}

// quoteShort quotes a value for a message, cut so a pasted blob does not flood the output.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}
