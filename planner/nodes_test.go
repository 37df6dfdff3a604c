package planner_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// A run that fits no node of a cluster is refused, saying what each node
// lacks; one that fits a part of a node is placed on it.
func TestPlanSaysWhatEachNodeLacks(t *testing.T) {
	nodes := []offers.Offer{
		{Backend: "kubernetes", Region: "k", InstanceType: "gpu-a100-0", CPUs: 32, Arch: "x86", Memory: 256 * resources.GB, Disk: 1000 * resources.GB,
			GPU: &offers.GPU{Vendor: "nvidia", Name: "A100", MemoryMB: 80 * resources.GB, Count: 2}, Divisible: true},
		{Backend: "kubernetes", Region: "k", InstanceType: "cpu-0", CPUs: 16, Arch: "x86", Memory: 64 * resources.GB, Disk: 1000 * resources.GB, Divisible: true},
	}
	plan := func(gpu string) (*planner.Plan, error) {
		dir := t.TempDir()
		src := "task \"t\" {\n  image = \"busybox\"\n  commands = [\"true\"]\n  backends = [\"kubernetes\"]\n  resources {\n    gpu = \"" + gpu + "\"\n  }\n}\n"
		if err := os.WriteFile(filepath.Join(dir, "main.dstack.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := load.Path(dir, load.Options{})
		if diags.HasErrors() {
			t.Fatal(diags.Err())
		}
		return planner.Make(planner.Input{Config: cfg, Prior: state.New("test"), Workspace: state.DefaultWorkspace, ToolVersion: "test", Offers: nodes})
	}
	p, err := plan("A100:1")
	if err != nil {
		t.Fatalf("A100:1 on a node of 2 free: %v", err)
	}
	placed := false
	for _, s := range p.Steps {
		placed = placed || s.Offer != nil && s.Offer.InstanceType == "gpu-a100-0"
	}
	if !placed {
		t.Errorf("A100:1 is not placed on gpu-a100-0")
	}
	_, err = plan("A100:4")
	if err == nil {
		t.Fatal("A100:4 on nodes of at most 2 is planned")
	}
	for _, want := range []string{"node gpu-a100-0 (kubernetes) has free gpu: needs", "node cpu-0 (kubernetes) has free gpu: needs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}
