package controlplane

import (
	"net/http"
	"testing"
)

func newTestClient(t *testing.T) *http.Client { return &http.Client{} }
