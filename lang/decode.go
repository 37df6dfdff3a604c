package lang

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"

	"github.com/dstackai/dstack-go/lang/resources"
)

// Decoder fills model values from Nodes. It collects every problem instead
// of stopping at the first, and remembers where each field was written so
// that validation and later stages (plan output) can point at it.
type Decoder struct {
	// root is the mapping being decoded; field positions are looked up in
	// it on demand rather than recorded for every field, since only a few
	// are ever asked for.
	root *Node
	// Unknown lists the paths whose values are known only after apply.
	Unknown []string
	// Sensitive lists the paths whose values came from sensitive nodes
	// (HCL values derived from a sensitive variable).
	Sensitive []string
	// Diags collects the problems found.
	Diags Diagnostics
	// misspelt holds the paths of fields that an unknown key was taken to
	// be a misspelling of; they are not reported missing as well.
	misspelt map[string]bool
}

// NewDecoder returns an empty decoder.
func NewDecoder() *Decoder {
	return &Decoder{}
}

// Range returns where the value of the field at path ("resources.gpu",
// "ports[1]", "env.HF_TOKEN") was written.
func (d *Decoder) Range(path string) (Range, bool) {
	if n, _ := d.lookup(path); n != nil {
		return n.Range, true
	}
	return Range{}, false
}

// KeyRange returns where the key of the field at path was written.
func (d *Decoder) KeyRange(path string) (Range, bool) {
	if _, e := d.lookup(path); e != nil {
		return e.KeyRange, true
	}
	return Range{}, false
}

// lookup finds the node written for path, and the entry holding it when
// it is a mapping key. Keys may contain dots (tags such as
// "kubernetes.io/name"), so the longest key that fits wins.
func (d *Decoder) lookup(path string) (*Node, *Entry) {
	n, rest := d.root, path
	var entry *Entry
	for n != nil && rest != "" {
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, nil
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil {
				return nil, nil
			}
			rest = rest[end+1:]
			entry = nil
			switch {
			case n.Kind == ListNode && i >= 0 && i < len(n.Items):
				n = n.Items[i]
			case i == 0 && (n.Kind == ScalarNode || n.Block):
				// One value standing for a list of one (a cron string, a
				// single HCL block).
			default:
				return nil, nil
			}
			continue
		}
		rest = strings.TrimPrefix(rest, ".")
		if n.Kind != MapNode {
			return nil, nil
		}
		var best *Entry
		for i := range n.Entries {
			e := &n.Entries[i]
			k := e.Key
			if strings.HasPrefix(rest, k) && (len(rest) == len(k) || rest[len(k)] == '.' || rest[len(k)] == '[') &&
				(best == nil || len(k) > len(best.Key)) {
				best = e
			}
		}
		if best == nil {
			return nil, nil
		}
		entry, n, rest = best, best.Value, rest[len(best.Key):]
	}
	return n, entry
}

// NodeDecoder is implemented by model types that accept more than one
// written form (a port as `8080`, `"80:8080"` or a mapping). DecodeNode
// reports problems through d and leaves the receiver best-effort filled.
type NodeDecoder interface {
	DecodeNode(d *Decoder, n *Node, path string)
}

// Errorf records an error diagnostic about path at rng.
func (d *Decoder) Errorf(rng Range, path, summary, detailFormat string, args ...any) {
	d.Diags = append(d.Diags, Errorf(rng, path, summary, detailFormat, args...))
}

// Decode fills target, which must be a non-nil pointer, from n. path is the
// dotted path of n within its resource, used in messages.
func (d *Decoder) Decode(n *Node, target any, path string) {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("lang: Decode target must be a non-nil pointer, got %T", target))
	}
	d.decode(n, v.Elem(), path)
}

var (
	nodeDecoderType     = reflect.TypeFor[NodeDecoder]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *Decoder) decode(n *Node, v reflect.Value, path string) {
	if path == "" && d.root == nil {
		d.root = n
	}
	if n.Sensitive {
		d.MarkSensitive(path)
	}
	switch n.Kind {
	case UnknownNode:
		d.Unknown = append(d.Unknown, path)
		return
	case NullNode:
		v.SetZero()
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	caps := capabilities(v.Type())
	if caps.nodeDecoder {
		v.Addr().Interface().(NodeDecoder).DecodeNode(d, n, path)
		return
	}
	if caps.textUnmarshaler {
		structural := (n.Kind == MapNode && v.Kind() == reflect.Struct) ||
			(n.Kind == ListNode && v.Kind() == reflect.Slice)
		if !structural {
			if n.Kind != ScalarNode {
				d.typeError(n, v.Type(), path)
				return
			}
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Text)); err != nil {
				d.Errorf(narrow(n, err), path, fmt.Sprintf("Invalid value for %q", path), "%s.", capitalize(err.Error()))
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		if n.Kind != ScalarNode {
			d.typeError(n, v.Type(), path)
			return
		}
		v.SetString(n.Text)
	case reflect.Bool:
		if n.Kind != ScalarNode || n.Type != Bool {
			d.typeError(n, v.Type(), path)
			return
		}
		v.SetBool(n.Text == "true")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != ScalarNode || n.Type != Int {
			d.typeError(n, v.Type(), path)
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Text, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "%q is not an integer in range.", n.Text)
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		if n.Kind != ScalarNode || (n.Type != Int && n.Type != Float) {
			d.typeError(n, v.Type(), path)
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Text, "_", ""), 64)
		if err != nil {
			d.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "%q is not a number.", n.Text)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		items := n.Items
		switch {
		case n.Kind == MapNode && n.Block:
			items = []*Node{n}
		case n.Kind != ListNode:
			d.typeError(n, v.Type(), path)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			d.decode(it, s.Index(i), indexPath(path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != MapNode || v.Type().Key().Kind() != reflect.String {
			d.typeError(n, v.Type(), path)
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Entries))
		seen := map[string]Range{}
		for _, e := range n.Entries {
			p := joinPath(path, e.Key)
			if d.duplicate(seen, e, p) {
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(e.Value, ev, p)
			m.SetMapIndex(reflect.ValueOf(e.Key).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	case reflect.Struct:
		if n.Kind != MapNode {
			d.typeError(n, v.Type(), path)
			return
		}
		d.decodeStruct(n, v, path)
		mappingDefaults(n, v)
		if val, ok := v.Addr().Interface().(validatable); ok {
			if err := val.Validate(); err != nil {
				d.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "%s.", capitalize(err.Error()))
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(n.Interface()))
	default:
		panic(fmt.Sprintf("lang: cannot decode into %s", v.Type()))
	}
}

// mappingDefaults fills what a mapping form leaves out the way the
// string form does: a gpu mapping without count asks for exactly one GPU,
// as "A100" does (and as resources.GPU's UnmarshalJSON does).
func mappingDefaults(n *Node, v reflect.Value) {
	if g, ok := v.Addr().Interface().(*resources.GPU); ok {
		if _, set := n.Get("count"); !set {
			g.Count = resources.IntRange{Min: new(1), Max: new(1)}
		}
	}
}

// DecodeFields fills the struct ptr points to from the fields of a
// mapping node, without consulting ptr's own NodeDecoder: a type's
// DecodeNode calls it for its mapping form.
func (d *Decoder) DecodeFields(n *Node, ptr any, path string) {
	if n.Kind != MapNode {
		d.typeError(n, reflect.TypeOf(ptr).Elem(), path)
		return
	}
	d.decodeStruct(n, reflect.ValueOf(ptr).Elem(), path)
}

func (d *Decoder) duplicate(seen map[string]Range, e Entry, path string) bool {
	if first, dup := seen[e.Key]; dup {
		d.Errorf(e.KeyRange, path, fmt.Sprintf("Duplicate field %q", e.Key), "%q was already set at %s.", e.Key, first)
		return true
	}
	seen[e.Key] = e.KeyRange
	return false
}

func (d *Decoder) decodeStruct(n *Node, v reflect.Value, path string) {
	info := structFields(v.Type())
	for i, e := range n.Entries {
		p := joinPath(path, e.Key)
		if first := n.firstIndex(e.Key, i); first < i {
			d.Errorf(e.KeyRange, p, fmt.Sprintf("Duplicate field %q", e.Key), "%q was already set at %s.", e.Key, n.Entries[first].KeyRange)
			continue
		}
		f, ok := info.byName[e.Key]
		if !ok {
			detail := fmt.Sprintf("%s has no field %q.", describeOwner(path), e.Key)
			if s := Suggest(e.Key, info.names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
				if d.misspelt == nil {
					d.misspelt = map[string]bool{}
				}
				d.misspelt[joinPath(path, s)] = true
			}
			d.Errorf(e.KeyRange, p, fmt.Sprintf("Unsupported field %q", e.Key), "%s", detail)
			continue
		}
		fv := v.FieldByIndex(f.index)
		d.decode(e.Value, fv, p)
		if len(f.enum) > 0 {
			d.checkEnum(e.Value, fv, f.enum, p)
		}
	}
	for _, f := range info.fields {
		if !f.required || d.misspelt[joinPath(path, f.name)] {
			continue
		}
		if _, ok := n.Get(f.name); !ok {
			detail := fmt.Sprintf("%s needs %q.", describeOwner(path), f.name)
			if f.desc != "" {
				detail = fmt.Sprintf("%s needs %q: %s.", describeOwner(path), f.name, strings.ToLower(f.desc[:1])+f.desc[1:])
			}
			d.Errorf(n.Range, joinPath(path, f.name), fmt.Sprintf("Missing required field %q", f.name), "%s", detail)
		}
	}
}

// checkEnum checks a decoded string (or list of strings) against the
// allowed values.
func (d *Decoder) checkEnum(n *Node, v reflect.Value, allowed []string, path string) {
	check := func(s string, rng Range, p string) {
		if slices.Contains(allowed, s) {
			return
		}
		detail := fmt.Sprintf("Allowed values: %s.", strings.Join(allowed, ", "))
		if n.Kind == ScalarNode && n.Type == Float {
			detail += fmt.Sprintf(" The value was read as the number %s; quote it to keep it as written (\"3.10\", not 3.10).", s)
		} else if sug := Suggest(s, allowed); sug != "" {
			detail = fmt.Sprintf("Did you mean %q? %s", sug, detail)
		}
		d.Errorf(rng, p, fmt.Sprintf("Invalid value %q for %q", s, p), "%s", detail)
	}
	switch {
	case v.Kind() == reflect.String && n.Kind == ScalarNode:
		check(v.String(), n.Range, path)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String && n.Kind == ListNode:
		for i := range min(v.Len(), len(n.Items)) {
			check(v.Index(i).String(), n.Items[i].Range, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func describeOwner(path string) string {
	if path == "" {
		return "This resource"
	}
	return fmt.Sprintf("%q", path)
}

// Interface converts a node into plain Go values: map[string]any, []any,
// string, int64, float64, bool or nil.
func (n *Node) Interface() any {
	switch n.Kind {
	case ScalarNode:
		switch n.Type {
		case Int:
			if i, err := strconv.ParseInt(n.Text, 0, 64); err == nil {
				return i
			}
		case Float:
			if f, err := strconv.ParseFloat(n.Text, 64); err == nil {
				return f
			}
		case Bool:
			return n.Text == "true"
		}
		return n.Text
	case MapNode:
		m := make(map[string]any, len(n.Entries))
		for _, e := range n.Entries {
			m[e.Key] = e.Value.Interface()
		}
		return m
	case ListNode:
		l := make([]any, len(n.Items))
		for i, it := range n.Items {
			l[i] = it.Interface()
		}
		return l
	}
	return nil
}

func (d *Decoder) typeError(n *Node, t reflect.Type, path string) {
	if n.Kind == ScalarNode && n.Type == String && n.Text == "" && t.Kind() != reflect.String {
		d.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "Expected %s, got an empty string.", describeType(t))
		return
	}
	d.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "Expected %s, got %s.", describeType(t), n.describe())
}

// defaulter is implemented by value types whose mapping form has defaults
// for the fields left out (a GPU mapping without count means one GPU).
type defaulter interface{ SetDefaults() }

// typeCaps records which decoding interfaces a type's pointer has;
// asking reflect every time costs more than the rest of a decode step.
type typeCaps struct {
	nodeDecoder, textUnmarshaler, defaulter, validatable bool
}

var capsCache sync.Map // reflect.Type -> typeCaps

func capabilities(t reflect.Type) typeCaps {
	if c, ok := capsCache.Load(t); ok {
		return c.(typeCaps)
	}
	pt := reflect.PointerTo(t)
	c := typeCaps{
		nodeDecoder:     pt.Implements(nodeDecoderType),
		textUnmarshaler: pt.Implements(textUnmarshalerType),
		defaulter:       pt.Implements(reflect.TypeFor[defaulter]()),
		validatable:     pt.Implements(reflect.TypeFor[validatable]()),
	}
	capsCache.Store(t, c)
	return c
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// validatable is implemented by value types whose mapping form has rules
// across fields (a GPU's count and memory ranges).
type validatable interface{ Validate() error }

// Describer lets a model type name its accepted forms in type errors.
type Describer interface {
	DescribeType() string
}

func describeType(t reflect.Type) string {
	if t.Implements(reflect.TypeFor[Describer]()) {
		return reflect.Zero(t).Interface().(Describer).DescribeType()
	}
	if t.Kind() == reflect.Pointer {
		return describeType(t.Elem())
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) && t.Kind() != reflect.Struct && t.Kind() != reflect.Slice {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		if reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return "a string or a mapping"
		}
		return "a mapping"
	}
	return "a value"
}

// narrow points a grammar error at the offending token when the scalar is
// written on one line, so `gpu: A100:2:4` underlines the `4`.
func narrow(n *Node, err error) Range {
	var re *resources.Error
	if !errors.As(err, &re) || re.Token == "" {
		return n.Range
	}
	r := n.Range
	if r.Start.Line != r.End.Line {
		return r
	}
	width := r.End.Column - r.Start.Column
	textLen := utf8.RuneCountInString(n.Text)
	start := r.Start
	switch width {
	case textLen:
	case textLen + 2: // quoted
		start.Column++
		start.Byte++
	default:
		return r
	}
	if re.Offset < 0 || re.Offset+len(re.Token) > len(n.Text) {
		return r
	}
	col := utf8.RuneCountInString(n.Text[:re.Offset])
	start.Column += col
	start.Byte += re.Offset
	end := start
	end.Column += utf8.RuneCountInString(re.Token)
	end.Byte += len(re.Token)
	return Range{Filename: r.Filename, Start: start, End: end}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Suggest returns the candidate closest to name, or "" when none is close
// enough. The threshold (a third of the name's length, at least 1 and at
// most 3 edits) catches typos and swapped letters without proposing
// unrelated fields for short names.
func Suggest(name string, candidates []string) string {
	limit := min(max(len(name)/3, 1), 3)
	best, bestDist := "", limit+1
	lower := strings.ToLower(name)
	for _, c := range candidates {
		dist := levenshtein.ComputeDistance(lower, c)
		if transposed(lower, c) {
			dist = 1 // Levenshtein counts a swap of neighbours as two edits
		}
		if dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// transposed reports whether a and b differ only by two neighbouring
// characters swapped ("tsak" and "task").
func transposed(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}

type fieldInfo struct {
	name  string
	index []int
	// required fields are tagged `jsonschema:"required"`; the JSON Schema
	// reflector reads the same tag.
	required bool
	// desc is the field's description (the jsonschema_description tag).
	desc string
	// enum lists the allowed strings, from the `jsonschema:"enum=..."` tag
	// that the JSON Schema uses too.
	enum []string
	// sensitive fields are tagged `sensitive:"true"`: their values are
	// never shown.
	sensitive bool
}

type structInfo struct {
	byName map[string]fieldInfo
	names  []string // sorted, for suggestions
	fields []fieldInfo
}

// fieldCache holds the derived field table per model type. The model is
// fixed at build time, so this only ever grows to the number of types.
var fieldCache sync.Map // reflect.Type -> *structInfo

func structFields(t reflect.Type) *structInfo {
	if si, ok := fieldCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]fieldInfo{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = f.Name
			}
			fi := fieldInfo{name: name, index: idx, desc: f.Tag.Get("jsonschema_description"), sensitive: f.Tag.Get("sensitive") == "true"}
			for _, opt := range strings.Split(f.Tag.Get("jsonschema"), ",") {
				if v, ok := strings.CutPrefix(opt, "enum="); ok {
					fi.enum = append(fi.enum, v)
				}
				fi.required = fi.required || opt == "required"
			}
			si.byName[name] = fi
			si.names = append(si.names, name)
			si.fields = append(si.fields, fi)
		}
	}
	walk(t, nil)
	sort.Strings(si.names)
	fieldCache.Store(t, si)
	return si
}

// FieldNames returns the names a struct type accepts, sorted. Front-ends
// and the JSON Schema use it so they agree with the decoder.
func FieldNames(t reflect.Type) []string {
	return structFields(t).names
}
