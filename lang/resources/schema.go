package resources

import (
	"reflect"
	"strings"
	"unicode"

	"github.com/invopop/jsonschema"
)

// Patterns of the string forms, in the ECMA-262 dialect of JSON Schema
// (which has no case-insensitive flag). They accept what the parsers do, up
// to white space inside tokens.
const (
	sizePattern  = `\d+(\.\d+)?\s*([mMgGtT][bB])?`
	countPattern = `\d+`
)

var (
	archPattern   = `(` + anyCase("x86") + `|` + anyCase("arm") + `)`
	vendorPattern = `(` + anyCase("nvidia|amd|google|intel|tenstorrent|tpu") + `)`
)

// anyCase turns the letters of p into classes of both cases: "x86" is
// "[xX]86".
func anyCase(p string) string {
	var b strings.Builder
	for _, r := range p {
		if u := unicode.ToUpper(r); u != r {
			b.WriteString("[" + string(r) + string(u) + "]")
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// rangeOf is the pattern of a range of values matching v.
func rangeOf(v string) string { return `(` + v + `|(` + v + `)?\s*\.\.\s*(` + v + `)?)` }

func anchored(p string) string { return `^\s*` + p + `\s*$` }

func stringSchema(pattern string, examples ...any) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: pattern, Examples: examples}
}

func numberSchema(typ, desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: typ, Minimum: "0", Description: desc}
}

// objectSchema reflects the mapping form of a type from v, a value of an
// unexported type with the same fields but no methods (so that this does not
// recurse into the JSONSchema method being written). Only fields tagged
// jsonschema:"required" are required: the others have defaults. fields
// describes the fields by Go name; patterns sets the patterns of string
// properties by JSON name.
func objectSchema(v any, desc string, fields, patterns map[string]string) *jsonschema.Schema {
	r := jsonschema.Reflector{
		DoNotReference:             true,
		ExpandedStruct:             true,
		Anonymous:                  true,
		RequiredFromJSONSchemaTags: true,
		LookupComment: func(_ reflect.Type, field string) string {
			if field == "" {
				return desc
			}
			return fields[field]
		},
	}
	s := r.Reflect(v)
	s.Version = ""
	for name, p := range patterns {
		s.Properties.Value(name).Pattern = p
	}
	return s
}

// JSONSchema describes a memory size.
func (Memory) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "Memory size: a number with a unit MB, GB or TB (1GB = 1024MB), or a number of gigabytes.",
		OneOf: []*jsonschema.Schema{
			stringSchema(anchored(sizePattern), "512MB", "16GB", "1.5TB"),
			numberSchema("number", "gigabytes"),
		},
	}
}

// boundsSchema is the mapping form of a range, {min, max}, with bounds
// described by bound (a schema, or a value whose JSONSchema is used).
func boundsSchema(bound any) *jsonschema.Schema {
	b, ok := bound.(*jsonschema.Schema)
	if !ok {
		b = bound.(interface{ JSONSchema() *jsonschema.Schema }).JSONSchema()
	}
	lo, hi := *b, *b
	lo.Description, hi.Description = "Lower bound, inclusive", "Upper bound, inclusive"
	props := jsonschema.NewProperties()
	props.Set("min", &lo)
	props.Set("max", &hi)
	return &jsonschema.Schema{Type: "object", Description: "A range as a mapping; a missing bound is open",
		Properties: props, AdditionalProperties: jsonschema.FalseSchema}
}

// JSONSchema describes a memory range.
func (MemoryRange) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: `Memory range: a size (exactly), "MIN..", "..MAX" or "MIN..MAX"; sizes have a unit MB, GB or TB, or are numbers of gigabytes.`,
		OneOf: []*jsonschema.Schema{
			stringSchema(anchored(rangeOf(sizePattern)), "40GB", "24GB..80GB", "8GB..", "..80GB"),
			numberSchema("number", "gigabytes, exactly"),
			boundsSchema(Memory(0)),
		},
	}
}

// JSONSchema describes a count range.
func (IntRange) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: `Range: a number (exactly), "MIN..", "..MAX", "MIN..MAX" or "..".`,
		OneOf: []*jsonschema.Schema{
			stringSchema(anchored(rangeOf(countPattern)), "2", "1..4", "2..", "..8"),
			numberSchema("integer", "exactly"),
			boundsSchema(&jsonschema.Schema{Type: "integer", Minimum: "0"}),
		},
	}
}

// JSONSchema describes a list of names.
func (Names) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "Alternative names: any one will do.",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Description: `names separated by ","`, Examples: []any{"A100", "H100,H200"}},
			{Type: "array", Items: &jsonschema.Schema{Type: "string", MinLength: new(uint64(1))}},
		},
	}
}

// JSONSchema describes a cpu spec.
func (CPU) JSONSchema() *jsonschema.Schema {
	count := rangeOf(countPattern)
	return &jsonschema.Schema{
		Description: `CPU: a count range, optionally with an architecture x86 or arm ("x86:16.."), or a mapping.`,
		OneOf: []*jsonschema.Schema{
			stringSchema(anchored(`(`+count+`|`+archPattern+`|`+archPattern+`\s*:\s*`+count+`|`+count+`\s*:\s*`+archPattern+`)`),
				"4", "2..8", "x86:16..", "arm:8"),
			numberSchema("integer", "exactly this many CPUs"),
			objectSchema(cpuObject{}, "CPU as a mapping.", map[string]string{
				"Arch":  "Architecture: x86 or arm.",
				"Count": `Number of CPUs; default "2..".`,
			}, map[string]string{"arch": anchored(archPattern)}),
		},
	}
}

// JSONSchema describes a gpu spec.
func (GPU) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: `GPU: tokens separated by ":" in any order: a vendor (nvidia, amd, google, intel, tenstorrent, or tpu for google), ` +
			`names ("H100,H200"), memory per GPU ("24GB.."), and a count range ("2", "1..4"; default 1). Or a mapping.`,
		OneOf: []*jsonschema.Schema{
			{Type: "string", Pattern: `^[^:]+(:[^:]+){0,3}$`, Examples: []any{"A100", "A100:40GB:2", "H100,H200:8", "24GB..80GB:2", "nvidia:A100:80GB:1..2", "tpu:v5p-1024", "0..:nvidia"}},
			numberSchema("integer", "exactly this many GPUs, of any kind"),
			objectSchema(gpuObject{}, "GPU as a mapping.", map[string]string{
				"Vendor":            "Vendor: nvidia, amd, google, intel or tenstorrent.",
				"Names":             "GPU names; any one will do.",
				"Count":             "Number of GPUs; default 1.",
				"Memory":            "Memory per GPU.",
				"TotalMemory":       "Memory of all GPUs together.",
				"ComputeCapability": `Minimum CUDA compute capability, "major.minor".`,
			}, map[string]string{"vendor": anchored(vendorPattern), "compute_capability": `^\d+\.\d+$`}),
		},
	}
}

// JSONSchema describes a disk spec.
func (Disk) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: `Disk: a size range ("100GB..") or a mapping.`,
		OneOf: []*jsonschema.Schema{
			stringSchema(anchored(rangeOf(sizePattern)), "100GB", "100GB..", "200GB..1TB"),
			numberSchema("number", "gigabytes, exactly"),
			objectSchema(diskObject{}, "Disk as a mapping.", map[string]string{"Size": "Disk size range."}, nil),
		},
	}
}
