package resources

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// IntRange is an inclusive range of counts; a nil bound is open. It is
// written "2" (exactly), "2..", "..8", "1..4" or ".." (any).
type IntRange struct {
	Min *int `json:"min,omitempty" jsonschema_description:"Lowest value"`
	Max *int `json:"max,omitempty" jsonschema_description:"Highest value; no limit when unset"`
}

// ParseIntRange parses a count range.
func ParseIntRange(s string) (IntRange, error) {
	r, f := parseIntRange(s)
	if f != nil {
		return IntRange{}, f.err("range", s)
	}
	return r, nil
}

func parseIntRange(s string) (IntRange, *fault) {
	lo, hi, f := parseRange(s, parseCount)
	return IntRange{lo, hi}, f
}

func parseCount(s string) (int, *fault) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, faultf("must not be negative")
	}
	if !isDigits(s) {
		return 0, faultf("not a non-negative integer")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, faultf("too large")
	}
	return n, nil
}

// String formats r as "2", "2..", "..8", "1..4" or "..".
func (r IntRange) String() string { return formatRange(r.Min, r.Max, strconv.Itoa) }

// MarshalText implements [encoding.TextMarshaler].
func (r IntRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (r *IntRange) UnmarshalText(b []byte) error {
	v, err := ParseIntRange(string(b))
	if err == nil {
		*r = v
	}
	return err
}

type intRangeFields IntRange

// UnmarshalJSON accepts a string, a number or the mapping {min, max}.
func (r *IntRange) UnmarshalJSON(b []byte) error {
	return unmarshalForm(b, r, (*intRangeFields)(r), func() error { return r.validate() })
}

// DescribeType names the accepted forms in decoding errors.
func (IntRange) DescribeType() string {
	return `a number or a range ("2", "1..4", "2..", "..8")`
}

func (r IntRange) validate() error { return checkRange(r.Min, r.Max, strconv.Itoa) }

// Validate checks a range built from its mapping form {min, max}.
func (r IntRange) Validate() error { return r.validate() }

// parseRange parses "V", "MIN..", "..MAX", "MIN..MAX" or "..", with parse
// reading a bound. A fault in a lone value is one in the whole input.
func parseRange[T cmp.Ordered](s string, parse func(string) (T, *fault)) (lo, hi *T, f *fault) {
	if strings.TrimSpace(s) == "" {
		return nil, nil, faultf("empty")
	}
	ts := split(s, "..", 2)
	if len(ts) == 1 {
		v, f := parse(s)
		if f != nil {
			return nil, nil, f
		}
		w := v
		return &v, &w, nil
	}
	bound := func(t token) (*T, *fault) {
		if t.text == "" {
			return nil, nil
		}
		v, f := parse(t.text)
		if f != nil {
			return nil, f.in(t)
		}
		return &v, nil
	}
	if lo, f = bound(ts[0]); f != nil {
		return nil, nil, f
	}
	if hi, f = bound(ts[1]); f != nil {
		return nil, nil, f
	}
	if lo != nil && hi != nil && *lo > *hi {
		return nil, nil, faultf("min %s is greater than max %s", ts[0].text, ts[1].text)
	}
	return lo, hi, nil
}

func formatRange[T comparable](lo, hi *T, format func(T) string) string {
	if lo != nil && hi != nil && *lo == *hi {
		return format(*lo)
	}
	var s string
	if lo != nil {
		s = format(*lo)
	}
	s += ".."
	if hi != nil {
		s += format(*hi)
	}
	return s
}

// checkRange validates a range built other than by parsing.
func checkRange[T cmp.Ordered](lo, hi *T, format func(T) string) error {
	var zero T
	switch {
	case lo != nil && *lo < zero, hi != nil && *hi < zero:
		return errors.New("must not be negative")
	case lo != nil && hi != nil && *lo > *hi:
		return fmt.Errorf("min %s is greater than max %s", format(*lo), format(*hi))
	}
	return nil
}
