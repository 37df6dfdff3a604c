package resources

import (
	"math/big"
	"strconv"
	"strings"
)

// Memory is an amount of memory in mebibytes. dstack's units are binary:
// 1GB is 1024MB.
type Memory int64

// Memory units.
const (
	MB Memory = 1
	GB        = 1024 * MB
	TB        = 1024 * GB
)

// ParseMemory parses a memory size: "512MB", "16GB", "1.5TB", "0.5GB", or a
// bare number of gigabytes ("16"). Units are case-insensitive and may follow
// the number after a space.
func ParseMemory(s string) (Memory, error) {
	m, f := parseMemory(s)
	if f != nil {
		return 0, f.err("memory size", s)
	}
	return m, nil
}

func parseMemory(s string) (Memory, *fault) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, faultf("empty")
	}
	if s[0] == '-' {
		return 0, faultf("must not be negative")
	}
	i := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	whole, frac, dot := strings.Cut(num, ".")
	if !isDigits(whole) || dot && !isDigits(frac) {
		return 0, faultf("want a size like 512MB, 16GB or 1.5TB")
	}
	var mult Memory
	switch strings.ToUpper(unit) {
	case "MB":
		mult = MB
	case "GB", "": // a bare number is in gigabytes, as in dstack
		mult = GB
	case "TB":
		mult = TB
	default:
		return 0, faultf("unknown unit %q (want MB, GB or TB)", unit)
	}
	// Whole numbers, nearly every size written, need no big arithmetic.
	if !dot && len(whole) <= 12 {
		n, err := strconv.ParseInt(whole, 10, 64)
		if err == nil {
			return Memory(n) * mult, nil
		}
	}
	// Exact decimal arithmetic: "0.1GB" is not a whole number of megabytes,
	// which float64 would round away.
	r, _ := new(big.Rat).SetString(num)
	r.Mul(r, new(big.Rat).SetInt64(int64(mult)))
	if !r.IsInt() {
		return 0, faultf("not a whole number of megabytes")
	}
	if !r.Num().IsInt64() {
		return 0, faultf("too large")
	}
	return Memory(r.Num().Int64()), nil
}

// String formats m in the largest unit that divides it evenly: "1TB",
// "16GB", "1536MB".
func (m Memory) String() string {
	switch {
	case m != 0 && m%TB == 0:
		return strconv.FormatInt(int64(m/TB), 10) + "TB"
	case m%GB == 0:
		return strconv.FormatInt(int64(m/GB), 10) + "GB"
	}
	return strconv.FormatInt(int64(m), 10) + "MB"
}

// MarshalText implements [encoding.TextMarshaler].
func (m Memory) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (m *Memory) UnmarshalText(b []byte) error {
	v, err := ParseMemory(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// UnmarshalJSON accepts a string or a number (of gigabytes).
func (m *Memory) UnmarshalJSON(b []byte) error { return unmarshalScalar(b, m) }

// DescribeType names the accepted forms in decoding errors.
func (Memory) DescribeType() string {
	return `a memory size ("512MB", "16GB", "1.5TB"; a bare number is in GB)`
}

// MemoryRange is an inclusive range of memory sizes; a nil bound is open.
// It is written "24GB..80GB", "8GB..", "..80GB" or "40GB" (exactly).
type MemoryRange struct {
	Min *Memory `json:"min,omitempty" jsonschema_description:"Smallest size"`
	Max *Memory `json:"max,omitempty" jsonschema_description:"Largest size; no limit when unset"`
}

// ParseMemoryRange parses a memory range.
func ParseMemoryRange(s string) (MemoryRange, error) {
	r, f := parseMemoryRange(s)
	if f != nil {
		return MemoryRange{}, f.err("memory range", s)
	}
	return r, nil
}

func parseMemoryRange(s string) (MemoryRange, *fault) {
	lo, hi, f := parseRange(s, parseMemory)
	return MemoryRange{lo, hi}, f
}

// String formats r as "24GB..80GB", "8GB..", "..80GB", "40GB" or "..".
func (r MemoryRange) String() string { return formatRange(r.Min, r.Max, Memory.String) }

// MarshalText implements [encoding.TextMarshaler].
func (r MemoryRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (r *MemoryRange) UnmarshalText(b []byte) error {
	v, err := ParseMemoryRange(string(b))
	if err == nil {
		*r = v
	}
	return err
}

// UnmarshalJSON accepts a string or a number (of gigabytes).
func (r *MemoryRange) UnmarshalJSON(b []byte) error { return unmarshalScalar(b, r) }

// DescribeType names the accepted forms in decoding errors.
func (MemoryRange) DescribeType() string {
	return `a memory size or range ("40GB", "24GB..80GB", "8GB..")`
}

func (r MemoryRange) validate() error { return checkRange(r.Min, r.Max, Memory.String) }

// Validate checks a range built from its mapping form {min, max}.
func (r MemoryRange) Validate() error { return r.validate() }
