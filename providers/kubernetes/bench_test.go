package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/kubernetes/kubetest"
	"github.com/dstackai/dstack-go/state"
)

// gpuKinds are the kinds of the simulated GPU nodes, in turn.
var gpuKinds = []kubetest.Node{
	{CPUs: 96, Memory: 1 << 20, GPUs: 8, Product: "NVIDIA-H100-80GB-HBM3", MemoryMB: 81559},
	{CPUs: 64, Memory: 512 << 10, GPUs: 4, Product: "NVIDIA-A100-SXM4-80GB", MemoryMB: 81920},
	{CPUs: 16, Memory: 64 << 10, GPUs: 1, Product: "NVIDIA-L4", MemoryMB: 23034},
	{CPUs: 128, Memory: 1 << 20, GPUs: 8, Vendor: "amd", Product: "AMD_Instinct_MI300X"},
	{CPUs: 32, Memory: 128 << 10},
}

// runGPUs are the runs' GPU specs, in turn ("" asks for none).
var runGPUs = []string{"H100:1", "A100:2", "L4:1", "MI300X:4", "", "H100:8"}

func gpuNodes(n int) []kubetest.Node {
	out := make([]kubetest.Node, n)
	for i := range out {
		k := gpuKinds[i%len(gpuKinds)]
		k.Name = fmt.Sprintf("node-%04d", i)
		k.Zone = fmt.Sprintf("z%d", i%3)
		out[i] = k
	}
	return out
}

// tasks is a configuration of n tasks on the kubernetes backend, of
// mixed GPU specs.
func tasks(t testing.TB, n int) string {
	var src strings.Builder
	for i := range n {
		fmt.Fprintf(&src, "task \"t%d\" {\n  image = \"busybox\"\n  commands = [\"true\"]\n  backends = [\"kubernetes\"]\n", i)
		if g := runGPUs[i%len(runGPUs)]; g != "" {
			fmt.Fprintf(&src, "  resources {\n    gpu = %q\n  }\n", g)
		}
		src.WriteString("}\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.dstack.hcl"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BenchmarkPlacement1000Nodes lists the offers of 1,000 kwok GPU nodes of
// mixed types through dstack-provider-kubernetes and the real API server,
// then plans 1,000 runs of mixed GPU specs on them. It reports the time
// to list the nodes (offers-ms), the plan's time (plan-ms) and the runs
// placed per second of planning (goal: at least 5,000).
func BenchmarkPlacement1000Nodes(b *testing.B) {
	const nodes, runs = 1000, 1000
	c := kubetest.Start(b, kubetest.Options{})
	c.AddNodes(b, gpuNodes(nodes))
	p := programProvider(b, c)
	dir := tasks(b, runs)
	cfg, diags := load.Path(dir, load.Options{})
	if diags.HasErrors() {
		b.Fatal(diags.Err())
	}
	ctx := context.Background()
	var offersTime, planTime time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		all, err := p.Offers(ctx)
		if err != nil {
			b.Fatal(err)
		}
		offersTime += time.Since(start)
		if len(all) != nodes {
			b.Fatalf("%d offers of %d nodes", len(all), nodes)
		}
		start = time.Now()
		plan, err := planner.Make(planner.Input{Config: cfg, Prior: state.New("bench"), Workspace: state.DefaultWorkspace,
			ToolVersion: "bench", Offers: all})
		planTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		placed := 0
		for _, s := range plan.Steps {
			if s.Offer != nil && s.Offer.Backend == "kubernetes" {
				placed++
			}
		}
		if placed != runs {
			b.Fatalf("%d of %d runs placed", placed, runs)
		}
		n++
	}
	b.ReportMetric(float64(offersTime.Microseconds())/1000/float64(n), "offers-ms")
	b.ReportMetric(float64(planTime.Microseconds())/1000/float64(n), "plan-ms")
	b.ReportMetric(float64(runs*n)/planTime.Seconds(), "runs-placed/s")
}
