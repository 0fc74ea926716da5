// Package policy evaluates the example Rego policy in examples/policy over `terraform show -json`
// plan output with OPA's Go module, the same evaluation `opa eval` and conftest do. Its tests run
// real terraform plans against the local control plane (internal/localrun) so the rules are
// checked against the JSON Terraform really writes, not hand-made fixtures.
package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/rego"
)

// Query is the rule set the example policy defines: a set of denial messages.
const Query = "data.engine.terraform.deny"

// Deny evaluates the Rego files under policyDir over one plan's JSON and returns the denial
// messages, sorted; none means the plan passes.
func Deny(ctx context.Context, policyDir string, planJSON []byte) ([]string, error) {
	var input any
	if err := json.Unmarshal(planJSON, &input); err != nil {
		return nil, fmt.Errorf("plan JSON: %w (pass the output of terraform show -json)", err)
	}
	rs, err := rego.New(rego.Query(Query), rego.Load([]string{policyDir}, nil), rego.Input(input)).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", policyDir, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("evaluate %s: %s gave %d results, want one set", policyDir, Query, len(rs))
	}
	set, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return nil, fmt.Errorf("evaluate %s: %s is %T, want a set of strings", policyDir, Query, rs[0].Expressions[0].Value)
	}
	out := make([]string, 0, len(set))
	for _, v := range set {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("evaluate %s: a denial is %T, want a string", policyDir, v)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
