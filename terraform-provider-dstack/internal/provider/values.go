package provider

import (
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// configNode turns a resource's Terraform value into the syntax-neutral
// tree the model's decoder reads, so that a Terraform configuration goes
// through the same decoding and validation as YAML and HCL. Null values
// are left out, as if not written; unknown ones become unknown nodes,
// which validation skips.
func configNode(kind lang.Kind, obj map[string]any) *lang.Node {
	t := reflect.TypeOf(lang.NewSpec(kind)).Elem()
	n := structNode(t, obj, true)
	n.Entries = append([]lang.Entry{{Key: "type", Value: scalar(string(kind), lang.String)}}, n.Entries...)
	return n
}

func scalar(text string, typ lang.ScalarType) *lang.Node {
	return &lang.Node{Kind: lang.ScalarNode, Text: text, Type: typ}
}

func structNode(t reflect.Type, obj map[string]any, top bool) *lang.Node {
	n := &lang.Node{Kind: lang.MapNode}
	for _, f := range lang.Fields(t) {
		if top && f.Name == "type" {
			continue
		}
		v, ok := obj[f.Name]
		if !ok || v == nil {
			continue
		}
		if vn := valueNode(shapeOf(f.Type), v); vn != nil {
			n.Entries = append(n.Entries, lang.Entry{Key: f.Name, Value: vn})
		}
	}
	return n
}

func valueNode(sh shape, v any) *lang.Node {
	if v == nil {
		return nil
	}
	if tfplugin.IsUnknown(v) {
		return &lang.Node{Kind: lang.UnknownNode, Ref: "(known after apply)"}
	}
	switch sh.kind {
	case shapeAttr:
		return attrNode(sh.typ, sh.stringForm, v)
	case shapeBlock:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		return structNode(sh.elem, m, false)
	case shapeBlockList:
		l, _ := v.([]any)
		out := &lang.Node{Kind: lang.ListNode}
		for _, e := range l {
			if tfplugin.IsUnknown(e) {
				out.Items = append(out.Items, &lang.Node{Kind: lang.UnknownNode})
				continue
			}
			m, _ := e.(map[string]any)
			out.Items = append(out.Items, structNode(sh.elem, m, false))
		}
		return out
	}
	return nil
}

func attrNode(t tfplugin.Type, stringForm bool, v any) *lang.Node {
	if tfplugin.IsUnknown(v) {
		return &lang.Node{Kind: lang.UnknownNode, Ref: "(known after apply)"}
	}
	if t.Kind == tfplugin.Dynamic {
		return dynamicNode(v)
	}
	switch v := v.(type) {
	case string:
		if stringForm {
			return sniff(v)
		}
		return scalar(v, lang.String)
	case bool:
		return scalar(strconv.FormatBool(v), lang.Bool)
	case float64:
		if v == float64(int64(v)) {
			return scalar(strconv.FormatInt(int64(v), 10), lang.Int)
		}
		return scalar(strconv.FormatFloat(v, 'g', -1, 64), lang.Float)
	case []any:
		out := &lang.Node{Kind: lang.ListNode}
		for _, e := range v {
			if e == nil {
				out.Items = append(out.Items, &lang.Node{Kind: lang.NullNode})
				continue
			}
			out.Items = append(out.Items, attrNode(*t.Elem, stringForm, e))
		}
		return out
	case map[string]any:
		out := &lang.Node{Kind: lang.MapNode}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			e := v[k]
			if e == nil {
				continue
			}
			out.Entries = append(out.Entries, lang.Entry{Key: k, Value: attrNode(*t.Elem, false, e)})
		}
		return out
	}
	return nil
}

// dynamicNode turns the value of a dynamic attribute, of whatever type
// the configuration gave it, into the node its YAML form would be:
// objects are mappings (their null attributes left out, as if not
// written), lists and tuples sequences, strings sniffed as string forms.
func dynamicNode(v any) *lang.Node {
	switch v := v.(type) {
	case nil:
		return &lang.Node{Kind: lang.NullNode}
	case tfplugin.Unknown:
		return &lang.Node{Kind: lang.UnknownNode, Ref: "(known after apply)"}
	case string:
		return sniff(v)
	case []any:
		out := &lang.Node{Kind: lang.ListNode}
		for _, e := range v {
			out.Items = append(out.Items, dynamicNode(e))
		}
		return out
	case map[string]any:
		out := &lang.Node{Kind: lang.MapNode}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if v[k] == nil {
				continue
			}
			out.Entries = append(out.Entries, lang.Entry{Key: k, Value: dynamicNode(v[k])})
		}
		return out
	}
	return attrNode(tfplugin.StringType, false, v)
}

// sniff gives a string-form value the scalar type it would have in YAML,
// for the forms that tell types apart ("2" blocks, "false" gateway).
func sniff(s string) *lang.Node {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return scalar(s, lang.Int)
	}
	if s == "true" || s == "false" {
		return scalar(s, lang.Bool)
	}
	return scalar(s, lang.String)
}

// decodeConfig decodes and validates a resource's Terraform value with
// the model's decoder. Problems come back as diagnostics on the
// attribute at fault.
func decodeConfig(kind lang.Kind, b tfplugin.Block, obj map[string]any) (*lang.Resource, tfplugin.Diagnostics) {
	name, _ := obj["name"].(string)
	raw := lang.RawResource{Body: configNode(kind, obj), DefaultName: name, Syntax: "terraform"}
	res, ldiags := lang.DecodeResource(raw)
	var diags tfplugin.Diagnostics
	for _, d := range ldiags {
		sev := tfplugin.Error
		if d.Severity == lang.Warning {
			sev = tfplugin.Warning
		}
		detail := d.Detail
		path := attrPath(b, d.Field)
		if d.Field != "" && len(path) == 0 {
			detail = strings.TrimSpace(fmt.Sprintf("%s (at %s)", detail, d.Field))
		}
		diags = append(diags, tfplugin.Diagnostic{Severity: sev, Summary: d.Summary, Detail: detail, Path: path})
	}
	return res, diags
}

// attrPath turns a model field path ("resources.gpu", "ports[1]",
// "env.HF_TOKEN") into the Terraform attribute path, following the
// schema: map keys may hold dots ("tags.kubernetes.io/name").
func attrPath(b tfplugin.Block, field string) tfplugin.Path {
	var out tfplugin.Path
	rest := field
	for rest != "" {
		rest = strings.TrimPrefix(rest, ".")
		end := strings.IndexAny(rest, ".[")
		if end < 0 {
			end = len(rest)
		}
		name := rest[:end]
		rest = rest[end:]
		if a, ok := b.Attribute(name); ok {
			out = append(out, name)
			switch {
			case a.Type.Kind == tfplugin.Map && strings.HasPrefix(rest, "."):
				return append(out, tfplugin.Key(rest[1:]))
			case a.Type.Kind == tfplugin.List && strings.HasPrefix(rest, "["):
				if i, _, ok := index(rest); ok {
					out = append(out, i)
				}
			}
			return out
		}
		nb, ok := b.NestedBlock(name)
		if !ok {
			return out
		}
		out = append(out, name)
		if nb.Nesting == tfplugin.ListNesting {
			i, r, ok := index(rest)
			if !ok {
				return out
			}
			out, rest = append(out, i), r
		}
		b = nb.Block
	}
	return out
}

func index(s string) (int, string, bool) {
	if !strings.HasPrefix(s, "[") {
		return 0, s, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0, s, false
	}
	i, err := strconv.Atoi(s[1:end])
	return i, s[end+1:], err == nil
}

// specValue renders a model value as the Terraform value of its
// configuration attributes (computed ones are left out): what import
// writes into state. Zero values are null, as if not written; absent
// repeatable blocks are empty lists, as Terraform keeps them.
func specValue(spec lang.Spec) map[string]any {
	v := reflect.ValueOf(spec).Elem()
	return structValue(v, true)
}

func structValue(v reflect.Value, top bool) map[string]any {
	out := map[string]any{}
	for _, f := range lang.Fields(v.Type()) {
		if top && f.Name == "type" {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		sh := shapeOf(f.Type)
		switch sh.kind {
		case shapeAttr:
			out[f.Name] = attrValue(sh, fv)
		case shapeBlock:
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					out[f.Name] = nil
					continue
				}
				fv = fv.Elem()
			}
			out[f.Name] = structValue(fv, false)
		case shapeBlockList:
			l := []any{}
			for i := range fv.Len() {
				e := fv.Index(i)
				if e.Kind() == reflect.Pointer {
					e = e.Elem()
				}
				l = append(l, structValue(e, false))
			}
			out[f.Name] = l
		}
	}
	return out
}

func attrValue(sh shape, v reflect.Value) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == envType {
		env := v.Interface().(lang.Env)
		if len(env) == 0 {
			return nil
		}
		m := map[string]any{}
		for _, e := range env {
			if e.Value != nil {
				m[e.Name] = *e.Value
			}
		}
		return m
	}
	if sh.typ.Kind == tfplugin.Dynamic {
		return dynamicValue(v)
	}
	if sh.stringForm && v.Kind() != reflect.Slice {
		return formString(v)
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return nil
		}
		return v.String()
	case reflect.Bool:
		if !v.Bool() {
			return nil
		}
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() == 0 {
			return nil
		}
		return float64(v.Int())
	case reflect.Float32, reflect.Float64:
		if v.Float() == 0 {
			return nil
		}
		return v.Float()
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		if sh.stringForm && v.Type().Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
			return formString(v)
		}
		l := make([]any, v.Len())
		for i := range v.Len() {
			e := v.Index(i)
			if sh.stringForm {
				l[i] = formString(e)
			} else {
				l[i] = e.String()
			}
		}
		return l
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		m := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			m[iter.Key().String()] = iter.Value().String()
		}
		return m
	}
	return nil
}

// dynamicValue renders a model value of a dynamic attribute in its
// simplest form that says it all: fleet nodes as a number or range
// unless a target is set, replicas as a range unless grouped, free-form
// values as written.
func dynamicValue(v reflect.Value) any {
	if v.Kind() == reflect.Slice && v.Len() == 0 {
		return nil
	}
	switch x := v.Interface().(type) {
	case lang.FleetNodes:
		if x.Target == nil {
			return formString(v)
		}
		m := map[string]any{"min": float64(x.Min), "target": float64(*x.Target)}
		if x.Max != nil {
			m["max"] = float64(*x.Max)
		}
		return m
	case lang.Replicas:
		if x.Groups == nil {
			if x.Range == nil {
				return nil
			}
			return formString(reflect.ValueOf(*x.Range))
		}
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// formString is the string form of a several-form model value, as the
// model's decoder reads it back.
func formString(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case lang.Port:
		return x.String()
	case lang.VolumeMount:
		src := x.InstancePath
		if src == "" && len(x.Name) > 0 {
			src = x.Name[0]
		}
		return src + ":" + x.Path
	case lang.FileMapping:
		if x.Path == "" {
			return x.LocalPath
		}
		return x.LocalPath + ":" + x.Path
	case lang.Repo:
		if x.URL != "" {
			return x.URL
		}
		if x.Path == "" {
			return x.LocalPath
		}
		return x.LocalPath + ":" + x.Path
	case lang.FleetNodes:
		switch {
		case x.Max != nil && *x.Max == x.Min:
			return strconv.Itoa(x.Min)
		case x.Max != nil:
			return fmt.Sprintf("%d..%d", x.Min, *x.Max)
		}
		return fmt.Sprintf("%d..", x.Min)
	case lang.InstanceRef:
		if x.Name != "" {
			return x.Name
		}
		return x.Hostname
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return nil
		}
		return string(b)
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

func reflectTypeOfSpec() reflect.Type { return reflect.TypeFor[resources.Spec]() }

func reflectValue(v any) reflect.Value { return reflect.ValueOf(v) }
