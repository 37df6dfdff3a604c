package resources

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// GPU is a gpu spec. Its string form is tokens separated by ':' in any
// order: a vendor, names, memory per GPU and a count; see the package
// documentation.
type GPU struct {
	// Vendor is the vendor as written (lower case when parsed), empty when
	// not written; see EffectiveVendor.
	Vendor string `json:"vendor,omitempty" jsonschema_description:"GPU vendor"`
	// Names are alternatives: any of them will do.
	Names Names    `json:"name,omitempty" jsonschema_description:"GPU names; any of them will do"`
	Count IntRange `json:"count" jsonschema_description:"Number of GPUs"`
	// Memory is the memory per GPU.
	Memory *MemoryRange `json:"memory,omitempty" jsonschema_description:"Memory of each GPU"`
	// TotalMemory is the memory of all GPUs together; mapping form only.
	TotalMemory *MemoryRange `json:"total_memory,omitempty" jsonschema_description:"Memory of all GPUs together"`
	// ComputeCapability is the minimum CUDA compute capability as
	// "major.minor" ("7.5"); mapping form only.
	ComputeCapability string `json:"compute_capability,omitempty" jsonschema_description:"Lowest CUDA compute capability, as major.minor"`
}

// vendors lists the GPU vendors, lower case.
var vendors = []string{"nvidia", "amd", "google", "intel", "tenstorrent"}

// knownGPUs maps well-known names (upper case) to their vendor, to catch
// "A100:amd" and to infer a vendor. TPU names are matched by isTPU.
//
// The list is also what validation checks names against: a name one typo
// away from one of these is taken for a typo and refused, so the list
// holds the real models near the common ones (H20 beside H200, B300
// beside B200, RTX5080 beside RTX5090) lest they be refused as typos.
// Every GPU of the offers catalog (providers/offers/catalog.csv) must be
// here; a test there checks it.
var knownGPUs = map[string]string{}

func init() {
	for vendor, names := range map[string]string{
		"nvidia": "A2 A10 A10G A16 A30 A40 A100 A100X A800 A2000 A4000 A4500 A5000 A6000 " +
			"B100 B200 B300 GB200 GB300 GH200 H20 H100 H100NVL H200 H800 K80 L4 L20 L40 L40S " +
			"M60 P4 P40 P100 T4 V100 RTX2000ADA RTX4000ADA RTX5000ADA RTX6000ADA RTXPRO6000 " +
			"RTX2080 RTX2080TI RTX3060 RTX3060TI RTX3070 RTX3070TI RTX3080 RTX3080TI RTX3090 RTX3090TI " +
			"RTX4060 RTX4060TI RTX4070 RTX4070TI RTX4080 RTX4090 RTX5060TI RTX5070 RTX5070TI RTX5080 RTX5090 " +
			"RTX4000 RTX5000 RTX6000 RTX8000 RTXA2000 RTXA4000 RTXA4500 RTXA5000 RTXA6000",
		"amd":         "MI50 MI60 MI100 MI210 MI250 MI250X MI300A MI300X MI308X MI325X MI350X MI355X",
		"intel":       "GAUDI GAUDI2 GAUDI3",
		"tenstorrent": "N150 N300",
	} {
		for _, n := range strings.Fields(names) {
			knownGPUs[n] = vendor
		}
	}
}

// KnownGPU reports whether name (any case) is a GPU or TPU name dstack
// knows, the names of its offers catalog among them.
func KnownGPU(name string) bool { return gpuVendor(name) != "" }

// KnownGPUNames returns the well-known GPU names, upper case and sorted.
// TPU names ("v5p-8") are not listed; [KnownGPU] knows them by form.
func KnownGPUNames() []string {
	out := make([]string, 0, len(knownGPUs))
	for n := range knownGPUs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// normVendor returns the vendor named by s, lower case, or "" if s names
// none. "tpu" names google.
func normVendor(s string) string {
	v := strings.ToLower(s)
	switch v {
	case "tpu":
		return "google"
	case "tt":
		return "tenstorrent"
	}
	for _, k := range vendors {
		if v == k {
			return v
		}
	}
	return ""
}

// gpuVendor returns the vendor of a well-known name, or "".
func gpuVendor(name string) string {
	if isTPU(name) {
		return "google"
	}
	return knownGPUs[strings.ToUpper(name)]
}

// isTPU reports whether name is a TPU name: "v2", "v5p-1024",
// "v5litepod-8", optionally with a "tpu-" prefix.
func isTPU(name string) bool {
	n := strings.ToLower(name)
	n = strings.TrimPrefix(n, "tpu-")
	gen, size, sized := strings.Cut(n, "-")
	switch gen {
	case "v2", "v3", "v4", "v5e", "v5p", "v5litepod", "v6e":
		return !sized || isDigits(size)
	}
	return false
}

// checkGPUName returns what is wrong with a name, or "".
func checkGPUName(n string) string {
	if !isLetter(n[0]) {
		return "gpu name must start with a letter"
	}
	for _, r := range n {
		if r >= 0x80 || !isLetter(byte(r)) && !('0' <= r && r <= '9') && !strings.ContainsRune("-_.+", r) {
			return fmt.Sprintf("invalid character %q in gpu name", r)
		}
	}
	if normVendor(n) != "" {
		return fmt.Sprintf("%q is a vendor, not a gpu name", n)
	}
	return ""
}

// mismatch returns the first of names whose vendor is known and differs
// from vendor, and its vendor.
func mismatch(vendor string, names []string) (name, its string) {
	for _, n := range names {
		if v := gpuVendor(n); v != "" && v != vendor {
			return n, v
		}
	}
	return "", ""
}

// ParseGPU parses a gpu spec such as "A100:40GB:2". A spec without a count
// asks for exactly one GPU.
func ParseGPU(s string) (GPU, error) {
	g, f := parseGPU(s)
	if f != nil {
		return GPU{}, f.err("gpu spec", s)
	}
	return g, nil
}

func parseGPU(s string) (GPU, *fault) {
	var g GPU
	if strings.TrimSpace(s) == "" {
		return g, faultf("empty")
	}
	// The first token of each kind, to report duplicates.
	var vendor, names, memory, count *token
	twice := func(t token, what string, first *token) *fault {
		return t.faultf("%s given twice (first %q)", what, first.text)
	}
	for _, t := range split(s, ":", -1) {
		switch {
		case t.text == "":
			return g, t.faultf("empty token")
		case normVendor(t.text) != "":
			if vendor != nil {
				return g, twice(t, "vendor", vendor)
			}
			vendor, g.Vendor = &t, normVendor(t.text)
		case isLetter(t.text[0]) || strings.Contains(t.text, ","):
			if names != nil {
				return g, twice(t, "name", names)
			}
			ns, f := parseNames(t.text, checkGPUName)
			if f != nil {
				return g, f.in(t)
			}
			names, g.Names = &t, ns
		case hasLetter(t.text): // a unit: memory
			if memory != nil {
				return g, twice(t, "memory", memory)
			}
			r, f := parseMemoryRange(t.text)
			if f != nil {
				return g, f.in(t)
			}
			memory, g.Memory = &t, &r
		default:
			if count != nil {
				return g, twice(t, "count", count)
			}
			r, f := parseIntRange(t.text)
			if f != nil {
				return g, f.in(t)
			}
			count, g.Count = &t, r
		}
	}
	if count == nil {
		g.SetDefaults()
	}
	if vendor != nil {
		if n, v := mismatch(g.Vendor, g.Names); n != "" {
			return g, vendor.faultf("vendor %q does not match gpu %q (%s)", vendor.text, n, v)
		}
	}
	return g, nil
}

// String formats g with its tokens in canonical order: vendor (if any),
// names, memory (if any) and count, e.g. "nvidia:A100,H100:40GB..:2".
// TotalMemory and ComputeCapability have no string form, nor has a fully
// open Memory, which is left out.
func (g GPU) String() string {
	var ts []string
	if g.Vendor != "" {
		ts = append(ts, g.Vendor)
	}
	if len(g.Names) > 0 {
		ts = append(ts, strings.Join(g.Names, ","))
	}
	if g.Memory != nil && (g.Memory.Min != nil || g.Memory.Max != nil) {
		ts = append(ts, g.Memory.String())
	}
	return strings.Join(append(ts, g.Count.String()), ":")
}

// EffectiveVendor returns the vendor, lower case: the one written, else the
// one of the well-known names among Names when they agree on one, else "".
func (g GPU) EffectiveVendor() string {
	if g.Vendor != "" {
		return normVendor(g.Vendor)
	}
	var vendor string
	for _, n := range g.Names {
		switch v := gpuVendor(n); {
		case v == "":
		case vendor == "":
			vendor = v
		case v != vendor:
			return ""
		}
	}
	return vendor
}

// Validate checks a GPU built other than by ParseGPU, such as one decoded
// from a mapping.
func (g GPU) Validate() error {
	if g.Vendor != "" && normVendor(g.Vendor) == "" {
		return fmt.Errorf("vendor: unknown vendor %q (want %s)", g.Vendor, strings.Join(vendors, ", "))
	}
	if err := g.Names.validate(checkGPUName); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if g.Vendor != "" {
		if n, v := mismatch(normVendor(g.Vendor), g.Names); n != "" {
			return fmt.Errorf("vendor: %q does not match gpu %q (%s)", g.Vendor, n, v)
		}
	}
	if err := g.Count.validate(); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if err := validateMemory("memory", g.Memory); err != nil {
		return err
	}
	if err := validateMemory("total_memory", g.TotalMemory); err != nil {
		return err
	}
	if cc := g.ComputeCapability; cc != "" {
		major, minor, _ := strings.Cut(cc, ".")
		if !isDigits(major) || !isDigits(minor) {
			return fmt.Errorf("compute_capability: want major.minor such as 7.5, got %q", cc)
		}
	}
	return nil
}

// textForm returns g's string form and whether it reads back as g.
func (g GPU) textForm() (string, bool) { return textForm(g, parseGPU) }

// MarshalText implements [encoding.TextMarshaler]; it fails for a GPU that
// has no string form (see String).
func (g GPU) MarshalText() ([]byte, error) {
	s, ok := g.textForm()
	if !ok {
		return nil, errors.New("gpu spec has no string form")
	}
	return []byte(s), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (g *GPU) UnmarshalText(b []byte) error {
	v, err := ParseGPU(string(b))
	if err == nil {
		*g = v
	}
	return err
}

// gpuObject is GPU without its methods: the mapping form.
type gpuObject GPU

// MarshalJSON writes the string form when it reads back as g, else an
// object.
func (g GPU) MarshalJSON() ([]byte, error) { return marshalForm(g.textForm, gpuObject(g)) }

// SetDefaults sets the fields that a mapping may leave out to their
// defaults: Count to exactly 1, as in the string form. A decoder of the
// mapping form calls it before filling in the fields written.
func (g *GPU) SetDefaults() { g.Count = IntRange{new(1), new(1)} }

// UnmarshalJSON accepts a string, a number (a count) or an object.
func (g *GPU) UnmarshalJSON(b []byte) error {
	var obj gpuObject
	(*GPU)(&obj).SetDefaults()
	return unmarshalForm(b, g, &obj, func() error {
		*g = GPU(obj)
		return g.Validate()
	})
}

// DescribeType names the accepted forms in decoding errors.
func (GPU) DescribeType() string {
	return `a gpu spec ("A100:2", "H100,H200:8", "24GB..:1..4") or a mapping`
}

// Names is a list of names (of GPUs, volumes) where any one will do. Its
// string form separates them with ','.
type Names []string

// parseNames splits s at ',' and trims each name. check, if not nil,
// returns what is wrong with a (non-empty) name; Names are also volume names,
// so the GPU rules are not applied by default.
func parseNames(s string, check func(string) string) (Names, *fault) {
	var ns Names
	for _, t := range split(s, ",", -1) {
		if t.text == "" {
			return nil, t.faultf("empty name")
		}
		if check != nil {
			if msg := check(t.text); msg != "" {
				return nil, t.faultf("%s", msg)
			}
		}
		ns = append(ns, t.text)
	}
	return ns, nil
}

func (ns Names) validate(check func(string) string) error {
	for _, n := range ns {
		if n == "" || strings.TrimSpace(n) != n || strings.Contains(n, ",") {
			return fmt.Errorf("invalid name %q", n)
		}
		if check == nil {
			continue
		}
		if msg := check(n); msg != "" {
			return errors.New(msg)
		}
	}
	return nil
}

// String joins the names with ','.
func (ns Names) String() string { return strings.Join(ns, ",") }

// MarshalText implements [encoding.TextMarshaler].
func (ns Names) MarshalText() ([]byte, error) { return []byte(ns.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler]: "A100, H100" is two
// names.
func (ns *Names) UnmarshalText(b []byte) error {
	v, f := parseNames(string(b), nil)
	if f != nil {
		return f.err("name list", string(b))
	}
	*ns = v
	return nil
}

// UnmarshalJSON accepts a string of names or a list.
func (ns *Names) UnmarshalJSON(b []byte) error {
	var list []string
	if err := unmarshalForm(b, ns, &list, nil); err != nil {
		return err
	}
	if list != nil {
		if err := Names(list).validate(nil); err != nil {
			return err
		}
		*ns = list
	}
	return nil
}

// DescribeType names the accepted forms in decoding errors.
func (Names) DescribeType() string { return `a name, names separated by "," or a list of names` }
