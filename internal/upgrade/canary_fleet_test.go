package upgrade

import (
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// The canary's fleet rules: unknown users and an unallowed major refuse; an engine above the
// canary's version is held, not refused, whatever else is wrong.
func TestCheckCanary(t *testing.T) {
	c := testCatalog(t)
	fleet := map[string]api.Engine{"a": engineAt("2.3.1", 4), "b": engineAt("2.4.1", 5), "c": engineAt("2.4.0", 5), "d": engineAt("2.2.0", 3)}
	got := CheckCanary(c, fleet, []string{"a", "b", "c", "d"}, "2.4.0", false)
	if len(got.Errors) != 0 || len(got.Held) != 1 || got.Held["b"] != "2.4.1" {
		t.Fatalf("%+v", got)
	}
	got = CheckCanary(c, fleet, []string{"a", "b", "x"}, "3.0.0", false)
	if !hasProblem(got.Errors, "user_ids", "Unknown Users") || !hasProblem(got.Errors, "version", "Major Upgrade Not Allowed") || len(got.Held) != 0 {
		t.Fatalf("%+v", got)
	}
	if !strings.Contains(got.Errors[1].Detail, "2 engines (a (2.3.1), b (2.4.1))") {
		t.Errorf("major: %s", got.Errors[1].Detail)
	}
	if got = CheckCanary(c, fleet, []string{"a"}, "9.9.9", false); !hasProblem(got.Errors, "version", "Unknown Engine Version") {
		t.Fatalf("%+v", got)
	}
	if w := Without([]string{"a", "b", "c"}, map[string]string{"b": "2.4.1"}); strings.Join(w, ",") != "a,c" {
		t.Errorf("Without: %v", w)
	}
}

// The warning names each held engine, the version it runs and every way out; the refusal names
// the engines a step would move back.
func TestCanaryDriftProblems(t *testing.T) {
	held := map[string]string{"user-0003": "2.4.1", "user-0001": "3.0.0"}
	w := CanaryDriftAbove("2.4.0", held)
	for _, want := range []string{"2 engines in user_ids above 2.4.0", "user-0001 (3.0.0), user-0003 (2.4.1)", "take them out of user_ids",
		"roll out a version at least as new", `version = "2.4.0" and allow_downgrade = true`} {
		if !strings.Contains(w.Detail, want) {
			t.Errorf("warning %q does not say %q", w.Detail, want)
		}
	}
	if e := CanaryWouldDowngrade("2.4.0", map[string]string{"user-0003": "2.4.1"}); e.Summary != "Canary Would Downgrade" || !strings.Contains(e.Detail, "user-0003 (2.4.1)") {
		t.Errorf("%+v", e)
	}
}
