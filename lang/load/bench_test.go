package load

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLargeConfig writes files*perFile resources, half the files in YAML
// and half in HCL, with the mix of kinds and shorthands real projects use.
func writeLargeConfig(tb testing.TB, dir string, files, perFile int) []string {
	tb.Helper()
	var paths []string
	for f := range files {
		var b strings.Builder
		hcl := f%2 == 1
		for r := range perFile {
			id := fmt.Sprintf("r%03d-%02d", f, r)
			switch {
			case hcl && r%3 == 0:
				fmt.Fprintf(&b, "fleet %q {\n  nodes = \"0..%d\"\n  backends = [\"aws\", \"gcp\"]\n  resources {\n    gpu  = \"H100:8\"\n    disk = \"500GB..\"\n  }\n  tags = { team = \"t%d\" }\n}\n\n", "f"+id, r+1, r)
			case hcl:
				fmt.Fprintf(&b, "task %q {\n  python   = \"3.12\"\n  commands = [\"python train.py --seed %d\"]\n  env      = { SEED = \"%d\", HF_TOKEN = null }\n  ports    = [8080, \"*:6006\"]\n  resources {\n    gpu = \"A100:80GB:%d\"\n    memory = \"64GB..\"\n  }\n  max_duration = \"2h\"\n}\n\n", "t"+id, r, r, r%8+1)
			case r%3 == 0:
				fmt.Fprintf(&b, "type: service\nname: s%s\nimage: vllm/vllm-openai:latest\ncommands:\n  - vllm serve model --port 8000\nport: 8000\nreplicas: 1..%d\nscaling:\n  metric: rps\n  target: 10\nresources:\n  gpu: 24GB..80GB:1\n---\n", id, r+2)
			default:
				fmt.Fprintf(&b, "type: task\nname: t%s\npython: \"3.11\"\nenv:\n  - HF_TOKEN\n  - SEED=%d\ncommands:\n  - python train.py\nvolumes:\n  - data:/data\nresources:\n  gpu: H100,H200:8\n  shm_size: 16GB\nretry:\n  on_events: [no-capacity]\n  duration: 1h\n---\n", id, r)
			}
		}
		name := fmt.Sprintf("f%03d.dstack.yml", f)
		if hcl {
			name = fmt.Sprintf("f%03d.dstack.hcl", f)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestLargeConfigLoads(t *testing.T) {
	files := writeLargeConfig(t, t.TempDir(), 100, 10)
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
	files := writeLargeConfig(b, b.TempDir(), 100, 10)
	b.ReportAllocs()
	for b.Loop() {
		cfg, diags := Files(files, Options{})
		if diags.HasErrors() || len(cfg.Resources) != 1000 {
			b.Fatalf("bad load: %d resources, %v", len(cfg.Resources), diags.Err())
		}
	}
}
