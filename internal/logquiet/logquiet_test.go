package logquiet

import "testing"

func TestApply(t *testing.T) {
	keys := []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER"}
	cases := []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"no logging asked: everything off", map[string]string{},
			map[string]string{"TF_LOG_SDK": "off", "TF_LOG_SDK_PROTO": "off", "TF_LOG_SDK_FRAMEWORK": "off", "TF_LOG_PROVIDER": "off"}},
		{"TF_LOG set: untouched", map[string]string{"TF_LOG": "debug"},
			map[string]string{}},
		{"TF_LOG_PROVIDER set: untouched", map[string]string{"TF_LOG_PROVIDER": "trace"},
			map[string]string{"TF_LOG_PROVIDER": "trace"}},
		{"an explicit SDK level is kept", map[string]string{"TF_LOG_SDK_FRAMEWORK": "trace"},
			map[string]string{"TF_LOG_SDK": "off", "TF_LOG_SDK_PROTO": "off", "TF_LOG_SDK_FRAMEWORK": "trace", "TF_LOG_PROVIDER": "off"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			Apply(func(k string) string { return env[k] }, func(k, v string) error { env[k] = v; return nil })
			for _, k := range keys {
				if env[k] != tc.want[k] {
					t.Errorf("%s = %q, want %q", k, env[k], tc.want[k])
				}
			}
		})
	}
}
