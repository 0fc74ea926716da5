package main

import "testing"

func TestMemoryLimit(t *testing.T) {
	if got, ok := memoryLimit(func(string) string { return "" }); !ok || got != defaultMemoryLimit {
		t.Errorf("memoryLimit with GOMEMLIMIT unset = %d, %v; want %d, true", got, ok, defaultMemoryLimit)
	}
	env := map[string]string{"GOMEMLIMIT": "1GiB"}
	if _, ok := memoryLimit(func(k string) string { return env[k] }); ok {
		t.Error("memoryLimit overrode a GOMEMLIMIT the user set")
	}
}
