package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func one() IntRange { return IntRange{new(1), new(1)} }

func TestParseGPU(t *testing.T) {
	tests := []struct {
		in   string
		want GPU
		str  string
	}{
		{"A100", GPU{Names: Names{"A100"}, Count: one()}, "A100:1"},
		{"A100:2", GPU{Names: Names{"A100"}, Count: IntRange{new(2), new(2)}}, "A100:2"},
		{"A100:40GB:2", GPU{Names: Names{"A100"}, Memory: &MemoryRange{new(40 * GB), new(40 * GB)}, Count: IntRange{new(2), new(2)}}, "A100:40GB:2"},
		{"24GB..80GB:2", GPU{Memory: &MemoryRange{new(24 * GB), new(80 * GB)}, Count: IntRange{new(2), new(2)}}, "24GB..80GB:2"},
		{"H100,H200:8", GPU{Names: Names{"H100", "H200"}, Count: IntRange{new(8), new(8)}}, "H100,H200:8"},
		{"MI300X:AMD", GPU{Vendor: "amd", Names: Names{"MI300X"}, Count: one()}, "amd:MI300X:1"},
		{"tpu:v5p-1024", GPU{Vendor: "google", Names: Names{"v5p-1024"}, Count: one()}, "google:v5p-1024:1"},
		{"v5p-1024:TPU", GPU{Vendor: "google", Names: Names{"v5p-1024"}, Count: one()}, "google:v5p-1024:1"},
		{"tpu-v5p-1024", GPU{Names: Names{"tpu-v5p-1024"}, Count: one()}, "tpu-v5p-1024:1"},
		{"v5litepod-8", GPU{Names: Names{"v5litepod-8"}, Count: one()}, "v5litepod-8:1"},
		{"0..:nvidia", GPU{Vendor: "nvidia", Count: IntRange{Min: new(0)}}, "nvidia:0.."},
		{"nvidia:A100:80GB:1..2", GPU{Vendor: "nvidia", Names: Names{"A100"}, Memory: &MemoryRange{new(80 * GB), new(80 * GB)}, Count: IntRange{new(1), new(2)}}, "nvidia:A100:80GB:1..2"},
		{"2", GPU{Count: IntRange{new(2), new(2)}}, "2"},
		{"L4:1", GPU{Names: Names{"L4"}, Count: one()}, "L4:1"},
		{"nvidia", GPU{Vendor: "nvidia", Count: one()}, "nvidia:1"},
		{"80GB..", GPU{Memory: &MemoryRange{Min: new(80 * GB)}, Count: one()}, "80GB..:1"},
		{"..:A10G", GPU{Names: Names{"A10G"}}, "A10G:.."},
		{"2:a100:512MB..1.5TB", GPU{Names: Names{"a100"}, Memory: &MemoryRange{new(512 * MB), new(1536 * GB)}, Count: IntRange{new(2), new(2)}}, "a100:512MB..1536GB:2"},
		{" H100 , H200 : 80 GB.. : 1..4 ", GPU{Names: Names{"H100", "H200"}, Memory: &MemoryRange{Min: new(80 * GB)}, Count: IntRange{new(1), new(4)}}, "H100,H200:80GB..:1..4"},
		{"RTX4090,my-gpu_2.x", GPU{Names: Names{"RTX4090", "my-gpu_2.x"}, Count: one()}, "RTX4090,my-gpu_2.x:1"},
		{"intel:Gaudi2:8", GPU{Vendor: "intel", Names: Names{"Gaudi2"}, Count: IntRange{new(8), new(8)}}, "intel:Gaudi2:8"},
		{"0", GPU{Count: IntRange{new(0), new(0)}}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseGPU(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseGPU(%q) (-want +got):\n%s", tt.in, diff)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			again, err := ParseGPU(got.String())
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip (-first +second):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestParseGPUErrors(t *testing.T) {
	tests := []badCase{
		{"A100:2:4", "4", 7, `count given twice (first "2")`},
		{"A100:40GB:80GB", "80GB", 10, `memory given twice (first "40GB")`},
		{"nvidia:amd", "amd", 7, `vendor given twice (first "nvidia")`},
		{"tpu:A100:Google", "Google", 9, `vendor given twice (first "tpu")`},
		{"A100:H100", "H100", 5, `name given twice (first "A100")`},
		{"A100::2", "", 5, "empty token"},
		{"A100:", "", 5, "empty token"},
		{":2", "", 0, "empty token"},
		{"A100: :2", "", 6, "empty token"},
		{"A100,", "", 5, "empty name"},
		{"A100,,H100", "", 5, "empty name"},
		{",A100", "", 0, "empty name"},
		{"A100:4..2", "4..2", 5, "min 4 is greater than max 2"},
		{"A100:24GB..8GB", "24GB..8GB", 5, "min 24GB is greater than max 8GB"},
		{"A100:amd", "amd", 5, `vendor "amd" does not match gpu "A100" (nvidia)`},
		{"amd:A100", "amd", 0, `vendor "amd" does not match gpu "A100" (nvidia)`},
		{"tpu:A100", "tpu", 0, `vendor "tpu" does not match gpu "A100" (nvidia)`},
		{"MI300X,H100:2:NVIDIA", "NVIDIA", 14, `does not match gpu "MI300X" (amd)`},
		{"v5p-8:nvidia", "nvidia", 6, `does not match gpu "v5p-8" (google)`},
		{"A100:40XB", "40XB", 5, `unknown unit "XB"`},
		{"A100:1..x", "x", 8, "want a size"},
		{"A100:8GB..4XB", "4XB", 10, `unknown unit "XB"`},
		{"A100:-1", "-1", 5, "must not be negative"},
		{"A100:99999999999999999999", "99999999999999999999", 5, "too large"},
		{"A100:0.1GB", "0.1GB", 5, "not a whole number of megabytes"},
		{"A100:2.5", "2.5", 5, "not a non-negative integer"},
		{"nvidia,A100", "nvidia", 0, `"nvidia" is a vendor, not a gpu name`},
		{"A100,2", "2", 5, "must start with a letter"},
		{"RTX 4090", "RTX 4090", 0, `invalid character ' ' in gpu name`},
		{"", "", 0, "empty"},
		{"  ", "", 0, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g, err := ParseGPU(tt.in)
			if err == nil {
				t.Fatalf("ParseGPU(%q) = %v, want an error", tt.in, g)
			}
			checkError(t, err, "gpu spec", tt)
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A100:2:4", `invalid gpu spec "A100:2:4": token "4": count given twice (first "2")`},
		{"A100::2", `invalid gpu spec "A100::2": at offset 5: empty token`},
		{"", `invalid gpu spec "": empty`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseGPU(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestEffectiveVendor(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A100", "nvidia"},
		{"h100,H200", "nvidia"},
		{"MI300X", "amd"},
		{"v5p-8", "google"},
		{"tpu-v2-8", "google"},
		{"v5litepod", "google"},
		{"Gaudi2", "intel"},
		{"n300", "tenstorrent"},
		{"foo", ""},
		{"A100,foo", "nvidia"},
		{"A100,MI300X", ""},
		{"AMD:foo", "amd"},
		{"24GB", ""},
		{"v7-8", ""},
		{"v5p-x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g, err := ParseGPU(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.EffectiveVendor(); got != tt.want {
				t.Errorf("EffectiveVendor() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGPUValidate(t *testing.T) {
	tests := []struct {
		name string
		g    GPU
		want string // "" for valid
	}{
		{"mapping", GPU{Vendor: "NVIDIA", Names: Names{"A100"}, Count: one(), TotalMemory: &MemoryRange{Min: new(80 * GB)}, ComputeCapability: "8.0"}, ""},
		{"zero", GPU{}, ""},
		{"unknown vendor", GPU{Vendor: "acme"}, `vendor: unknown vendor "acme"`},
		{"vendor as name", GPU{Names: Names{"nvidia"}}, `name: "nvidia" is a vendor`},
		{"empty name", GPU{Names: Names{""}}, `name: invalid name ""`},
		{"name with comma", GPU{Names: Names{"A100,H100"}}, `name: invalid name "A100,H100"`},
		{"mismatch", GPU{Vendor: "amd", Names: Names{"A100"}}, `vendor: "amd" does not match gpu "A100" (nvidia)`},
		{"count", GPU{Count: IntRange{new(4), new(2)}}, "count: min 4 is greater than max 2"},
		{"negative count", GPU{Count: IntRange{Min: new(-1)}}, "count: must not be negative"},
		{"memory", GPU{Memory: &MemoryRange{Min: new(-GB)}}, "memory: must not be negative"},
		{"total memory", GPU{TotalMemory: &MemoryRange{new(2 * GB), new(GB)}}, "total_memory: min 2GB is greater than max 1GB"},
		{"compute capability", GPU{ComputeCapability: "8"}, `compute_capability: want major.minor`},
		{"compute capability letters", GPU{ComputeCapability: "8.x"}, `compute_capability: want major.minor`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	var ns Names
	if err := ns.UnmarshalText([]byte(" A100, H100 ")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Names{"A100", "H100"}, ns); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if b, _ := ns.MarshalText(); string(b) != "A100,H100" {
		t.Errorf("MarshalText() = %q", b)
	}
	// Names are also volume names: no GPU rules apply.
	if err := ns.UnmarshalText([]byte("nvidia,my-vol")); err != nil {
		t.Error(err)
	}
	for _, c := range []badCase{{"A100,", "", 5, "empty name"}, {"", "", 0, "empty name"}, {"a, ,b", "", 3, "empty name"}} {
		t.Run(c.in, func(t *testing.T) {
			checkError(t, ns.UnmarshalText([]byte(c.in)), "name list", c)
		})
	}
}

func BenchmarkParseGPU(b *testing.B) {
	inputs := []string{"A100", "nvidia:A100,H100:40GB..80GB:1..2", "24GB..:2", "tpu:v5p-1024"}
	for b.Loop() {
		for _, s := range inputs {
			if _, err := ParseGPU(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestSetDefaults(t *testing.T) {
	var g GPU
	g.SetDefaults()
	g.Names = Names{"H100", "H200"}
	if s := g.String(); s != "H100,H200:1" {
		t.Errorf("GPU mapping without count = %q, want H100,H200:1", s)
	}
	var c CPU
	c.SetDefaults()
	c.Arch = "arm"
	if s := c.String(); s != "arm:2.." {
		t.Errorf("CPU mapping without count = %q, want arm:2..", s)
	}
}
