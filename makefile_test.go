package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeWithoutTerraform runs make in this checkout as a fresh machine would: with a PATH that
// keeps every directory except the ones holding a terraform binary, no TF_ACC_TERRAFORM_PATH,
// and no flags of an outer make. OpenTofu is a stand-in script named as the makefile's own
// build (tofu), so nothing is built.
func makeWithoutTerraform(t *testing.T, tofu string, args ...string) (string, error) {
	t.Helper()
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make is not on PATH")
	}
	var path []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if st, err := os.Stat(filepath.Join(dir, "terraform")); err == nil && !st.IsDir() {
			continue
		}
		path = append(path, dir)
	}
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "PATH", "TF_ACC_TERRAFORM_PATH", "TF_ACC_PROVIDER_NAMESPACE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		env = append(env, kv)
	}
	cmd := exec.Command(makeBin, append([]string{"--no-print-directory", "TOFU=" + tofu}, args...)...)
	cmd.Env = append(env, "PATH="+strings.Join(path, string(filepath.ListSeparator)))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// `make test` on a machine without terraform: check-terraform falls back to the OpenTofu build
// the makefile makes from the module proxy, and says so; the acceptance tests, the chaos suite,
// the docs and the demo all run that binary, the tests with the provider namespace tofu needs.
func TestMakefile_noTerraformFallsBackToOpenTofu(t *testing.T) {
	tofu := filepath.Join(t.TempDir(), "tofu-v1.12.6")
	if err := os.WriteFile(tofu, []byte("#!/bin/sh\necho 'OpenTofu v1.12.6'\necho 'on linux_amd64'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := makeWithoutTerraform(t, tofu, "check-terraform")
	if err != nil {
		t.Fatalf("make check-terraform without terraform on PATH failed: %v\n%s", err, out)
	}
	for _, want := range []string{"falling back to OpenTofu v1.12.6", "terraform for acceptance tests: " + tofu + " (OpenTofu v1.12.6)"} {
		if !strings.Contains(out, want) {
			t.Errorf("make check-terraform does not say %q:\n%s", want, out)
		}
	}

	out, err = makeWithoutTerraform(t, tofu, "-n", "testacc", "chaos", "docs", "docs-validate", "demo")
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	for _, want := range []string{
		`TF_ACC=1 TF_ACC_TERRAFORM_PATH="` + tofu + `" TF_ACC_PROVIDER_NAMESPACE=hashicorp go test -count=1 -run '^TestAcc' -skip '^TestAccChaos'`,
		`TF_ACC_TERRAFORM_PATH="` + tofu + `" TF_ACC_PROVIDER_NAMESPACE=hashicorp CHAOS_TALLY_FILE=`,
		`"` + tofu + `" providers schema -json`,
		"tfplugindocs generate --provider-name engine --providers-schema ",
		"tfplugindocs validate --provider-name engine --providers-schema ",
		`TF_ACC_TERRAFORM_PATH="` + tofu + `" go run ./internal/cmd/engine-demo`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("without terraform, make -n testacc chaos docs docs-validate demo runs nothing like %q:\n%s", want, out)
		}
	}
}
