package provider

// Text for diagnostics and descriptions: error texts, backticked lists, time stamps.

import (
	"errors"
	"strings"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/rollout"
)

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// rfc3339 renders a time for state: UTC, second precision, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func errText(err error) string {
	var ce *client.Error
	var oe *rollout.OperationError
	switch {
	case errors.As(err, &oe):
		return oe.Error()
	case errors.As(err, &ce):
		return clientErrorDetail(err)
	}
	return err.Error()
}

// backtickList renders values for a MarkdownDescription, each in backticks: "`a`, `b` or `c`"; it
// takes the validator's own slice, so the description lists exactly what is accepted.
func backtickList(vs []string) string {
	out := ""
	for i, v := range vs {
		switch {
		case i == 0:
		case i == len(vs)-1:
			out += " or "
		default:
			out += ", "
		}
		out += "`" + v + "`"
	}
	return out
}
