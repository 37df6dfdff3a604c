package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps terraform-plugin-go behind the adapter: only
// internal/tfplugin imports it, and the dstack CLI never links it (it
// would bring gRPC into the CLI).
func TestImports(t *testing.T) {
	const lib = "github.com/hashicorp/terraform-plugin-go"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, lib) && !strings.HasSuffix(fields[0], "/internal/tfplugin") {
				t.Errorf("%s imports %s; only internal/tfplugin may", fields[0], imp)
			}
		}
	}
	deps, err := exec.Command("go", "list", "-deps", "../cmd/dstack").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	if strings.Contains(string(deps), lib) {
		t.Errorf("the dstack CLI depends on %s", lib)
	}
}
