// Package logquiet turns the plugin SDK's log output off in a provider process when Terraform is
// not collecting provider logs.
package logquiet

import "os"

// UnlessLogging applies Apply to the process environment. Call it before serving.
func UnlessLogging() { Apply(os.Getenv, os.Setenv) }

// Apply turns the plugin SDK's and the provider's log output off when Terraform is not
// collecting provider logs. go-plugin serves every provider at TRACE and Terraform parses and
// drops each line itself unless TF_LOG or TF_LOG_PROVIDER is set; writing and parsing those
// lines was about a third of a no-change plan's CPU (engine-bench, docs/guides/benchmarks.md).
// A level the user set explicitly for an SDK subsystem is left alone.
func Apply(getenv func(string) string, setenv func(string, string) error) {
	if getenv("TF_LOG") != "" || getenv("TF_LOG_PROVIDER") != "" {
		return
	}
	for _, k := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER"} {
		if getenv(k) == "" {
			_ = setenv(k, "off")
		}
	}
}
