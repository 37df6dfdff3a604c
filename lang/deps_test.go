package lang_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps lang at the bottom of the import graph: it and its
// sub-packages may import only each other, never the planner, state,
// providers, agent or commands (see DESIGN.md).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/dstackai/dstack-go/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !strings.HasPrefix(pkg, module+"lang") {
			t.Errorf("lang depends on %s", pkg)
		}
	}
	for _, forbidden := range []string{"github.com/docker/", "github.com/aws/", "cloud.google.com/", "github.com/Azure/"} {
		if strings.Contains(string(out), forbidden) {
			t.Errorf("lang depends on %s*", forbidden)
		}
	}
}
