package state

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// The state is written after every action of an apply, so encoding it is
// on the hot path. Resources and instances are encoded here without
// reflection, producing exactly the bytes encoding/json would (same field
// order, omitempty rules and escaping, checked by TestEncoderMatchesJSON);
// values of types this does not know fall back to encoding/json.

func appendResource(b []byte, r *Resource) ([]byte, error) {
	var err error
	b = append(b, `{"address":`...)
	b = appendString(b, r.Address)
	if r.ConfigHash != "" {
		b = append(b, `,"config_hash":`...)
		b = appendString(b, r.ConfigHash)
	}
	if len(r.DependsOn) > 0 {
		b = append(b, `,"depends_on":[`...)
		for i, d := range r.DependsOn {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d)
		}
		b = append(b, ']')
	}
	if len(r.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		if b, err = appendMap(b, r.Attributes); err != nil {
			return nil, err
		}
	}
	if len(r.Instances) > 0 {
		b = append(b, `,"instances":[`...)
		for i, in := range r.Instances {
			if i > 0 {
				b = append(b, ',')
			}
			if in == nil {
				b = append(b, "null"...)
				continue
			}
			if b, err = appendInstance(b, in); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

func appendInstance(b []byte, in *Instance) ([]byte, error) {
	var err error
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(in.Index), 10)
	for _, f := range []struct{ key, val string }{
		{`,"provider_id":`, in.ProviderID}, {`,"provider":`, in.Provider}, {`,"token":`, in.Token}, {`,"status":`, in.Status},
	} {
		if f.val != "" {
			b = append(b, f.key...)
			b = appendString(b, f.val)
		}
	}
	if len(in.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		if b, err = appendMap(b, in.Attributes); err != nil {
			return nil, err
		}
	}
	if len(in.Secrets) > 0 {
		b = append(b, `,"secrets":{`...)
		keys := make([]string, 0, len(in.Secrets))
		for k := range in.Secrets {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, in.Secrets[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendMap(b []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if b, err = appendValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case json.Number:
		if v == "" {
			return append(b, '0'), nil
		}
		return append(b, v...), nil
	case map[string]any:
		return appendMap(b, v)
	case []any:
		b = append(b, '[')
		var err error
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return appendReflect(b, v)
}

// appendString writes a JSON string. Plain ASCII, nearly everything in a
// state, is copied; anything else goes through encoding/json's escaper.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			out, _ := appendReflect(b, s)
			return out
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendReflect encodes v with encoding/json, HTML escaping off like the
// rest of the document.
func appendReflect(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}
