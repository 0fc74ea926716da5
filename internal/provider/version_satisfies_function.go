package provider

import (
	"context"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/terraform-plugin-framework/function"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var _ function.Function = versionSatisfiesFunction{}

// NewVersionSatisfiesFunction is provider::engine::version_satisfies(version, constraint).
func NewVersionSatisfiesFunction() function.Function { return versionSatisfiesFunction{} }

type versionSatisfiesFunction struct{}

func (versionSatisfiesFunction) Metadata(_ context.Context, _ function.MetadataRequest, resp *function.MetadataResponse) {
	resp.Name = "version_satisfies"
}

func (versionSatisfiesFunction) Definition(_ context.Context, _ function.DefinitionRequest, resp *function.DefinitionResponse) {
	resp.Definition = function.Definition{
		Summary: "Checks an Engine version against a version constraint",
		MarkdownDescription: "Returns `true` when `version` meets `constraint`, written in Terraform's version constraint syntax " +
			"(`>= 2.3.0`, `~> 2.4`, `>= 2.3, < 3.0`). `version` is written as every resource takes it: `MAJOR.MINOR.PATCH`, " +
			"optionally followed by `-PRERELEASE` and `+BUILD` (`v2.4.0` and `2.4` are errors). A malformed version or constraint " +
			"is an error naming the argument.",
		Parameters: []function.Parameter{
			function.StringParameter{Name: "version", MarkdownDescription: "A semantic version, for example `2.4.0`."},
			function.StringParameter{Name: "constraint", MarkdownDescription: "A version constraint, for example `~> 2.4`."},
		},
		Return: function.BoolReturn{},
	}
}

func (versionSatisfiesFunction) Run(ctx context.Context, req function.RunRequest, resp *function.RunResponse) {
	var v, constraint string
	resp.Error = req.Arguments.Get(ctx, &v, &constraint)
	if resp.Error != nil {
		return
	}
	if _, err := upgrade.ParseVersion(v); err != nil {
		resp.Error = function.NewArgumentFuncError(0, err.Error())
		return
	}
	// Checked here, not only inside Satisfies, so the error points at the right argument.
	if _, err := version.NewConstraint(constraint); err != nil {
		resp.Error = function.NewArgumentFuncError(1, quoteShort(constraint)+" is not a valid version constraint "+
			"(examples: \">= 2.3.0\", \"~> 2.4\", \">= 2.3, < 3.0\")")
		return
	}
	ok, err := upgrade.Satisfies(v, constraint)
	if err != nil {
		resp.Error = function.NewFuncError(err.Error())
		return
	}
	resp.Error = resp.Result.Set(ctx, ok)
}
