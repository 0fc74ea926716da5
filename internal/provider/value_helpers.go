package provider

// Converters between Terraform values (lists, maps, optional strings) and Go values.

import (
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// listStrings reads a list of strings; ok is false while any part is unknown.
func listStrings(l types.List) ([]string, bool) {
	if l.IsNull() {
		return nil, true
	}
	if l.IsUnknown() {
		return nil, false
	}
	out := make([]string, 0, len(l.Elements()))
	for _, e := range l.Elements() {
		s, ok := e.(types.String)
		if !ok || s.IsUnknown() {
			return nil, false
		}
		out = append(out, s.ValueString())
	}
	return out, true
}

func listInts(l types.List) ([]int64, bool) {
	if l.IsNull() {
		return nil, true
	}
	if l.IsUnknown() {
		return nil, false
	}
	out := make([]int64, 0, len(l.Elements()))
	for _, e := range l.Elements() {
		v, ok := e.(types.Int64)
		if !ok || v.IsUnknown() {
			return nil, false
		}
		out = append(out, v.ValueInt64())
	}
	return out, true
}

func mapStrings(m types.Map) map[string]string {
	out := map[string]string{}
	if m.IsNull() || m.IsUnknown() {
		return out
	}
	for k, v := range m.Elements() {
		if s, ok := v.(types.String); ok && !s.IsUnknown() && !s.IsNull() {
			out[k] = s.ValueString()
		}
	}
	return out
}

func stringListValue(vs []string) types.List {
	els := make([]attr.Value, len(vs))
	for i, v := range vs {
		els[i] = types.StringValue(v)
	}
	return types.ListValueMust(types.StringType, els)
}

func stringMap(m map[string]string) types.Map {
	els := make(map[string]attr.Value, len(m))
	for k, v := range m {
		els[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, els)
}

func optionalString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func stringList(ss []string) []types.String {
	out := make([]types.String, 0, len(ss))
	for _, s := range ss {
		out = append(out, types.StringValue(s))
	}
	return out
}
