package tfplugin

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

func (t Type) tf() tftypes.Type {
	switch t.Kind {
	case String:
		return tftypes.String
	case Number:
		return tftypes.Number
	case Bool:
		return tftypes.Bool
	case List:
		return tftypes.List{ElementType: t.Elem.tf()}
	case Map:
		return tftypes.Map{ElementType: t.Elem.tf()}
	case Object:
		attrs := make(map[string]tftypes.Type, len(t.Attrs))
		for k, a := range t.Attrs {
			attrs[k] = a.tf()
		}
		return tftypes.Object{AttributeTypes: attrs}
	case Dynamic:
		return tftypes.DynamicPseudoType
	}
	panic(fmt.Sprintf("tfplugin: invalid type kind %d", t.Kind))
}

// toTF builds a tftypes value of type t from plain Go data. A missing
// object attribute is null.
func toTF(t Type, v any) (tftypes.Value, error) {
	if t.Kind == Dynamic {
		return dynamicToTF(v)
	}
	tt := t.tf()
	switch v.(type) {
	case nil:
		return tftypes.NewValue(tt, nil), nil
	case Unknown:
		return tftypes.NewValue(tt, tftypes.UnknownValue), nil
	}
	switch t.Kind {
	case String:
		s, ok := v.(string)
		if !ok {
			return tftypes.Value{}, fmt.Errorf("want a string, got %T", v)
		}
		return tftypes.NewValue(tt, s), nil
	case Number:
		var f *big.Float
		switch n := v.(type) {
		case float64:
			f = big.NewFloat(n)
		case int:
			f = new(big.Float).SetInt64(int64(n))
		case int64:
			f = new(big.Float).SetInt64(n)
		case json.Number:
			var ok bool
			if f, ok = new(big.Float).SetString(n.String()); !ok {
				return tftypes.Value{}, fmt.Errorf("%q is not a number", n)
			}
		default:
			return tftypes.Value{}, fmt.Errorf("want a number, got %T", v)
		}
		return tftypes.NewValue(tt, f), nil
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return tftypes.Value{}, fmt.Errorf("want a bool, got %T", v)
		}
		return tftypes.NewValue(tt, b), nil
	case List:
		l, ok := v.([]any)
		if !ok {
			return tftypes.Value{}, fmt.Errorf("want a list, got %T", v)
		}
		out := make([]tftypes.Value, len(l))
		for i, e := range l {
			ev, err := toTF(*t.Elem, e)
			if err != nil {
				return tftypes.Value{}, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = ev
		}
		return tftypes.NewValue(tt, out), nil
	case Map, Object:
		m, ok := v.(map[string]any)
		if !ok {
			return tftypes.Value{}, fmt.Errorf("want a map or object, got %T", v)
		}
		out := map[string]tftypes.Value{}
		if t.Kind == Map {
			for k, e := range m {
				ev, err := toTF(*t.Elem, e)
				if err != nil {
					return tftypes.Value{}, fmt.Errorf("[%q]: %w", k, err)
				}
				out[k] = ev
			}
		} else {
			for k := range m {
				if _, ok := t.Attrs[k]; !ok {
					return tftypes.Value{}, fmt.Errorf("unexpected attribute %q", k)
				}
			}
			for k, at := range t.Attrs {
				ev, err := toTF(at, m[k])
				if err != nil {
					return tftypes.Value{}, fmt.Errorf(".%s: %w", k, err)
				}
				out[k] = ev
			}
		}
		return tftypes.NewValue(tt, out), nil
	}
	return tftypes.Value{}, fmt.Errorf("invalid type")
}

// dynamicToTF builds a value of a dynamic attribute, its type taken
// from the Go data: strings, numbers and bools, lists as tuples and maps
// as objects.
func dynamicToTF(v any) (tftypes.Value, error) {
	switch x := v.(type) {
	case nil:
		return tftypes.NewValue(tftypes.DynamicPseudoType, nil), nil
	case Unknown:
		return tftypes.NewValue(tftypes.DynamicPseudoType, tftypes.UnknownValue), nil
	case string:
		return toTF(StringType, x)
	case bool:
		return toTF(BoolType, x)
	case float64, int, int64, json.Number:
		return toTF(NumberType, x)
	case []any:
		types := make([]tftypes.Type, len(x))
		vals := make([]tftypes.Value, len(x))
		for i, e := range x {
			ev, err := dynamicToTF(e)
			if err != nil {
				return tftypes.Value{}, fmt.Errorf("[%d]: %w", i, err)
			}
			types[i], vals[i] = ev.Type(), ev
		}
		return tftypes.NewValue(tftypes.Tuple{ElementTypes: types}, vals), nil
	case map[string]any:
		types := make(map[string]tftypes.Type, len(x))
		vals := make(map[string]tftypes.Value, len(x))
		for k, e := range x {
			ev, err := dynamicToTF(e)
			if err != nil {
				return tftypes.Value{}, fmt.Errorf(".%s: %w", k, err)
			}
			types[k], vals[k] = ev.Type(), ev
		}
		return tftypes.NewValue(tftypes.Object{AttributeTypes: types}, vals), nil
	}
	return tftypes.Value{}, fmt.Errorf("a dynamic value cannot hold %T", v)
}

// fromTF turns a tftypes value into plain Go data.
func fromTF(v tftypes.Value) (any, error) {
	if !v.IsKnown() {
		return Unknown{}, nil
	}
	if v.IsNull() {
		return nil, nil
	}
	t := v.Type()
	switch {
	case t.Is(tftypes.String):
		var s string
		err := v.As(&s)
		return s, err
	case t.Is(tftypes.Number):
		var f big.Float
		if err := v.As(&f); err != nil {
			return nil, err
		}
		n, _ := f.Float64()
		return n, nil
	case t.Is(tftypes.Bool):
		var b bool
		err := v.As(&b)
		return b, err
	case t.Is(tftypes.List{}), t.Is(tftypes.Set{}), t.Is(tftypes.Tuple{}):
		var l []tftypes.Value
		if err := v.As(&l); err != nil {
			return nil, err
		}
		out := make([]any, len(l))
		for i, e := range l {
			ev, err := fromTF(e)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	case t.Is(tftypes.Map{}), t.Is(tftypes.Object{}):
		var m map[string]tftypes.Value
		if err := v.As(&m); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			ev, err := fromTF(e)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

// decode unmarshals a DynamicValue of a block's type into an object (nil
// for null).
func decode(b Block, dv *tfprotov6.DynamicValue) (map[string]any, error) {
	if dv == nil {
		return nil, nil
	}
	v, err := dv.Unmarshal(b.ValueType().tf())
	if err != nil {
		return nil, err
	}
	out, err := fromTF(v)
	if err != nil || out == nil {
		return nil, err
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object, got %T", out)
	}
	return m, nil
}

// encode marshals an object of a block's type (nil for null).
func encode(b Block, obj map[string]any) (*tfprotov6.DynamicValue, error) {
	t := b.ValueType()
	var v any
	if obj != nil {
		v = obj
	}
	tv, err := toTF(t, v)
	if err != nil {
		return nil, err
	}
	dv, err := tfprotov6.NewDynamicValue(t.tf(), tv)
	return &dv, err
}

func (p Path) tf() *tftypes.AttributePath {
	if len(p) == 0 {
		return nil
	}
	ap := tftypes.NewAttributePath()
	for _, s := range p {
		switch s := s.(type) {
		case string:
			ap = ap.WithAttributeName(s)
		case int:
			ap = ap.WithElementKeyInt(s)
		case Key:
			ap = ap.WithElementKeyString(string(s))
		}
	}
	return ap
}

func (ds Diagnostics) tf() []*tfprotov6.Diagnostic {
	out := make([]*tfprotov6.Diagnostic, 0, len(ds))
	for _, d := range ds {
		sev := tfprotov6.DiagnosticSeverityError
		if d.Severity == Warning {
			sev = tfprotov6.DiagnosticSeverityWarning
		}
		out = append(out, &tfprotov6.Diagnostic{Severity: sev, Summary: d.Summary, Detail: d.Detail, Attribute: d.Path.tf()})
	}
	return out
}

// plainJSON turns decoded JSON into plain Go data, numbers as float64.
func plainJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainJSON(e)
		}
		return out
	}
	return v
}

// FitJSON conforms a stored JSON object (a state of an older schema) to
// the block: attributes the block no longer has are dropped (their paths
// are returned), attributes it gained are null, numbers become float64.
// A value of the wrong shape is an error naming its path.
func FitJSON(b Block, raw map[string]any) (map[string]any, []Path, error) {
	var dropped []Path
	out, err := fitObject(b, raw, nil, &dropped)
	return out, dropped, err
}

func fitObject(b Block, raw map[string]any, at Path, dropped *[]Path) (map[string]any, error) {
	out := map[string]any{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := append(append(Path(nil), at...), k)
		if a, ok := b.Attribute(k); ok {
			v, err := fitValue(a.Type, raw[k], p)
			if err != nil {
				return nil, err
			}
			out[k] = v
			continue
		}
		if nb, ok := b.NestedBlock(k); ok {
			v, err := fitBlock(nb, raw[k], p, dropped)
			if err != nil {
				return nil, err
			}
			out[k] = v
			continue
		}
		*dropped = append(*dropped, p)
	}
	for _, nb := range b.Blocks {
		if _, ok := out[nb.Name]; !ok && nb.Nesting == ListNesting {
			out[nb.Name] = []any{} // Terraform keeps absent list blocks as empty lists
		}
	}
	return out, nil
}

func fitBlock(nb NestedBlock, v any, at Path, dropped *[]Path) (any, error) {
	if v == nil {
		if nb.Nesting == ListNesting {
			return []any{}, nil
		}
		return nil, nil
	}
	if nb.Nesting == Single {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want an object, got %T", at, v)
		}
		return fitObject(nb.Block, m, at, dropped)
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list, got %T", at, v)
	}
	out := make([]any, len(l))
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want an object, got %T", append(at, i), e)
		}
		o, err := fitObject(nb.Block, m, append(append(Path(nil), at...), i), dropped)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

func fitValue(t Type, v any, at Path) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() error { return fmt.Errorf("%s: want %s, got %T", at, t, v) }
	switch t.Kind {
	case Dynamic:
		// Terraform stores a dynamic value with its type; a state of
		// an older schema holds the plain value.
		if m, ok := v.(map[string]any); ok && len(m) == 2 && m["type"] != nil {
			if inner, ok := m["value"]; ok {
				v = inner
			}
		}
		return plainJSON(v), nil
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Number:
		switch n := v.(type) {
		case float64:
			return n, nil
		case json.Number:
			return n.Float64()
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case List:
		l, ok := v.([]any)
		if !ok {
			return nil, bad()
		}
		out := make([]any, len(l))
		for i, e := range l {
			ev, err := fitValue(*t.Elem, e, append(append(Path(nil), at...), i))
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	case Map, Object:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad()
		}
		out := map[string]any{}
		for k, e := range m {
			et := t.Elem
			if t.Kind == Object {
				a, ok := t.Attrs[k]
				if !ok {
					continue
				}
				et = &a
			}
			ev, err := fitValue(*et, e, append(append(Path(nil), at...), Key(k)))
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	}
	return nil, bad()
}
