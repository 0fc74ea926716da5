package provider

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflogtest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// readOne is a configuration whose only work is one GET of user-0001's engine.
const readOne = `
data "engine_instance" "e" {
  user_id = "user-0001"
}
`

// expectReadOne checks that readOne really reached the control plane and read the engine.
func expectReadOne(version string) []statecheck.StateCheck {
	return []statecheck.StateCheck{
		statecheck.ExpectKnownValue("data.engine_instance.e", tfjsonpath.New("version"), knownvalue.StringExact(version)),
		statecheck.ExpectKnownValue("data.engine_instance.e", tfjsonpath.New("status"), knownvalue.StringExact(api.StatusRunning)),
	}
}

func TestAccProvider_configBasic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:            h.ProviderBlock(`request_timeout = "20s"`, `max_retries = 2`, `insecure_skip_verify = false`) + readOne,
			ConfigStateChecks: expectReadOne("2.3.1"),
		}},
	})
}

func TestAccProvider_envFallback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	env := map[string]string{
		envEndpoint: h.Endpoint, envAPIKey: h.Key, envRequestTimeout: "15s", envMaxRetries: "1", envInsecureSkipVerify: "false",
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(env),
		Steps: []resource.TestStep{{
			Config:            readOne, // no provider block at all: everything comes from the environment
			ConfigStateChecks: expectReadOne("2.3.1"),
		}},
	})
}

func TestAccProvider_configWinsOverEnv(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// The environment points at nothing with a wrong key; the block's values must be the ones used.
	env := map[string]string{envEndpoint: "http://127.0.0.1:1", envAPIKey: "wrong-key", envRequestTimeout: "bogus", envMaxRetries: "lots"}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(env),
		Steps: []resource.TestStep{{
			Config:            h.ProviderBlock(`request_timeout = "20s"`, `max_retries = 1`) + readOne,
			ConfigStateChecks: expectReadOne("2.3.1"),
		}},
	})
	if n := h.BadKeyRequests(); n != 0 {
		t.Errorf("the environment's wrong key reached the control plane %d times", n)
	}
}

func TestAccProvider_missingEndpoint(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(map[string]string{envAPIKey: "k"}),
		Steps: []resource.TestStep{{
			Config:      readOne,
			ExpectError: errorLike(`Set endpoint in the provider "engine" block, or set the ENGINE_ENDPOINT environment variable.`),
		}},
	})
}

func TestAccProvider_missingKey(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(map[string]string{envEndpoint: "http://127.0.0.1:1"}),
		Steps: []resource.TestStep{{
			Config:      readOne,
			ExpectError: errorLike(`Set api_key in the provider "engine" block, or set the ENGINE_API_KEY environment variable.`),
		}},
	})
}

func TestAccProvider_malformedEndpoint(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{
			{
				Config:      "provider \"engine\" {\n  endpoint = \"ftp://engine.example.com\"\n  api_key = \"k\"\n}\n" + readOne,
				ExpectError: errorLike(`"ftp://engine.example.com" from the endpoint attribute: it is not an http or https URL`),
			},
			{
				Config:      "provider \"engine\" {\n  endpoint = \"https://\"\n  api_key = \"k\"\n}\n" + readOne,
				ExpectError: errorLike(`it has no host. Set endpoint (or ENGINE_ENDPOINT)`),
			},
		},
	})
}

// TestAccProvider_endpointCredentialsRedacted: an endpoint written with user:password@ is
// refused, and the diagnostic names it without the password.
func TestAccProvider_endpointCredentialsRedacted(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config:      "provider \"engine\" {\n  endpoint = \"https://admin:hunter2pass@engine.example.com\"\n  api_key = \"k\"\n}\n" + readOne,
			ExpectError: errorLike(`"https://[REDACTED]@engine.example.com" from the endpoint attribute: it carries credentials`),
		}},
	})
}

func TestAccProvider_unknownEndpointAtPlan(t *testing.T) {
	t.Parallel()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{{
			Config: `
resource "terraform_data" "later" {
  input = "http://127.0.0.1:1"
}
provider "engine" {
  endpoint = terraform_data.later.output
  api_key  = "k"
}
` + readOne,
			ExpectError: errorLike(`endpoint is unknown until apply`),
		}},
	})
}

func TestAccProvider_wrongKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	start := time.Now()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`provider "engine" {
  endpoint    = %q
  api_key     = "not-the-key"
  max_retries = 4
}
`, h.Endpoint) + readOne,
			ExpectError: errorLike(`The control plane rejected the API key: check api_key / ENGINE_API_KEY.`),
		}},
	})
	// One clear error, not a retry storm: the rejected key is never retried.
	if n := h.BadKeyRequests(); n != 1 {
		t.Errorf("the control plane saw %d requests with the wrong key, want exactly 1 (no retries)", n)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a wrong key took %s to report", d)
	}
}

func TestAccProvider_requestTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Faults: true})
	if _, err := h.Client.AddFault(context.Background(), api.Fault{
		Kind: api.FaultSlowResponse, DelayMS: 3000, PathPrefix: "/v1/engines/user-0001", Method: "GET",
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:      h.ProviderBlock(`request_timeout = "1s"`, `max_retries = 0`) + readOne,
			ExpectError: errorLike(`The control plane did not answer in time`),
		}},
	})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("request_timeout of 1s took %s to fail", d)
	}
}

// TestAccProvider_connectionErrorsSayWhatHappened: a closed port and a host name that does not
// resolve read as what they are, naming the endpoint, not as a per-request timeout.
func TestAccProvider_connectionErrorsSayWhatHappened(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()
	config := func(endpoint string) string {
		return fmt.Sprintf("provider \"engine\" {\n  endpoint = %q\n  api_key = \"k\"\n  max_retries = 0\n}\n", endpoint) + readOne
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providerFactories(nil),
		Steps: []resource.TestStep{
			{
				Config:      config(closed),
				ExpectError: errorLike(`The request to the control plane failed: GET /v1/engines/user-0001: nothing accepts connections at ` + closed + ` (connection refused)`),
			},
			{
				Config:      config("http://no-such-host.invalid:8470"),
				ExpectError: errorLike(`the host name "no-such-host.invalid" of the endpoint http://no-such-host.invalid:8470 could not be resolved`),
			},
		},
	})
}

// TestAccProvider_maxRetries shows max_retries (and ENGINE_MAX_RETRIES) decide whether a flaky
// control plane costs a failed run: two injected 5xx fail a run without retries and are absorbed
// by a run with three.
func TestAccProvider_maxRetries(t *testing.T) {
	t.Parallel()
	injectTwo5xx := func(t *testing.T, h *harness) {
		t.Helper()
		if _, err := h.Client.AddFault(context.Background(), api.Fault{
			Kind: api.FaultServerError, Count: 2, PathPrefix: "/v1/engines/user-0001", Method: "GET",
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("zero from env fails", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{Faults: true})
		injectTwo5xx(t, h)
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(map[string]string{envMaxRetries: "0"}),
			Steps: []resource.TestStep{{
				Config:      h.ProviderBlock() + readOne,
				ExpectError: errorLike(`The control plane failed even after retries`),
			}},
		})
		if n := h.Requests("GET /v1/engines/user-0001"); n != 1 {
			t.Errorf("max_retries 0 sent %d requests, want 1", n)
		}
	})
	t.Run("three absorbs them", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{Faults: true})
		injectTwo5xx(t, h)
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: h.Factories(nil),
			Steps: []resource.TestStep{{
				Config:            h.ProviderBlock(`max_retries = 3`) + readOne,
				ConfigStateChecks: expectReadOne("2.3.1"),
			}},
		})
		faults, err := h.Client.Faults(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(faults) != 1 || faults[0].Fired != 2 {
			t.Errorf("want the 5xx fault to have fired twice, got %+v", faults)
		}
	})
}

// TestAccProvider_tls serves HTTPS with a certificate no system pool trusts.
func TestAccProvider_tls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{TLS: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(h.CACertPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	block := func(extra ...string) string {
		return fmt.Sprintf("provider \"engine\" {\n  endpoint = %q\n  api_key = %q\n", h.Endpoint, h.Key) + joinLines(extra) + "}\n"
	}
	cases := []struct {
		name string
		env  map[string]string
		step resource.TestStep
	}{
		{"ca_cert_pem", nil, resource.TestStep{Config: block(fmt.Sprintf("ca_cert_pem = %q", h.CACertPEM)) + readOne, ConfigStateChecks: expectReadOne("2.3.1")}},
		{"ca_cert_file", nil, resource.TestStep{Config: block(fmt.Sprintf("ca_cert_file = %q", caFile)) + readOne, ConfigStateChecks: expectReadOne("2.3.1")}},
		{"env ENGINE_CA_CERT_PEM", map[string]string{envCACertPEM: h.CACertPEM}, resource.TestStep{Config: block() + readOne, ConfigStateChecks: expectReadOne("2.3.1")}},
		{"insecure_skip_verify", nil, resource.TestStep{Config: block("insecure_skip_verify = true") + readOne, ConfigStateChecks: expectReadOne("2.3.1")}},
		{"no CA fails", nil, resource.TestStep{Config: block() + readOne, ExpectError: errorLike(`not signed by a trusted CA`)}},
		{"invalid PEM", nil, resource.TestStep{Config: block(`ca_cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"`) + readOne,
			ExpectError: errorLike(`certificate 1 cannot be parsed`)}},
		{"unreadable file", nil, resource.TestStep{Config: block(fmt.Sprintf("ca_cert_file = %q", caFile+".missing")) + readOne,
			ExpectError: errorLike(`Unreadable CA Certificate File`)}},
		{"both CA attributes", nil, resource.TestStep{Config: block(fmt.Sprintf("ca_cert_pem = %q", h.CACertPEM), fmt.Sprintf("ca_cert_file = %q", caFile)) + readOne,
			ExpectError: errorLike(`cannot be configured together`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: h.Factories(tc.env), Steps: []resource.TestStep{tc.step}})
		})
	}
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += "  " + l + "\n"
	}
	return out
}

// TestProviderData_catalogFetchedOnce: resources read the catalog at plan time, so concurrent and
// repeated calls within one provider process must cost one GET /v1/versions.
func TestProviderData_catalogFetchedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1})
	d := &providerData{Client: h.Client}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.Catalog(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if _, ok := c.Get("2.4.0"); !ok {
				t.Error("catalog lacks 2.4.0")
			}
		}()
	}
	wg.Wait()
	if n := h.Requests("GET /v1/versions"); n != 1 {
		t.Errorf("GET /v1/versions sent %d times, want 1", n)
	}
}

// TestProviderData_catalogErrorNotCached: a failed fetch must not poison the rest of the run.
func TestProviderData_catalogErrorNotCached(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: -1, Faults: true})
	if _, err := h.Client.AddFault(context.Background(), api.Fault{Kind: api.FaultServerError, Count: 1, PathPrefix: "/v1/versions"}); err != nil {
		t.Fatal(err)
	}
	noRetry, err := client.New(client.Config{Endpoint: h.Endpoint, APIKey: h.Key, MaxRetries: 0, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := &providerData{Client: noRetry}
	if _, err := d.Catalog(context.Background()); err == nil {
		t.Fatal("first fetch should fail on the injected 5xx")
	}
	if _, err := d.Catalog(context.Background()); err != nil {
		t.Fatalf("second fetch should succeed: %v", err)
	}
}

// TestAccProvider_userAgent checks the User-Agent Configure builds from the real Terraform version.
func TestAccProvider_userAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: h.Factories(nil),
		Steps: []resource.TestStep{{
			Config:            h.ProviderBlock() + readOne,
			ConfigStateChecks: expectReadOne("2.3.1"),
		}},
	})
	want := regexp.MustCompile(`^terraform-provider-engine/test Terraform/\d+\.\d+\.\d+`)
	for _, ua := range h.UserAgents() {
		if !want.MatchString(ua) {
			t.Errorf("User-Agent %q does not match %s", ua, want)
		}
	}
	if len(h.UserAgents()) == 0 {
		t.Error("no request reached the control plane")
	}
}

// TestProvider_keyNeverLogged configures the provider as Terraform would, reads an engine with
// DEBUG logging captured, and checks the log shows the requests but never the key.
func TestProvider_keyNeverLogged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Engines: 1})
	var logs bytes.Buffer
	ctx := tflogtest.RootLogger(context.Background(), &logs)

	p := newWithEnv("test", envOf(nil))()
	var sch provider.SchemaResponse
	p.Schema(ctx, provider.SchemaRequest{}, &sch)
	values := map[string]tftypes.Value{}
	for name, a := range sch.Schema.Attributes {
		values[name] = tftypes.NewValue(a.GetType().TerraformType(ctx), nil)
	}
	values[attrEndpoint] = tftypes.NewValue(tftypes.String, h.Endpoint)
	values[attrAPIKey] = tftypes.NewValue(tftypes.String, h.Key)
	req := provider.ConfigureRequest{TerraformVersion: "1.11.4", Config: tfsdk.Config{
		Schema: sch.Schema, Raw: tftypes.NewValue(sch.Schema.Type().TerraformType(ctx), values),
	}}
	var resp provider.ConfigureResponse
	p.Configure(ctx, req, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatalf("configure: %v", resp.Diagnostics)
	}
	data, ok := resp.DataSourceData.(*providerData)
	if !ok {
		t.Fatalf("DataSourceData is %T", resp.DataSourceData)
	}
	if _, err := data.Client.GetEngine(ctx, "user-0001"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "/v1/engines/user-0001") {
		t.Fatalf("the request was not logged at all, so this test proves nothing:\n%s", out)
	}
	if strings.Contains(out, h.Key) {
		t.Errorf("the API key appears in the provider's logs:\n%s", out)
	}
}
