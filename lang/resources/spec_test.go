package resources

import (
	"encoding"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/invopop/jsonschema"
)

func TestParseDisk(t *testing.T) {
	tests := []struct {
		in   string
		want Disk
		str  string
	}{
		{"100GB", Disk{MemoryRange{new(100 * GB), new(100 * GB)}}, "100GB"},
		{"100GB..", Disk{MemoryRange{Min: new(100 * GB)}}, "100GB.."},
		{"200", Disk{MemoryRange{new(200 * GB), new(200 * GB)}}, "200GB"},
		{"100GB..1TB", Disk{MemoryRange{new(100 * GB), new(TB)}}, "100GB..1TB"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDisk(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := ParseDisk(got.String())
			if diff := cmp.Diff(got, again); err != nil || diff != "" {
				t.Errorf("round trip: %v %s", err, diff)
			}
		})
	}
	for _, tt := range []badCase{
		{"", "", 0, "empty"},
		{"big", "", 0, "want a size like"},
		{"100GB..50GB", "", 0, "min 100GB is greater than max 50GB"},
		{"100GB..5XB", "5XB", 7, `unknown unit "XB"`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseDisk(tt.in)
			checkError(t, err, "disk spec", tt)
		})
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	got := map[string]string{"cpu": d.CPU.String(), "memory": d.Memory.String(), "gpu": d.GPU.String(), "disk": d.Disk.String()}
	want := map[string]string{"cpu": "2..", "memory": "8GB..", "gpu": "0..", "disk": "100GB.."}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	if d.SharedMemory != nil {
		t.Errorf("SharedMemory = %v, want nil", *d.SharedMemory)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	*d.CPU.Count.Min = 64
	if Default().CPU.String() != "2.." {
		t.Error("Default shares its values between calls")
	}
}

func TestWithDefaults(t *testing.T) {
	gpu, _ := ParseGPU("A100:2")
	shm := 16 * GB
	tests := []struct {
		name string
		in   Spec
		want Spec
	}{
		{"empty", Spec{}, Default()},
		{"gpu and shm", Spec{GPU: &gpu, SharedMemory: &shm}, func() Spec {
			s := Default()
			s.GPU, s.SharedMemory = &gpu, &shm
			return s
		}()},
		{"all", Default(), Default()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.WithDefaults()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Spec
		want string
	}{
		{"cpu", Spec{CPU: &CPU{Arch: "mips"}}, "cpu: arch"},
		{"memory", Spec{Memory: &MemoryRange{new(2 * GB), new(GB)}}, "memory: min 2GB"},
		{"shm", Spec{SharedMemory: new(-MB)}, "shm_size: must not be negative"},
		{"gpu", Spec{GPU: &GPU{Vendor: "acme"}}, "gpu: vendor"},
		{"disk", Spec{Disk: &Disk{MemoryRange{Min: new(-GB)}}}, "disk: size: must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// The decoder of YAML and HCL relies on these.
var (
	_ encoding.TextUnmarshaler = (*Memory)(nil)
	_ encoding.TextUnmarshaler = (*IntRange)(nil)
	_ encoding.TextUnmarshaler = (*MemoryRange)(nil)
	_ encoding.TextUnmarshaler = (*Names)(nil)
	_ encoding.TextUnmarshaler = (*GPU)(nil)
	_ encoding.TextUnmarshaler = (*CPU)(nil)
	_ encoding.TextUnmarshaler = (*Disk)(nil)
	_ encoding.TextMarshaler   = Memory(0)
	_ encoding.TextMarshaler   = IntRange{}
	_ encoding.TextMarshaler   = MemoryRange{}
	_ encoding.TextMarshaler   = Names{}
	_ encoding.TextMarshaler   = GPU{}
	_ encoding.TextMarshaler   = CPU{}
	_ encoding.TextMarshaler   = Disk{}
)

func TestMarshalJSON(t *testing.T) {
	gpu, _ := ParseGPU("nvidia:A100,H100:40GB..:2")
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"default spec", Default(), `{"cpu":"2..","memory":"8GB..","gpu":"0..","disk":"100GB.."}`},
		{"gpu", gpu, `"nvidia:A100,H100:40GB..:2"`},
		{"gpu with total memory", GPU{Names: Names{"A100"}, Count: one(), TotalMemory: &MemoryRange{Min: new(80 * GB)}},
			`{"name":"A100","count":"1","total_memory":"80GB.."}`},
		{"gpu with compute capability", GPU{Count: one(), ComputeCapability: "8.0"}, `{"count":"1","compute_capability":"8.0"}`},
		{"gpu with open memory", GPU{Count: one(), Memory: &MemoryRange{}}, `{"count":"1","memory":".."}`},
		{"cpu", CPU{Arch: "arm", Count: IntRange{Min: new(4)}}, `"arm:4.."`},
		{"cpu not canonical", CPU{Arch: "ARM", Count: IntRange{Min: new(4)}}, `{"arch":"ARM","count":"4.."}`},
		{"disk", Disk{MemoryRange{Min: new(100 * GB)}}, `"100GB.."`},
		{"shm", Spec{SharedMemory: new(1536 * MB)}, `{"shm_size":"1536MB"}`},
		{"names", Names{"a", "b"}, `"a,b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
	if _, err := (GPU{Count: one(), ComputeCapability: "8.0"}).MarshalText(); err == nil {
		t.Error("MarshalText of a GPU without string form: no error")
	}
}

func TestUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
	}{
		{`{"cpu":"2..","memory":"8GB..","gpu":"0..","disk":"100GB.."}`, Default()},
		{`{"cpu":4,"memory":16,"shm_size":"1GB","gpu":2,"disk":200}`, Spec{
			CPU:          &CPU{Count: IntRange{new(4), new(4)}},
			Memory:       &MemoryRange{new(16 * GB), new(16 * GB)},
			SharedMemory: new(GB),
			GPU:          &GPU{Count: IntRange{new(2), new(2)}},
			Disk:         &Disk{MemoryRange{new(200 * GB), new(200 * GB)}},
		}},
		{`{"cpu":{"arch":"arm"},"gpu":{"name":["A100","H100"],"memory":"40GB.."},"disk":{"size":"1TB.."}}`, Spec{
			CPU:  &CPU{Arch: "arm", Count: IntRange{Min: new(2)}},
			GPU:  &GPU{Names: Names{"A100", "H100"}, Memory: &MemoryRange{Min: new(40 * GB)}, Count: one()},
			Disk: &Disk{MemoryRange{Min: new(TB)}},
		}},
		{`{"gpu":{"name":"A100, H100","count":2,"total_memory":"80GB..","compute_capability":"8.0"}}`, Spec{
			GPU: &GPU{Names: Names{"A100", "H100"}, Count: IntRange{new(2), new(2)}, TotalMemory: &MemoryRange{Min: new(80 * GB)}, ComputeCapability: "8.0"},
		}},
		{`{"gpu":null,"cpu":{"count":null}}`, Spec{CPU: &CPU{Count: IntRange{Min: new(2)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got Spec
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// And back: the JSON form reads back equal.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var again Spec
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("%s reads back (-first +second):\n%s", b, diff)
			}
		})
	}
	for _, in := range []string{
		`{"gpu":"A100:2:4"}`,
		`{"gpu":{"vendor":"acme"}}`,
		`{"gpu":{"name":["A100",""]}}`,
		`{"gpu":{"compute_capability":"eight"}}`,
		`{"gpu":true}`,
		`{"gpu":[1]}`,
		`{"cpu":{"arch":"mips"}}`,
		`{"cpu":"x86:x86"}`,
		`{"memory":"8XB"}`,
		`{"memory":-1}`,
		`{"disk":{"size":"2GB..1GB"}}`,
		`{"disk":{"size":{}}}`,
	} {
		t.Run(in, func(t *testing.T) {
			var s Spec
			if err := json.Unmarshal([]byte(in), &s); err == nil {
				t.Errorf("no error")
			}
		})
	}
}

// schemaJSON reflects v the way a caller would, with references.
func schemaJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jsonschema.Reflect(v))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestJSONSchema(t *testing.T) {
	defs := schemaJSON(t, &Spec{})["$defs"].(map[string]any)
	for _, name := range []string{"Spec", "CPU", "GPU", "Disk", "Memory", "MemoryRange"} {
		if defs[name] == nil {
			t.Errorf("no definition of %s", name)
		}
	}
	// Each branch of each type's oneOf: string examples parse and match the
	// pattern; object forms allow no other properties.
	parsers := map[string]func(string) error{
		"Memory":      func(s string) error { _, err := ParseMemory(s); return err },
		"IntRange":    func(s string) error { _, err := ParseIntRange(s); return err },
		"MemoryRange": func(s string) error { _, err := ParseMemoryRange(s); return err },
		"CPU":         func(s string) error { _, err := ParseCPU(s); return err },
		"GPU":         func(s string) error { _, err := ParseGPU(s); return err },
		"Disk":        func(s string) error { _, err := ParseDisk(s); return err },
		"Names":       func(s string) error { var n Names; return n.UnmarshalText([]byte(s)) },
	}
	schemas := map[string]*jsonschema.Schema{
		"Memory": Memory(0).JSONSchema(), "IntRange": IntRange{}.JSONSchema(), "MemoryRange": MemoryRange{}.JSONSchema(),
		"CPU": CPU{}.JSONSchema(), "GPU": GPU{}.JSONSchema(), "Disk": Disk{}.JSONSchema(), "Names": Names{}.JSONSchema(),
	}
	for name, s := range schemas {
		t.Run(name, func(t *testing.T) {
			if s.Description == "" {
				t.Error("no description")
			}
			for _, b := range s.OneOf {
				switch b.Type {
				case "string":
					var re *regexp.Regexp
					if b.Pattern != "" {
						re = regexp.MustCompile(b.Pattern)
					}
					if len(b.Examples) == 0 {
						t.Error("string form without examples")
					}
					for _, ex := range b.Examples {
						if err := parsers[name](ex.(string)); err != nil {
							t.Errorf("example %q: %v", ex, err)
						}
						if re != nil && !re.MatchString(ex.(string)) {
							t.Errorf("example %q does not match %s", ex, b.Pattern)
						}
					}
				case "object":
					if b.AdditionalProperties != jsonschema.FalseSchema {
						t.Error("object form allows additional properties")
					}
					if b.Description == "" || b.Properties.Len() == 0 {
						t.Error("object form without description or properties")
					}
					for p := range b.Properties.ValuesFromOldest() {
						if p.Description == "" {
							t.Error("property without description")
						}
					}
				}
			}
		})
	}
	gpu := schemas["GPU"].OneOf[2]
	var props []string
	for k := range gpu.Properties.KeysFromOldest() {
		props = append(props, k)
	}
	if diff := cmp.Diff([]string{"vendor", "name", "count", "memory", "total_memory", "compute_capability"}, props); diff != "" {
		t.Errorf("gpu properties (-want +got):\n%s", diff)
	}
	if len(gpu.Required) != 0 {
		t.Errorf("gpu mapping requires %v", gpu.Required)
	}
	if diff := cmp.Diff([]string{"size"}, schemas["Disk"].OneOf[2].Required); diff != "" {
		t.Errorf("disk required (-want +got):\n%s", diff)
	}
	vendor := regexp.MustCompile(gpu.Properties.Value("vendor").Pattern)
	for _, v := range []string{"nvidia", "AMD", "tpu"} {
		if !vendor.MatchString(v) {
			t.Errorf("vendor pattern does not match %q", v)
		}
	}
}

// TestPatterns checks the string patterns against inputs the parsers take
// and refuse.
func TestPatterns(t *testing.T) {
	tests := []struct {
		schema *jsonschema.Schema
		parse  func(string) error
		inputs []string
	}{
		{IntRange{}.JSONSchema(), func(s string) error { _, err := ParseIntRange(s); return err },
			[]string{"2", "2..", "..8", "1..4", "..", " 1 .. 4 ", "x", "1..2..3", "-1", ""}},
		{MemoryRange{}.JSONSchema(), func(s string) error { _, err := ParseMemoryRange(s); return err },
			[]string{"40GB", "8gb..", "..80 GB", "1..2TB", "0.5GB", "..", "40XB", "1...2", "GB"}},
		{CPU{}.JSONSchema(), func(s string) error { _, err := ParseCPU(s); return err },
			[]string{"4", "x86:16..", "16..:ARM", "arm", "x86:arm", "sparc", "4:4", ""}},
		{Memory(0).JSONSchema(), func(s string) error { _, err := ParseMemory(s); return err },
			[]string{"16", "16GB", "1.5 tb", "16XB", "-1", ""}},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.schema.OneOf[0].Pattern)
		for _, in := range tt.inputs {
			// Patterns do not check min <= max nor the size of numbers, and
			// these inputs avoid that.
			if got, want := re.MatchString(in), tt.parse(in) == nil; got != want {
				t.Errorf("pattern %s matches %q: %v, parses: %v", re, in, got, want)
			}
		}
	}
}
