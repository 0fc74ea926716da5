package provider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// selfSignedPEM makes a throw-away CA certificate.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "engine test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// nullModel is a provider block with nothing set.
func nullModel() providerModel {
	return providerModel{
		Endpoint: types.StringNull(), APIKey: types.StringNull(), CACertPEM: types.StringNull(), CACertFile: types.StringNull(),
		InsecureSkipVerify: types.BoolNull(), RequestTimeout: types.StringNull(), MaxRetries: types.Int64Null(),
	}
}

func withBasics(m providerModel) providerModel {
	m.Endpoint = types.StringValue("https://engine-control.example.com/")
	m.APIKey = types.StringValue("k")
	return m
}

// errorOn returns the first error diagnostic at attribute name, or nil.
func errorOn(diags diag.Diagnostics, name string) diag.Diagnostic {
	for _, d := range diags.Errors() {
		if wp, ok := d.(diag.DiagnosticWithPath); ok && wp.Path().Equal(path.Root(name)) {
			return d
		}
	}
	return nil
}

func TestResolveConfig_defaultsAndConfig(t *testing.T) {
	t.Parallel()
	cfg, diags := resolveConfig(withBasics(nullModel()), envOf(nil))
	if diags.HasError() || diags.WarningsCount() > 0 {
		t.Fatalf("unexpected diagnostics: %v", diags)
	}
	if cfg.Endpoint != "https://engine-control.example.com" {
		t.Errorf("endpoint = %q, want the trailing slash trimmed", cfg.Endpoint)
	}
	if cfg.APIKey != "k" || cfg.RequestTimeout != 30*time.Second || cfg.MaxRetries != 4 || cfg.InsecureSkipVerify || cfg.CACertPEM != nil {
		t.Errorf("defaults wrong: %+v", cfg)
	}

	m := withBasics(nullModel())
	m.RequestTimeout = types.StringValue("2m")
	m.MaxRetries = types.Int64Value(0)
	cfg, diags = resolveConfig(m, envOf(nil))
	if diags.HasError() || cfg.RequestTimeout != 2*time.Minute || cfg.MaxRetries != 0 {
		t.Errorf("configured values not used: %+v %v", cfg, diags)
	}
}

func TestResolveConfig_envFallbackAndConfigWins(t *testing.T) {
	t.Parallel()
	ca := selfSignedPEM(t)
	env := map[string]string{
		envEndpoint: "http://127.0.0.1:8470", envAPIKey: "env-key", envCACertPEM: ca,
		envInsecureSkipVerify: "true", envRequestTimeout: "45s", envMaxRetries: "7",
	}
	cfg, diags := resolveConfig(nullModel(), envOf(env))
	if diags.HasError() {
		t.Fatalf("env-only config failed: %v", diags)
	}
	if cfg.Endpoint != "http://127.0.0.1:8470" || cfg.APIKey != "env-key" || string(cfg.CACertPEM) != ca ||
		!cfg.InsecureSkipVerify || cfg.RequestTimeout != 45*time.Second || cfg.MaxRetries != 7 {
		t.Errorf("env values not used: %+v", cfg)
	}
	if diags.WarningsCount() != 1 {
		t.Errorf("want one warning for insecure_skip_verify from the env, got %v", diags)
	}

	m := nullModel()
	m.Endpoint = types.StringValue("https://config.example.com")
	m.APIKey = types.StringValue("config-key")
	m.InsecureSkipVerify = types.BoolValue(false)
	m.RequestTimeout = types.StringValue("5s")
	m.MaxRetries = types.Int64Value(1)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	other := selfSignedPEM(t)
	if err := os.WriteFile(caFile, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	m.CACertFile = types.StringValue(caFile)
	cfg, diags = resolveConfig(m, envOf(env))
	if diags.HasError() || diags.WarningsCount() != 0 {
		t.Fatalf("unexpected diagnostics: %v", diags)
	}
	if cfg.Endpoint != "https://config.example.com" || cfg.APIKey != "config-key" || string(cfg.CACertPEM) != other ||
		cfg.InsecureSkipVerify || cfg.RequestTimeout != 5*time.Second || cfg.MaxRetries != 1 {
		t.Errorf("configuration must win over the environment: %+v", cfg)
	}
}

func TestResolveConfig_errorsNameAttributeAndVariable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*providerModel)
		env    map[string]string
		attr   string
		want   []string
	}{
		{"missing endpoint", func(m *providerModel) { m.Endpoint = types.StringNull() }, nil, attrEndpoint,
			[]string{"Set endpoint", "ENGINE_ENDPOINT"}},
		{"missing key", func(m *providerModel) { m.APIKey = types.StringNull() }, nil, attrAPIKey,
			[]string{"Set api_key", "ENGINE_API_KEY"}},
		{"unknown endpoint", func(m *providerModel) { m.Endpoint = types.StringUnknown() }, nil, attrEndpoint,
			[]string{"unknown until apply", "ENGINE_ENDPOINT"}},
		{"unknown key", func(m *providerModel) { m.APIKey = types.StringUnknown() }, map[string]string{envAPIKey: "x"}, attrAPIKey,
			[]string{"unknown until apply", "ENGINE_API_KEY"}},
		{"empty endpoint", func(m *providerModel) { m.Endpoint = types.StringValue("") }, nil, attrEndpoint,
			[]string{"empty string", "ENGINE_ENDPOINT"}},
		{"ftp endpoint", func(m *providerModel) { m.Endpoint = types.StringValue("ftp://x.example.com") }, nil, attrEndpoint,
			[]string{"not an http or https URL", "ENGINE_ENDPOINT"}},
		{"no scheme", func(m *providerModel) { m.Endpoint = types.StringValue("engine.example.com:8470") }, nil, attrEndpoint,
			[]string{"engine.example.com:8470", "http", "ENGINE_ENDPOINT"}},
		{"no host", func(m *providerModel) { m.Endpoint = types.StringValue("https://") }, nil, attrEndpoint, []string{"no host", "ENGINE_ENDPOINT"}},
		{"credentials in URL", func(m *providerModel) { m.Endpoint = types.StringValue("https://u:p@x.example.com") }, nil, attrEndpoint,
			[]string{"api_key", "ENGINE_ENDPOINT"}},
		{"bad env endpoint", func(m *providerModel) { m.Endpoint = types.StringNull() }, map[string]string{envEndpoint: "localhost"}, attrEndpoint,
			[]string{"ENGINE_ENDPOINT environment variable", "not an http"}},
		{"bad PEM", func(m *providerModel) { m.CACertPEM = types.StringValue("not a cert") }, nil, attrCACertPEM,
			[]string{"no PEM CERTIFICATE block", "ca_cert_pem", "ENGINE_CA_CERT_PEM"}},
		{"bad PEM in env", nil, map[string]string{envCACertPEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, attrCACertPEM,
			[]string{"ENGINE_CA_CERT_PEM environment variable", "cannot be parsed"}},
		{"missing CA file", func(m *providerModel) { m.CACertFile = types.StringValue(filepath.Join(dir, "nope.pem")) }, nil, attrCACertFile,
			[]string{"nope.pem", "could not be read", "ENGINE_CA_CERT_PEM"}},
		{"CA file without PEM", func(m *providerModel) { m.CACertFile = types.StringValue(notPEM) }, nil, attrCACertFile,
			[]string{"not.pem", "no PEM CERTIFICATE block", "ENGINE_CA_CERT_PEM"}},
		{"bad config retries", func(m *providerModel) { m.MaxRetries = types.Int64Value(-1) }, nil, attrMaxRetries,
			[]string{`"-1" from the max_retries attribute`, "ENGINE_MAX_RETRIES"}},
		{"unknown timeout", func(m *providerModel) { m.RequestTimeout = types.StringUnknown() }, nil, attrRequestTimeout,
			[]string{"unknown until apply", "ENGINE_REQUEST_TIMEOUT"}},
		{"unknown CA file", func(m *providerModel) { m.CACertFile = types.StringUnknown() }, nil, attrCACertFile,
			[]string{"unknown until apply"}},
		{"bad timeout", func(m *providerModel) { m.RequestTimeout = types.StringValue("soon") }, nil, attrRequestTimeout,
			[]string{`"soon"`, "Go duration", "ENGINE_REQUEST_TIMEOUT"}},
		{"timeout too small", func(m *providerModel) { m.RequestTimeout = types.StringValue("10ms") }, nil, attrRequestTimeout,
			[]string{"between 1s and 10m0s", "ENGINE_REQUEST_TIMEOUT"}},
		{"bad env timeout", nil, map[string]string{envRequestTimeout: "-3"}, attrRequestTimeout,
			[]string{"ENGINE_REQUEST_TIMEOUT"}},
		{"bad env retries", nil, map[string]string{envMaxRetries: "many"}, attrMaxRetries,
			[]string{"ENGINE_MAX_RETRIES", "whole number"}},
		{"too many env retries", nil, map[string]string{envMaxRetries: "99"}, attrMaxRetries, []string{"between 0 and 20", "ENGINE_MAX_RETRIES"}},
		{"bad env insecure", nil, map[string]string{envInsecureSkipVerify: "sure"}, attrInsecureSkipVerify,
			[]string{"ENGINE_INSECURE_SKIP_VERIFY", "true or false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := withBasics(nullModel())
			if tc.mutate != nil {
				tc.mutate(&m)
			}
			_, diags := resolveConfig(m, envOf(tc.env))
			d := errorOn(diags, tc.attr)
			if d == nil {
				t.Fatalf("want an error on %s, got %v", tc.attr, diags)
			}
			text := d.Summary() + ": " + d.Detail()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("error %q does not mention %q", text, w)
				}
			}
			if n := diags.ErrorsCount(); n != 1 {
				t.Errorf("want exactly one error, got %d: %v", n, diags)
			}
		})
	}
}

func TestResolveConfig_insecureWarns(t *testing.T) {
	t.Parallel()
	m := withBasics(nullModel())
	m.InsecureSkipVerify = types.BoolValue(true)
	cfg, diags := resolveConfig(m, envOf(nil))
	if diags.HasError() || !cfg.InsecureSkipVerify {
		t.Fatalf("insecure_skip_verify not applied: %+v %v", cfg, diags)
	}
	ws := diags.Warnings()
	if len(ws) != 1 || !strings.Contains(ws[0].Detail(), "ca_cert_pem") {
		t.Fatalf("want one warning pointing at ca_cert_pem, got %v", ws)
	}
	if wp, ok := ws[0].(diag.DiagnosticWithPath); !ok || !wp.Path().Equal(path.Root(attrInsecureSkipVerify)) {
		t.Errorf("warning should point at insecure_skip_verify: %v", ws[0])
	}
}

func TestResolveConfig_keyNeverInDiagnostics(t *testing.T) {
	t.Parallel()
	m := withBasics(nullModel())
	m.APIKey = types.StringValue("s3cret-key-value")
	m.Endpoint = types.StringValue("nonsense")
	m.RequestTimeout = types.StringValue("nonsense")
	_, diags := resolveConfig(m, envOf(nil))
	if !diags.HasError() {
		t.Fatal("expected errors")
	}
	for _, d := range diags {
		if strings.Contains(d.Detail(), "s3cret") || strings.Contains(d.Summary(), "s3cret") {
			t.Errorf("diagnostic leaks the key: %v", d)
		}
	}
}
