package load

import (
	"testing"

	"github.com/dstackai/dstack-go/lang/load/loadtest"
)

func TestLargeConfigLoads(t *testing.T) {
	files := loadtest.WriteLargeConfig(t, t.TempDir(), 100, 10)
	cfg, diags := Files(files, Options{})
	if diags.HasErrors() {
		t.Fatalf("large configuration has errors: %v", diags.Err())
	}
	if len(cfg.Resources) != 1000 {
		t.Fatalf("loaded %d resources, want 1000", len(cfg.Resources))
	}
}

// BenchmarkLoad1000Resources100Files loads 1,000 resources spread over 100
// files (50 YAML, 50 HCL). Target: under 50 ms and 50 MB allocated per load.
func BenchmarkLoad1000Resources100Files(b *testing.B) {
	files := loadtest.WriteLargeConfig(b, b.TempDir(), 100, 10)
	b.ReportAllocs()
	for b.Loop() {
		cfg, diags := Files(files, Options{})
		if diags.HasErrors() || len(cfg.Resources) != 1000 {
			b.Fatalf("bad load: %d resources, %v", len(cfg.Resources), diags.Err())
		}
	}
}
