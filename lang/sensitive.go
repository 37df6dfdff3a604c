package lang

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Sensitive values are never shown. Two things make a value sensitive:
// the model tags its field `sensitive:"true"` (a registry password), or
// the HCL front-end found that it was computed from a variable declared
// `sensitive = true` (Node.Sensitive). Both end up as field paths
// ("registry_auth.password", "env.HF_TOKEN", "commands[1]") in the
// encoding of the spec, which is what plans and state mask; the values
// themselves are kept only where a job needs them.

// MaskedValue stands in for a sensitive value wherever one would be shown.
const MaskedValue = "(sensitive value)"

// SensitivePaths lists the paths of a resource's sensitive values, sorted
// and without duplicates: those the model's tags name (when set) and those
// the front-end found derived from sensitive variables.
func (r *Resource) SensitivePaths() []string {
	paths := append(TaggedSensitivePaths(r.Spec), r.Sensitive...)
	sort.Strings(paths)
	return slices.Compact(paths)
}

// TaggedSensitivePaths lists the paths of the non-empty fields of v that
// the model tags `sensitive:"true"`, walking v by reflection. Which types
// can hold such a field is worked out once per type.
func TaggedSensitivePaths(v any) []string {
	if v == nil {
		return nil
	}
	var out []string
	walkSensitive(reflect.ValueOf(v), "", &out)
	return out
}

func walkSensitive(v reflect.Value, path string, out *[]string) {
	if !v.IsValid() || !holdsSensitive(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkSensitive(v.Elem(), path, out)
		}
	case reflect.Struct:
		for _, f := range structFields(v.Type()).fields {
			fv := v.FieldByIndex(f.index)
			p := joinPath(path, f.name)
			if f.sensitive {
				if !fv.IsZero() {
					*out = append(*out, p)
				}
				continue
			}
			walkSensitive(fv, p, out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkSensitive(v.Index(i), indexPath(path, i), out)
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		for _, k := range v.MapKeys() {
			walkSensitive(v.MapIndex(k), joinPath(path, k.String()), out)
		}
	}
}

var sensitiveTypes sync.Map // reflect.Type → bool

// holdsSensitive reports whether a value of type t can contain a field
// tagged sensitive. Interfaces are looked into at run time.
func holdsSensitive(t reflect.Type) bool {
	if b, ok := sensitiveTypes.Load(t); ok {
		return b.(bool)
	}
	// A type that refers to itself is taken to hold nothing while it is
	// being looked at; its own fields decide.
	sensitiveTypes.Store(t, false)
	b := false
	switch t.Kind() {
	case reflect.Interface:
		b = true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		b = holdsSensitive(t.Elem())
	case reflect.Struct:
		for _, f := range structFields(t).fields {
			if f.sensitive || holdsSensitive(t.FieldByIndex(f.index).Type) {
				b = true
				break
			}
		}
	}
	sensitiveTypes.Store(t, b)
	return b
}

// MarkSensitive records that the value at path is sensitive. Decoders of
// model types whose written form differs from their encoding (Env's
// "KEY=value" items) call it with the path of the encoded value.
func (d *Decoder) MarkSensitive(path string) {
	d.Sensitive = append(d.Sensitive, path)
}

// sensitiveTexts collects the scalars of the sensitive nodes under n.
func sensitiveTexts(n *Node, inside bool, out *[]string) {
	if n == nil {
		return
	}
	inside = inside || n.Sensitive
	if inside && n.Kind == ScalarNode && n.Text != "" {
		*out = append(*out, n.Text)
	}
	for _, e := range n.Entries {
		sensitiveTexts(e.Value, inside, out)
	}
	for _, it := range n.Items {
		sensitiveTexts(it, inside, out)
	}
}

// ScrubDiagnostics replaces each of the given sensitive values in the
// diagnostics' summaries and details with MaskedValue, so that a message
// quoting what was written never shows a secret. Longer values are
// replaced first, so one that contains another is replaced whole.
func ScrubDiagnostics(diags Diagnostics, values []string) {
	r := Scrubber(values)
	if r == nil {
		return
	}
	for _, d := range diags {
		d.Summary, d.Detail = r.Replace(d.Summary), r.Replace(d.Detail)
	}
}

// Scrubber returns a replacer of the given sensitive values by
// MaskedValue, or nil when there are none.
func Scrubber(values []string) *strings.Replacer {
	vs := slices.Clone(values)
	vs = slices.DeleteFunc(vs, func(s string) bool { return s == "" })
	if len(vs) == 0 {
		return nil
	}
	sort.Slice(vs, func(i, j int) bool {
		if len(vs[i]) != len(vs[j]) {
			return len(vs[i]) > len(vs[j])
		}
		return vs[i] < vs[j]
	})
	vs = slices.Compact(vs)
	pairs := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		pairs = append(pairs, v, MaskedValue)
	}
	return strings.NewReplacer(pairs...)
}
