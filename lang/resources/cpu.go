package resources

import (
	"fmt"
	"strings"
)

// CPU is a cpu spec: "4", "4..", "x86:16..", "arm:8" or "16..:x86".
type CPU struct {
	// Arch is x86 or arm (lower case when parsed), empty when not written.
	Arch  string   `json:"arch,omitempty" jsonschema_description:"CPU architecture: x86 or arm"`
	Count IntRange `json:"count" jsonschema_description:"Number of cores"`
}

// ParseCPU parses a cpu spec. A spec without a count asks for "2..".
func ParseCPU(s string) (CPU, error) {
	c, f := parseCPU(s)
	if f != nil {
		return CPU{}, f.err("cpu spec", s)
	}
	return c, nil
}

func parseCPU(s string) (CPU, *fault) {
	var c CPU
	if strings.TrimSpace(s) == "" {
		return c, faultf("empty")
	}
	var arch, count *token
	for _, t := range split(s, ":", -1) {
		switch {
		case t.text == "":
			return c, t.faultf("empty token")
		case isLetter(t.text[0]):
			a := strings.ToLower(t.text)
			if a != "x86" && a != "arm" {
				return c, t.faultf("unknown architecture %q (want x86 or arm)", t.text)
			}
			if arch != nil {
				return c, t.faultf("architecture given twice (first %q)", arch.text)
			}
			arch, c.Arch = &t, a
		default:
			if count != nil {
				return c, t.faultf("count given twice (first %q)", count.text)
			}
			r, f := parseIntRange(t.text)
			if f != nil {
				return c, f.in(t)
			}
			count, c.Count = &t, r
		}
	}
	if count == nil {
		c.SetDefaults()
	}
	return c, nil
}

// String formats c as "ARCH:COUNT" or "COUNT".
func (c CPU) String() string {
	if c.Arch == "" {
		return c.Count.String()
	}
	return c.Arch + ":" + c.Count.String()
}

// Validate checks a CPU built other than by ParseCPU, such as one decoded
// from a mapping.
func (c CPU) Validate() error {
	if a := strings.ToLower(c.Arch); a != "" && a != "x86" && a != "arm" {
		return fmt.Errorf("arch: unknown architecture %q (want x86 or arm)", c.Arch)
	}
	if err := c.Count.validate(); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

// MarshalText implements [encoding.TextMarshaler].
func (c CPU) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (c *CPU) UnmarshalText(b []byte) error {
	v, err := ParseCPU(string(b))
	if err == nil {
		*c = v
	}
	return err
}

// cpuObject is CPU without its methods: the mapping form.
type cpuObject CPU

// MarshalJSON writes the string form when it reads back as c, else an
// object.
func (c CPU) MarshalJSON() ([]byte, error) {
	return marshalForm(func() (string, bool) { return textForm(c, parseCPU) }, cpuObject(c))
}

// SetDefaults sets the fields that a mapping may leave out to their
// defaults: Count to "2..", as in the string form. A decoder of the mapping
// form calls it before filling in the fields written.
func (c *CPU) SetDefaults() { c.Count = IntRange{Min: new(2)} }

// UnmarshalJSON accepts a string, a number (a count) or an object.
func (c *CPU) UnmarshalJSON(b []byte) error {
	var obj cpuObject
	(*CPU)(&obj).SetDefaults()
	return unmarshalForm(b, c, &obj, func() error {
		*c = CPU(obj)
		return c.Validate()
	})
}

// DescribeType names the accepted forms in decoding errors.
func (CPU) DescribeType() string { return `a cpu spec ("4", "2..8", "x86:16..") or a mapping` }
