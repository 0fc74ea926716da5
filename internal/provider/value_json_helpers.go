package provider

// Terraform values to and from their JSON encoding, for state attributes kept as JSON (the
// canary's record on the control plane).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// setFromJSON sets attribute name of st from its JSON value (null when b is empty).
func setFromJSON(ctx context.Context, st *tfsdk.State, name string, b json.RawMessage) diag.Diagnostics {
	var diags diag.Diagnostics
	typ, d := st.Schema.TypeAtPath(ctx, path.Root(name))
	diags.Append(d...)
	if diags.HasError() {
		return diags
	}
	if len(b) == 0 {
		b = json.RawMessage("null")
	}
	var plain any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&plain)
	var tv tftypes.Value
	if err == nil {
		tv, err = terraformValue(typ.TerraformType(ctx), plain)
	}
	var v attr.Value
	if err == nil {
		v, err = typ.ValueFromTerraform(ctx, tv)
	}
	if err != nil {
		diags.AddAttributeError(path.Root(name), "Canary Record Unreadable", fmt.Sprintf("The record's %s does not fit the "+
			"attribute: %v.", name, err))
		return diags
	}
	return st.SetAttribute(ctx, path.Root(name), v)
}

// valueJSON is v as Terraform's JSON encoding of values (what tftypes.ValueFromJSON reads).
func valueJSON(ctx context.Context, v attr.Value) (json.RawMessage, error) {
	tv, err := v.ToTerraformValue(ctx)
	if err != nil {
		return nil, err
	}
	plain, err := plainValue(tv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(plain)
}

// terraformValue is plain (decoded with UseNumber) as a value of t: plainValue's inverse. An
// object attribute the JSON lacks is null.
func terraformValue(t tftypes.Type, plain any) (tftypes.Value, error) {
	if plain == nil {
		return tftypes.NewValue(t, nil), nil
	}
	switch tt := t.(type) {
	case tftypes.List:
		return elementsValue(t, tt.ElementType, plain)
	case tftypes.Set:
		return elementsValue(t, tt.ElementType, plain)
	case tftypes.Map:
		m, _ := plain.(map[string]any)
		return fieldsValue(t, m, m, func(string) tftypes.Type { return tt.ElementType })
	case tftypes.Object:
		m, _ := plain.(map[string]any)
		names := map[string]any{}
		for name := range tt.AttributeTypes {
			names[name] = nil
		}
		return fieldsValue(t, m, names, func(name string) tftypes.Type { return tt.AttributeTypes[name] })
	}
	switch x := plain.(type) {
	case string:
		if t.Is(tftypes.String) {
			return tftypes.NewValue(t, x), nil
		}
	case bool:
		if t.Is(tftypes.Bool) {
			return tftypes.NewValue(t, x), nil
		}
	case json.Number:
		if f, _, err := big.ParseFloat(x.String(), 10, 512, big.ToNearestEven); err == nil && t.Is(tftypes.Number) {
			return tftypes.NewValue(t, f), nil
		}
	}
	return tftypes.Value{}, fmt.Errorf("%v is not a %s", plain, t)
}

func elementsValue(t, elem tftypes.Type, plain any) (tftypes.Value, error) {
	xs, ok := plain.([]any)
	if !ok {
		return tftypes.Value{}, fmt.Errorf("%v is not a %s", plain, t)
	}
	out := make([]tftypes.Value, len(xs))
	for i, x := range xs {
		var err error
		if out[i], err = terraformValue(elem, x); err != nil {
			return tftypes.Value{}, err
		}
	}
	return tftypes.NewValue(t, out), nil
}

// fieldsValue builds a map or object of t with a field for each key of keys, from m.
func fieldsValue(t tftypes.Type, m, keys map[string]any, typeOf func(string) tftypes.Type) (tftypes.Value, error) {
	if m == nil {
		return tftypes.Value{}, fmt.Errorf("not a JSON object where a %s belongs", t)
	}
	out := make(map[string]tftypes.Value, len(keys))
	for k := range keys {
		var err error
		if out[k], err = terraformValue(typeOf(k), m[k]); err != nil {
			return tftypes.Value{}, err
		}
	}
	return tftypes.NewValue(t, out), nil
}

func plainValue(v tftypes.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsFullyKnown() {
		return nil, fmt.Errorf("value not known yet")
	}
	switch t := v.Type(); {
	case t.Is(tftypes.String):
		var s string
		return s, v.As(&s)
	case t.Is(tftypes.Bool):
		var b bool
		return b, v.As(&b)
	case t.Is(tftypes.Number):
		var f big.Float
		if err := v.As(&f); err != nil {
			return nil, err
		}
		return json.Number(f.Text('g', -1)), nil
	case t.Is(tftypes.List{}) || t.Is(tftypes.Set{}) || t.Is(tftypes.Tuple{}):
		var xs []tftypes.Value
		if err := v.As(&xs); err != nil {
			return nil, err
		}
		out := make([]any, len(xs))
		for i, x := range xs {
			var err error
			if out[i], err = plainValue(x); err != nil {
				return nil, err
			}
		}
		return out, nil
	default:
		var m map[string]tftypes.Value
		if err := v.As(&m); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			var err error
			if out[k], err = plainValue(x); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}
