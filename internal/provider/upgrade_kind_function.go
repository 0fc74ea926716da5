package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/function"

	"github.com/septemberai/terraform-provider-engine/internal/upgrade"
)

var _ function.Function = upgradeKindFunction{}

// NewUpgradeKindFunction is provider::engine::upgrade_kind(from, to).
func NewUpgradeKindFunction() function.Function { return upgradeKindFunction{} }

type upgradeKindFunction struct{}

func (upgradeKindFunction) Metadata(_ context.Context, _ function.MetadataRequest, resp *function.MetadataResponse) {
	resp.Name = "upgrade_kind"
}

func (upgradeKindFunction) Definition(_ context.Context, _ function.DefinitionRequest, resp *function.DefinitionResponse) {
	resp.Definition = function.Definition{
		Summary: "Classifies the move from one Engine version to another",
		MarkdownDescription: "Returns the kind of moving from `from` to `to`: " + backtickList(upgrade.Kinds) + ". " +
			"Versions are written as every resource takes them: `MAJOR.MINOR.PATCH`, optionally followed by `-PRERELEASE` and `+BUILD`; " +
			"anything else (`v2.4.0`, `2.4`) is an error naming the argument and suggesting the version to write. " +
			"Works offline: it does not consult the release catalog.",
		Parameters: []function.Parameter{
			function.StringParameter{Name: "from", MarkdownDescription: "The version an engine runs now, for example `2.3.1`."},
			function.StringParameter{Name: "to", MarkdownDescription: "The version to move to, for example `2.4.0`."},
		},
		Return: function.StringReturn{},
	}
}

func (upgradeKindFunction) Run(ctx context.Context, req function.RunRequest, resp *function.RunResponse) {
	var from, to string
	resp.Error = req.Arguments.Get(ctx, &from, &to)
	if resp.Error != nil {
		return
	}
	if _, err := upgrade.ParseVersion(from); err != nil {
		resp.Error = function.NewArgumentFuncError(0, err.Error())
		return
	}
	if _, err := upgrade.ParseVersion(to); err != nil {
		resp.Error = function.NewArgumentFuncError(1, err.Error())
		return
	}
	kind, err := upgrade.Kind(from, to)
	if err != nil {
		resp.Error = function.NewFuncError(err.Error())
		return
	}
	resp.Error = resp.Result.Set(ctx, kind)
}
