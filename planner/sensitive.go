package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/state"
)

// Masked is what sensitive values are replaced with in plans and state.
const Masked = lang.MaskedValue

// Sensitive says which values of a configuration are sensitive, without
// holding them. A plan's change and the resource's record in state carry
// it.
type Sensitive struct {
	// Paths are the sensitive values' paths in the configuration's
	// encoding ("env.HF_TOKEN", "registry_auth.password", "commands[1]"),
	// from lang.Resource.SensitivePaths.
	Paths []string `json:"paths"`
	// Digests hold, for each top-level field with sensitive values, a
	// SHA-256 of those values, so that the next plan sees them change
	// although plans and state show them masked. (The state's config_hash
	// is already a hash of the whole configuration, secrets included; this
	// tells which field changed.)
	Digests map[string]string `json:"digests"`
}

// attrSensitive is the resource attribute in state that holds its
// Sensitive record.
const attrSensitive = "sensitive"

// topField is the top-level field a path is under.
func topField(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// maskSpec masks the values at paths in an encoded configuration. It
// returns the masked encoding, its top-level fields (masked), and the
// sensitive record. A path the encoding does not have as written (a field
// encoded in another shape than it was written in) masks the nearest
// enclosing value whole: never less than asked.
func maskSpec(raw json.RawMessage, paths []string) (json.RawMessage, map[string]json.RawMessage, *Sensitive, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, nil, err
	}
	if len(paths) == 0 {
		return raw, fields, nil, nil
	}
	byField := map[string][]string{}
	for _, p := range paths {
		byField[topField(p)] = append(byField[topField(p)], p)
	}
	sens := &Sensitive{Paths: paths, Digests: map[string]string{}}
	for f, ps := range byField {
		v, ok := fields[f]
		if !ok {
			continue
		}
		var doc any
		if err := decodeJSON(v, &doc); err != nil {
			return nil, nil, nil, err
		}
		h := sha256.New()
		for _, p := range ps {
			b, _ := json.Marshal(valueAt(doc, p[len(f):]))
			h.Write([]byte(p))
			h.Write([]byte{0})
			h.Write(b)
			h.Write([]byte{0})
		}
		sens.Digests[f] = hex.EncodeToString(h.Sum(nil))
		for _, p := range ps {
			doc = maskAt(doc, p[len(f):])
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, nil, nil, err
		}
		fields[f] = b
	}
	out, err := json.Marshal(fields)
	return out, fields, sens, err
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	return dec.Decode(v)
}

// step follows one segment of rest ("[2]", ".key", "key" at the start)
// into v. ok is false when v has no such element.
func step(v any, rest string) (next any, tail string, set func(any), ok bool) {
	if rest[0] == '[' {
		end := strings.IndexByte(rest, ']')
		arr, isArr := v.([]any)
		if end < 0 || !isArr {
			return nil, "", nil, false
		}
		i, err := strconv.Atoi(rest[1:end])
		if err != nil || i < 0 || i >= len(arr) {
			return nil, "", nil, false
		}
		return arr[i], rest[end+1:], func(x any) { arr[i] = x }, true
	}
	rest = strings.TrimPrefix(rest, ".")
	obj, isObj := v.(map[string]any)
	if !isObj {
		return nil, "", nil, false
	}
	// Keys may hold dots ("kubernetes.io/name"): the longest key that
	// fits wins, as lang's Decoder looks paths up.
	best := ""
	found := false
	for k := range obj {
		if strings.HasPrefix(rest, k) && (len(rest) == len(k) || rest[len(k)] == '.' || rest[len(k)] == '[') && (!found || len(k) > len(best)) {
			best, found = k, true
		}
	}
	if !found {
		return nil, "", nil, false
	}
	return obj[best], rest[len(best):], func(x any) { obj[best] = x }, true
}

// maskAt returns v with the value at rest replaced by Masked (v itself
// when the path ends, or leads nowhere, in v).
func maskAt(v any, rest string) any {
	if rest == "" {
		return Masked
	}
	next, tail, set, ok := step(v, rest)
	if !ok {
		return Masked
	}
	set(maskAt(next, tail))
	return v
}

// replaceAt returns v with the value at rest replaced by x; v unchanged
// when rest leads nowhere in it.
func replaceAt(v any, rest string, x any) any {
	if rest == "" {
		return x
	}
	next, tail, set, ok := step(v, rest)
	if ok {
		set(replaceAt(next, tail, x))
	}
	return v
}

// lookup returns the value at rest in v, and whether v has that path.
func lookup(v any, rest string) (any, bool) {
	for rest != "" {
		next, tail, _, ok := step(v, rest)
		if !ok {
			return nil, false
		}
		v, rest = next, tail
	}
	return v, true
}

// unmaskRecorded fills a recorded (masked) configuration's sensitive
// values back in from the new one where they have not changed (their
// field's digest is the same), so that code comparing the two as typed
// models (an SSH fleet's hosts) sees no difference where there is none,
// and a masked number still decodes. A changed string stays masked, which
// compares as changed; a changed value of another type takes the new
// value, as the mask would not decode.
func unmaskRecorded(recorded json.RawMessage, prior *Sensitive, d *desired) json.RawMessage {
	if prior == nil || len(prior.Paths) == 0 || len(recorded) == 0 {
		return recorded
	}
	var old, cur any
	if decodeJSON(recorded, &old) != nil || decodeJSON(d.spec, &cur) != nil {
		return recorded
	}
	for _, p := range prior.Paths {
		x, ok := lookup(cur, p)
		if !ok {
			continue
		}
		f := topField(p)
		if _, isString := x.(string); isString && prior.digest(f) != d.sensitive.digest(f) {
			continue
		}
		old = replaceAt(old, p, x)
	}
	b, err := json.Marshal(old)
	if err != nil {
		return recorded
	}
	return b
}

// valueAt returns the value at rest in v, or the nearest enclosing one.
func valueAt(v any, rest string) any {
	for rest != "" {
		next, tail, _, ok := step(v, rest)
		if !ok {
			return v
		}
		v, rest = next, tail
	}
	return v
}

// priorSensitive reads a resource's Sensitive record from state; nil for
// a resource recorded before sensitive values were tracked.
func priorSensitive(r *state.Resource) *Sensitive {
	v, ok := r.Attributes[attrSensitive]
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var s Sensitive
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

// digest is the digest of a top-level field's sensitive values, "" when
// it has none.
func (s *Sensitive) digest(field string) string {
	if s == nil {
		return ""
	}
	return s.Digests[field]
}

// wholly reports whether the top-level field itself is sensitive.
func (s *Sensitive) wholly(field string) bool {
	if s == nil {
		return false
	}
	for _, p := range s.Paths {
		if p == field {
			return true
		}
	}
	return false
}

// SensitiveValues lists the strings at the sensitive paths of every
// change's configuration: what apply's progress lines and
// errors must never show, since a provider's message may quote what it
// was given.
func (p *Plan) SensitiveValues() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Sensitive == nil || len(c.Spec) == 0 {
			continue
		}
		var doc any
		if decodeJSON(c.Spec, &doc) != nil {
			continue
		}
		for _, path := range c.Sensitive.Paths {
			collectStrings(valueAt(doc, path), &out)
		}
	}
	return out
}

func collectStrings(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		if v != "" {
			*out = append(*out, v)
		}
	case []any:
		for _, x := range v {
			collectStrings(x, out)
		}
	case map[string]any:
		for _, x := range v {
			collectStrings(x, out)
		}
	}
}
