package resources

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
)

// textForm returns v's string form and whether it parses back to v: a value
// built by hand may hold what the string form cannot say.
func textForm[T fmt.Stringer](v T, parse func(string) (T, *fault)) (string, bool) {
	s := v.String()
	p, f := parse(s)
	return s, f == nil && reflect.DeepEqual(p, v)
}

// marshalForm writes the string form as a JSON string when there is one,
// else obj (the mapping form).
func marshalForm(text func() (string, bool), obj any) ([]byte, error) {
	if s, ok := text(); ok {
		return json.Marshal(s)
	}
	return json.Marshal(obj)
}

// unmarshalForm decodes a JSON object or array into obj and calls done (if
// not nil); anything else goes to unmarshalScalar.
func unmarshalForm(b []byte, u encoding.TextUnmarshaler, obj any, done func() error) error {
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		if err := json.Unmarshal(b, obj); err != nil {
			return err
		}
		if done != nil {
			return done()
		}
		return nil
	}
	return unmarshalScalar(b, u)
}

// unmarshalScalar feeds a JSON string, or a number as written, to u's
// UnmarshalText; null leaves u alone. YAML configs say `gpu: 2` and
// `memory: 16`, and a JSON document may do the same.
func unmarshalScalar(b []byte, u encoding.TextUnmarshaler) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return u.UnmarshalText([]byte(s))
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", b)
	}
	return u.UnmarshalText([]byte(n))
}
