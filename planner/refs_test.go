package planner_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingFleetIsNamedWithItsPlace: a run naming a fleet that neither
// the configuration nor the state has fails to plan, and the error names
// the fleet and the file, line and column where it is written.
func TestMissingFleetIsNamedWithItsPlace(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"train.dstack.yml": `type: task
name: train
fleets: [nosuchfleet]
commands: [python train.py]
`})
	_, err := w.plan(cfg, planOpts{})
	if err == nil {
		t.Fatal("plan succeeded with a fleet that exists nowhere")
	}
	at := filepath.Join(w.dir, "config", "train.dstack.yml") + ":3:10: "
	if !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), `fleet "nosuchfleet" is neither declared in the configuration nor in the state`) {
		t.Fatalf("error does not name the fleet at %s: %v", at, err)
	}
}

// TestFleetFromStateIsUsed: a fleet applied earlier from other files is
// in the state, and a run applied alone (as `apply -f task.dstack.yml`
// targets it) is placed on it; validation only warned about the name.
// Planned with the fleet's file left out and no target, the plan would
// tear the fleet down, and says so where the run names it.
func TestFleetFromStateIsUsed(t *testing.T) {
	w := newWorld(t, nil)
	fleet := `type: fleet
name: pool
nodes: 1
backends: [aws]
resources:
  gpu: H100:8
`
	w.converge(w.config(map[string]string{"fleet.dstack.yml": fleet}))

	task := `type: task
name: train
fleets: [pool]
commands: [python train.py]
resources:
  gpu: H100:1
`
	cfg := w.config(map[string]string{"task.dstack.yml": task})
	p := w.mustPlan(cfg, planOpts{targets: []string{"task.train"}})
	var placed bool
	for _, s := range p.Steps {
		if s.Address == "task.train" && s.HostAddress == "fleet.pool[0]" {
			placed = true
		}
	}
	if !placed {
		t.Fatalf("task.train is not placed on the fleet in state:\n%s", describe(p))
	}

	_, err := w.plan(cfg, planOpts{})
	at := filepath.Join(w.dir, "config", "task.dstack.yml") + ":3:10: "
	if err == nil || !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), `fleet "pool" is only in the state, and this plan tears it down`) {
		t.Fatalf("plan without the fleet's file: %v", err)
	}
}

// TestPlanErrorsNameTheirPlace: every plan error about a configured
// resource starts with where it is written.
func TestPlanErrorsNameTheirPlace(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.hcl": `fleet "big" {
  nodes = 1
  resources {
    gpu = "H100:64"
  }
}

task "huge" {
  commands = ["x"]
  resources {
    gpu = "MI300X:16"
  }
}
`})
	_, err := w.plan(cfg, planOpts{})
	if err == nil {
		t.Fatal("plan succeeded with resources no offer has")
	}
	file := filepath.Join(w.dir, "config", "main.dstack.hcl")
	for _, want := range []string{
		file + ":3:3: fleet.big: no offer matches",
		file + ":10:3: task.huge: no fleet instance has room and no offer matches",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestBackendOptionsRefused: backend_options loads (dstack's format has
// it) but no backend reads it yet, so the plan refuses it where it is
// written rather than ignoring it.
func TestBackendOptionsRefused(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": `type: task
name: efa
commands: [x]
backend_options:
  - backend: aws
    efa: true
`})
	_, err := w.plan(cfg, planOpts{})
	want := filepath.Join(w.dir, "config", "main.dstack.yml") + ":5:3: task.efa: backend_options is not supported on any backend yet"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("plan error %v, want one containing %q", err, want)
	}
}
