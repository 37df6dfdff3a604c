package planner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/sim"
)

// BenchmarkApplyCriticalPath applies a graph of 1,000 steps (50 chains
// of 10 volumes, each volume a create and a commit) against a simulated
// cloud that takes 20 ms per call, at parallelism 50. The critical path
// is 10 creates, 200 ms; the benchmark reports wall time over it
// (target: at most 1.2).
func BenchmarkApplyCriticalPath(b *testing.B) {
	const chains, length, latency = 50, 10, 20 * time.Millisecond
	var src strings.Builder
	for c := range chains {
		for i := range length {
			fmt.Fprintf(&src, "volume \"c%d-%d\" {\n  backend = \"aws\"\n  region  = \"us-east-1\"\n  size    = \"10GB\"\n", c, i)
			if i > 0 {
				fmt.Fprintf(&src, "  depends_on = [volume.c%d-%d]\n", c, i-1)
			}
			src.WriteString("}\n")
		}
	}
	critical := length * latency
	var total time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		w := newWorld(b, &sim.Config{Latency: sim.Duration(latency)})
		cfg := w.config(map[string]string{"main.dstack.hcl": src.String()})
		p := w.mustPlan(cfg, planOpts{})
		if len(p.Steps) != 2*chains*length {
			b.Fatalf("%d steps", len(p.Steps))
		}
		b.StartTimer()
		start := time.Now()
		res := w.apply(p, planner.ApplyOptions{Parallelism: 50})
		total += time.Since(start)
		n++
		if res.Err() != nil {
			b.Fatal(res.Err())
		}
	}
	b.ReportMetric(float64(total)/float64(n)/float64(critical), "x-critical-path")
}

// BenchmarkPlan10000 makes a plan of 10,000 resources that all exist
// already (refresh included), in process.
func BenchmarkPlan10000(b *testing.B) {
	w := newWorld(b, nil)
	var src strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&src, "volume \"v%d\" {\n  backend = \"aws\"\n  region  = \"us-east-1\"\n  size    = \"10GB\"\n}\n", i)
	}
	cfg := w.config(map[string]string{"main.dstack.hcl": src.String()})
	if res := w.apply(w.mustPlan(cfg, planOpts{}), planner.ApplyOptions{}); res.Err() != nil {
		b.Fatal(res.Err())
	}
	for b.Loop() {
		if p := w.mustPlan(cfg, planOpts{}); !p.Empty() {
			b.Fatal("changes")
		}
	}
}
