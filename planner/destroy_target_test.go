package planner_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
)

// TestDestroyTargetTakesDependents: destroying a target tears down what
// depends on it (a run on a fleet cannot outlive the fleet) and leaves
// what the target depends on, as Terraform's destroy -target does.
func TestDestroyTargetTakesDependents(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": strings.Replace(base, "commands: [vllm serve]", "commands: [vllm serve]\nfleets: [gpus]", 1)})
	w.converge(cfg)
	deleted := func(p *planner.Plan) []string {
		var out []string
		for _, c := range p.Changes {
			if c.Action != planner.Delete {
				t.Errorf("%s: %s, want only deletions", c.Address, c.Action)
			}
			out = append(out, c.Address)
		}
		slices.Sort(out)
		return out
	}
	// The run alone: its fleet stays.
	p := w.mustPlan(cfg, planOpts{mode: planner.Destroy, targets: []string{"service.llm"}})
	if got := deleted(p); !slices.Equal(got, []string{"service.llm"}) {
		t.Fatalf("destroy -target service.llm tears down %v:\n%s", got, describe(p))
	}
	// The fleet: the run on it goes too, the volume stays.
	p = w.mustPlan(cfg, planOpts{mode: planner.Destroy, targets: []string{"fleet.gpus"}})
	if got := deleted(p); !slices.Equal(got, []string{"fleet.gpus", "service.llm"}) {
		t.Fatalf("destroy -target fleet.gpus tears down %v:\n%s", got, describe(p))
	}
	// TargetsAlone (Terraform's provider, which orders destruction
	// itself) plans the fleet alone.
	in := planner.Input{Config: cfg, Prior: p.Prior, StateExisted: true, ToolVersion: "test", Mode: planner.Destroy,
		Targets: []string{"fleet.gpus"}, TargetsAlone: true}
	alone, err := planner.Make(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := deleted(alone); !slices.Equal(got, []string{"fleet.gpus"}) {
		t.Fatalf("TargetsAlone: destroy -target fleet.gpus tears down %v:\n%s", got, describe(alone))
	}
	if res := w.apply(p, planner.ApplyOptions{Parallelism: 4}); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	w.checkInventory()
	// Without its configuration (dstack fleet delete in another
	// directory) the state's dependencies alone lead to the run.
	w.converge(cfg)
	p = w.mustPlan(lang.NewConfig(), planOpts{mode: planner.Destroy, targets: []string{"fleet.gpus"}})
	if got := deleted(p); !slices.Equal(got, []string{"fleet.gpus", "service.llm"}) {
		t.Fatalf("without configuration, destroy -target fleet.gpus tears down %v:\n%s", got, describe(p))
	}
}
