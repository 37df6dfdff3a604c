// Package loadtest generates large configurations for load tests and
// benchmarks, in dstack's syntaxes and as the equivalent Terraform
// configuration for measuring against terraform.
package loadtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteLargeConfig writes files*perFile resources, half the files in YAML
// and half in HCL, with the mix of kinds and shorthands real projects use.
func WriteLargeConfig(tb testing.TB, dir string, files, perFile int) []string {
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

// WriteTerraformConfig writes files*perFile terraform_data resources whose
// inputs carry about as much structure as the resources WriteLargeConfig
// writes, so `terraform validate` does comparable work.
func WriteTerraformConfig(tb testing.TB, dir string, files, perFile int) {
	tb.Helper()
	for f := range files {
		var b strings.Builder
		for r := range perFile {
			fmt.Fprintf(&b, "resource \"terraform_data\" \"r%03d_%02d\" {\n  input = {\n    python   = \"3.12\"\n    commands = [\"python train.py --seed %d\"]\n    env      = { SEED = \"%d\", HF_TOKEN = null }\n    ports    = [8080, \"*:6006\"]\n    resources = {\n      gpu    = \"A100:80GB:%d\"\n      memory = \"64GB..\"\n    }\n    max_duration = \"2h\"\n  }\n}\n\n", f, r, r, r, r%8+1)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.tf", f)), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
