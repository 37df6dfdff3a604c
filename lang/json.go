package lang

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
)

// The JSON form of the model is what state stores and what providers are
// handed: json.Marshal of a Spec. Every type with a MarshalJSON reads back
// from what it writes (and from the other forms its YAML accepts), so
// DecodeSpec gives back the model that was stored.

// DecodeSpec reads a spec stored as JSON (json.Marshal of a Spec) back
// into the typed model: *Task, *Service, *DevEnvironment, *Fleet, *Volume
// or *Gateway, by the "type" field the JSON carries. A field of the wrong
// form is an error naming it; a field this version does not know is
// ignored, so that state written by another version still reads.
func DecodeSpec(data []byte) (Spec, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("reading a stored configuration: %w", err)
	}
	if head.Type == nil {
		return nil, errors.New("reading a stored configuration: it has no \"type\"")
	}
	spec := NewSpec(Kind(*head.Type))
	if spec == nil {
		return nil, fmt.Errorf("reading a stored configuration: unknown type %q (want one of %s)", *head.Type, kindList())
	}
	if err := json.Unmarshal(data, spec); err != nil {
		return nil, fmt.Errorf("reading a stored %s configuration: %w", *head.Type, err)
	}
	return spec, nil
}

// jsonKind is the first byte of a JSON value: '"', '{', '[', 't', 'f',
// 'n', or a digit or '-' for a number.
func jsonKind(b []byte) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// UnmarshalJSON accepts what MarshalJSON writes: "auto" or a count.
func (b *Blocks) UnmarshalJSON(data []byte) error {
	switch jsonKind(data) {
	case 'n':
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		if s != "auto" {
			return fmt.Errorf("blocks: want a number of blocks or \"auto\", got %q", s)
		}
		*b = Blocks{Auto: true}
		return nil
	}
	var n int
	if err := json.Unmarshal(data, &n); err != nil || n < 0 {
		return fmt.Errorf("blocks: want a number of blocks or \"auto\", got %s", data)
	}
	*b = Blocks{Count: n}
	return nil
}

// UnmarshalJSON accepts what MarshalJSON writes (a bool, a name or
// "project/name") and the mapping {project, name}.
func (g *GatewayRef) UnmarshalJSON(data []byte) error {
	var project, name string
	switch jsonKind(data) {
	case 'n':
		return nil
	case 't', 'f':
		var on bool
		if err := json.Unmarshal(data, &on); err != nil {
			return err
		}
		*g = GatewayRef{Enabled: on}
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		project, name = ProjectName(s)
	case '{':
		var m gatewayRefMapping
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		project, name = m.Project, m.Name
	default:
		return fmt.Errorf("gateway: want a bool, a gateway name or {project, name}, got %s", data)
	}
	if !ValidName(name) || (project != "" && !ValidName(project)) {
		return fmt.Errorf("gateway: invalid gateway name in %s", data)
	}
	*g = GatewayRef{Enabled: true, Name: name, Project: project}
	return nil
}

// UnmarshalJSON accepts what MarshalJSON writes: a bool or "auto".
func (h *HTTPS) UnmarshalJSON(data []byte) error {
	switch jsonKind(data) {
	case 'n':
		return nil
	case 't', 'f':
		var on bool
		if err := json.Unmarshal(data, &on); err != nil {
			return err
		}
		*h = HTTPS{Enabled: on}
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err == nil && s == "auto" {
			*h = HTTPS{Auto: true}
			return nil
		}
	}
	return fmt.Errorf("https: want true, false or \"auto\", got %s", data)
}

// UnmarshalJSON accepts what MarshalJSON writes: a count or range (a
// number, "1..4" or {min, max}), or a list of replica groups.
func (r *Replicas) UnmarshalJSON(data []byte) error {
	switch jsonKind(data) {
	case 'n':
		return nil
	case '[':
		var groups []ReplicaGroup
		if err := json.Unmarshal(data, &groups); err != nil {
			return fmt.Errorf("replicas: %w", err)
		}
		*r = Replicas{Groups: groups}
		return nil
	}
	var rng resources.IntRange
	if err := json.Unmarshal(data, &rng); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	*r = Replicas{Range: &rng}
	return nil
}

// UnmarshalJSON accepts what MarshalJSON writes, an object whose values
// are strings or null (taken from the caller's environment), in the
// order written; numbers and bools stand for their text, as in YAML. It
// accepts the list form ["KEY=value", "KEY"] too.
func (e *Env) UnmarshalJSON(data []byte) error {
	var out Env
	seen := map[string]bool{}
	add := func(name string, value *string) error {
		if !envNameRE.MatchString(name) {
			return fmt.Errorf("env: invalid environment variable name %q", name)
		}
		if seen[name] {
			return fmt.Errorf("env: duplicate environment variable %q", name)
		}
		seen[name] = true
		out = append(out, EnvVar{Name: name, Value: value})
		return nil
	}
	switch jsonKind(data) {
	case 'n':
		return nil
	case '[':
		var items []string
		if err := json.Unmarshal(data, &items); err != nil {
			return fmt.Errorf("env: want a list of \"KEY=value\" or \"KEY\": %w", err)
		}
		for _, it := range items {
			name, value, ok := strings.Cut(it, "=")
			var v *string
			if ok {
				v = &value
			}
			if err := add(name, v); err != nil {
				return err
			}
		}
	case '{':
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if _, err := dec.Token(); err != nil { // {
			return fmt.Errorf("env: %w", err)
		}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return fmt.Errorf("env: %w", err)
			}
			name, _ := key.(string)
			val, err := dec.Token()
			if err != nil {
				return fmt.Errorf("env: %s: %w", name, err)
			}
			var v *string
			switch val := val.(type) {
			case nil:
			case string:
				v = &val
			case json.Number:
				s := val.String()
				v = &s
			case bool:
				s := strconv.FormatBool(val)
				v = &s
			default:
				return fmt.Errorf("env: %s: want a string or null", name)
			}
			if err := add(name, v); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("env: want an object or a list of \"KEY=value\", got %s", data)
	}
	*e = out
	return nil
}

// UnmarshalJSON accepts a list of strings or one string, as YAML does.
func (s *Strings) UnmarshalJSON(data []byte) error {
	switch jsonKind(data) {
	case 'n':
		return nil
	case '"':
		var one string
		if err := json.Unmarshal(data, &one); err != nil {
			return err
		}
		*s = Strings{one}
		return nil
	}
	var l []string
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", data)
	}
	*s = l
	return nil
}
