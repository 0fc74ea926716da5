package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

func TestClientErrorDetail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"invalid key", &client.Error{StatusCode: 401, Code: api.CodeInvalidKey, Message: "missing or wrong admin key", Method: "GET", Path: "/v1/engines/u1"},
			[]string{"GET /v1/engines/u1", "HTTP 401 INVALID_KEY", "The control plane rejected the API key: check api_key / ENGINE_API_KEY."}},
		{"operation in progress", fmt.Errorf("upgrade: %w", &client.Error{StatusCode: 409, Code: api.CodeOperationInProgress, Message: "busy",
			OperationID: "op-42", Method: "POST", Path: "/v1/engines/u1/upgrade"}),
			[]string{"HTTP 409 OPERATION_IN_PROGRESS", "Operation op-42 is still running", "Wait for it to finish"}},
		{"precondition", &client.Error{StatusCode: 412, Code: api.CodePreconditionFailed, Message: "generation moved", Method: "POST", Path: "/p"},
			[]string{"Run terraform plan again"}},
		{"rate limited", &client.Error{StatusCode: 429, Code: api.CodeRateLimited, Message: "slow down", Method: "GET", Path: "/p"},
			[]string{"-parallelism", "max_retries"}},
		{"server error", &client.Error{StatusCode: 503, Code: api.CodeEngineUnavailable, Message: "down", Method: "GET", Path: "/p"},
			[]string{"failed even after retries"}},
		{"field", &client.Error{StatusCode: 400, Code: api.CodeInvalidRequest, Message: "bad", Field: "version", Method: "POST", Path: "/p"},
			[]string{`(field "version")`}},
		{"not found", &client.Error{StatusCode: 404, Code: api.CodeEngineNotFound, Message: "no engine", Method: "GET", Path: "/p"},
			[]string{`data "engine_instances"`}},
		{"cancelled", fmt.Errorf("GET /p: %w", context.Canceled), []string{"cancelled"}},
		{"deadline", fmt.Errorf("GET /p: %w", context.DeadlineExceeded), []string{"did not answer in time", "request_timeout"}},
		{"transport", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), []string{"connection refused", "ENGINE_ENDPOINT"}},
	}
	for _, tc := range cases {
		got := clientErrorDetail(tc.err)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: detail %q lacks %q", tc.name, got, w)
			}
		}
	}
}

// TestClientErrorDetail_punctuation: an answer without a code has no stray space before the
// colon, and a message that ends with a full stop is not given a second one.
func TestClientErrorDetail_punctuation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *client.Error
		want string
	}{
		{&client.Error{StatusCode: 502, Message: "unexpected Bad Gateway response", Method: "GET", Path: "/v1/engines/u1"},
			"The control plane answered GET /v1/engines/u1 with HTTP 502: unexpected Bad Gateway response.\n\n"},
		{&client.Error{StatusCode: 500, Code: api.CodeInternal, Message: "brain write failed; see the control plane logs.", Method: "POST", Path: "/p"},
			"with HTTP 500 INTERNAL: brain write failed; see the control plane logs.\n\n"},
		{&client.Error{StatusCode: 400, Code: api.CodeInvalidRequest, Message: "bad version.", Field: "version", Method: "POST", Path: "/p"},
			`with HTTP 400 INVALID_REQUEST: bad version (field "version").` + "\n\n"},
		{&client.Error{StatusCode: 502, Method: "GET", Path: "/p"}, "with HTTP 502.\n\n"},
	} {
		got := clientErrorDetail(tc.err)
		if !strings.Contains(got, tc.want) || strings.Contains(got, " :") || strings.Contains(got, "..") {
			t.Errorf("detail %q, want it to contain %q", got, tc.want)
		}
	}
}
