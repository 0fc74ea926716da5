// Package provider implements the Terraform provider "engine": its configuration, the resources,
// data sources and functions that turn an Engine upgrade into a reviewed plan and apply. It talks
// to the Engine control API only through internal/client and keeps upgrade rules in
// internal/upgrade, so the same logic serves plan time and apply time.
package provider

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/providervalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var (
	_ provider.Provider                     = (*engineProvider)(nil)
	_ provider.ProviderWithFunctions        = (*engineProvider)(nil)
	_ provider.ProviderWithConfigValidators = (*engineProvider)(nil)
)

// New returns the provider factory that main.go serves. version is the release version ("dev" for
// local builds) and goes into the User-Agent.
func New(version string) func() provider.Provider {
	return newWithEnv(version, os.LookupEnv)
}

// newWithEnv lets tests hand each provider instance its own environment, so env-fallback tests
// can run in parallel without touching the process environment.
func newWithEnv(version string, lookupEnv func(string) (string, bool)) func() provider.Provider {
	return func() provider.Provider {
		return &engineProvider{version: version, lookupEnv: lookupEnv}
	}
}

// engineProvider is the provider "engine".
type engineProvider struct {
	version   string
	lookupEnv func(string) (string, bool)
}

// providerData is what Configure hands every resource and data source: the shared client and a
// catalog fetched at most once per provider process (resources read it at plan time, and a plan of
// a thousand releases must not fetch it a thousand times).
type providerData struct {
	Client  *client.Client
	version string
	// manager names this provider's resources as owners of the engines they manage.
	manager string

	catalogMu sync.Mutex
	catalog   *upgrade.Catalog
}

// Catalog returns the control plane's release catalog, fetching GET /v1/versions on first use. A
// failed fetch is not cached, so a transient error does not poison the rest of the run.
func (d *providerData) Catalog(ctx context.Context) (*upgrade.Catalog, error) {
	d.catalogMu.Lock()
	defer d.catalogMu.Unlock()
	if d.catalog != nil {
		return d.catalog, nil
	}
	vs, err := d.Client.Versions(ctx)
	if err != nil {
		return nil, err
	}
	c, err := upgrade.NewCatalog(vs)
	if err != nil {
		return nil, fmt.Errorf("the control plane returned an invalid release catalog: %w", err)
	}
	d.catalog = c
	return c, nil
}

func (p *engineProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "engine"
	resp.Version = p.version
}

func (p *engineProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Upgrades self-hosted Engines (AI agent runtimes with a SQLite brain) through the Engine control API: " +
			"snapshots before migrations, rollback on destroy, canary rollouts across per-user fleets.",
		Attributes: map[string]schema.Attribute{
			attrEndpoint: schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Base URL of the Engine control API, for example `https://engine-control.example.com` or "+
					"`http://127.0.0.1:8470` for the local control plane. Must be an `http` or `https` URL. "+
					"Falls back to the `%s` environment variable; required in one of the two places.", envEndpoint),
				Optional: true,
			},
			attrAPIKey: schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Admin key of the control API, sent in the `X-Engine-Admin-Key` header. Sensitive: "+
					"never logged or stored in state. Falls back to `%s`; required in one of the two places. Set it from the environment "+
					"variable or from a variable declared `ephemeral = true`: Terraform writes other variables into saved plans.", envAPIKey),
				Optional:  true,
				Sensitive: true,
			},
			attrCACertPEM: schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("PEM-encoded CA certificate(s) to trust in addition to the system pool, for a control "+
					"plane behind a private CA. Conflicts with `ca_cert_file`. Falls back to `%s`.", envCACertPEM),
				Optional: true,
			},
			attrCACertFile: schema.StringAttribute{
				MarkdownDescription: "Path of a file holding PEM-encoded CA certificate(s) to trust, read at configure " +
					"time. Conflicts with `ca_cert_pem`.",
				Optional: true,
			},
			attrInsecureSkipVerify: schema.BoolAttribute{
				MarkdownDescription: fmt.Sprintf("Skip TLS certificate verification. For throw-away test setups only: the provider "+
					"warns whenever it is on. Defaults to `false`. Falls back to `%s`.", envInsecureSkipVerify),
				Optional: true,
			},
			attrRequestTimeout: schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Timeout of one HTTP attempt, as a Go duration (`30s`, `2m`); long-poll waits add "+
					"their wait on top. Between `%s` and `%s`. Defaults to `%s`. Falls back to `%s`.",
					minRequestTimeout, maxRequestTimeout, defaultRequestTimeout, envRequestTimeout),
				Optional: true,
			},
			attrMaxRetries: schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("How many times a failed request is retried (connection errors, HTTP 429 and 5xx; "+
					"POSTs only when they carry an idempotency key), with exponential backoff and jitter. Between 0 and %d. "+
					"Defaults to `%d`. Falls back to `%s`.", maxMaxRetries, defaultMaxRetries, envMaxRetries),
				Optional:   true,
				Validators: []validator.Int64{int64validator.Between(0, maxMaxRetries)},
			},
			attrManager: managerAttribute(),
		},
	}
}

func (p *engineProvider) ConfigValidators(context.Context) []provider.ConfigValidator {
	return []provider.ConfigValidator{
		providervalidator.Conflicting(path.MatchRoot(attrCACertPEM), path.MatchRoot(attrCACertFile)),
	}
}

func (p *engineProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cfg, diags := resolveConfig(m, p.lookupEnv)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	cfg.UserAgent = fmt.Sprintf("terraform-provider-engine/%s Terraform/%s", p.version, req.TerraformVersion)
	cfg.Logger = tflogAdapter{apiKey: cfg.APIKey}

	ctx = maskKey(ctx, cfg.APIKey)
	tflog.Debug(ctx, "configuring the Engine control API client", map[string]any{
		"endpoint": cfg.Endpoint, "request_timeout": cfg.RequestTimeout.String(), "max_retries": cfg.MaxRetries,
		"custom_ca": len(cfg.CACertPEM) > 0, "insecure_skip_verify": cfg.InsecureSkipVerify,
	})

	// No request here: a plan should cost one GET per resource, and the first real call reports a
	// wrong key or endpoint as one clear diagnostic anyway.
	c, err := client.New(cfg)
	if err != nil {
		resp.Diagnostics.AddError("Invalid Engine Provider Configuration",
			fmt.Sprintf("The Engine control API client could not be built: %s. Check the provider settings.", err))
		return
	}
	data := &providerData{Client: c, version: p.version, manager: managerLabel(m.Manager, p.lookupEnv)}
	resp.DataSourceData = data
	resp.ResourceData = data
}

// resources lists every resource type; resource files add their constructor here.
func (p *engineProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewBrainSnapshotResource,
		NewRehearsalResource,
		NewReleaseResource,
		NewCanaryResource,
	}
}

func (p *engineProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewInstanceDataSource,
		NewRehearsalDataSource,
		NewInstancesDataSource,
		NewVersionsDataSource,
		NewUpgradePathDataSource,
		NewBrainSnapshotsDataSource,
	}
}

func (p *engineProvider) Functions(context.Context) []func() function.Function {
	return []func() function.Function{
		NewUpgradeKindFunction,
		NewVersionSatisfiesFunction,
	}
}

// tflogAdapter sends the client's request/response lines to tflog. The client already redacts
// the key header; masking the key's value again here also covers any echo of it in a body or URL.
type tflogAdapter struct {
	apiKey string
}

func (a tflogAdapter) Debug(ctx context.Context, msg string, fields map[string]any) {
	tflog.Debug(maskKey(ctx, a.apiKey), msg, fields)
}

// maskKey makes every tflog line written with ctx hide the API key, wherever it appears.
func maskKey(ctx context.Context, key string) context.Context {
	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, attrAPIKey, "api-key", "X-Engine-Admin-Key")
	if key != "" {
		ctx = tflog.MaskAllFieldValuesStrings(ctx, key)
		ctx = tflog.MaskMessageStrings(ctx, key)
	}
	return ctx
}

// configureData extracts the shared providerData in a resource's or data source's Configure. It
// returns nil before the provider is configured (validation runs without it).
func configureData(raw any, diags *diag.Diagnostics) *providerData {
	if raw == nil {
		return nil
	}
	d, ok := raw.(*providerData)
	if !ok {
		diags.AddError("Unexpected Provider Data",
			fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider: please report it.", raw))
		return nil
	}
	return d
}
