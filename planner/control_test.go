package planner_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
)

// TestRollingReplace: a change that replaces a service's replicas
// replaces them one at a time: the first new replica, then the first old
// one stopped, then the second new one, and so on. A new replica that
// fails stops the rollout there: the old replicas not yet stopped keep
// running, and nothing after it starts.
func TestRollingReplace(t *testing.T) {
	w := newWorld(t, nil)
	svc := func(cmd string) string {
		return "type: service\nname: web\nport: 8000\nreplicas: 3\ncommands: [" + cmd + "]\n"
	}
	w.converge(w.config(map[string]string{"main.dstack.yml": svc("serve-v1")}))
	old := map[string]bool{}
	for _, in := range w.state().Resource("service.web").Instances {
		old[in.Token] = true
	}
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": svc("serve-v2")}), planOpts{})
	var order []string
	byID := map[int]*planner.Step{}
	for _, s := range p.Steps {
		byID[s.ID] = s
	}
	// The steps in the only order the graph allows, if it is a chain.
	done := map[int]bool{}
	for len(done) < len(p.Steps) {
		var ready []*planner.Step
		for _, s := range p.Steps {
			if done[s.ID] {
				continue
			}
			if !slices.ContainsFunc(s.Deps, func(d int) bool { return !done[d] }) {
				ready = append(ready, s)
			}
		}
		if len(ready) != 1 {
			var names []string
			for _, s := range ready {
				names = append(names, s.Name())
			}
			t.Fatalf("after %v, %d steps may run at once (%v); a rolling replacement is one chain", order, len(ready), names)
		}
		done[ready[0].ID] = true
		order = append(order, string(ready[0].Op))
	}
	if got := strings.Join(order, " "); got != "create delete create delete create delete commit" {
		t.Fatalf("order %q", got)
	}

	// The second new replica fails: the rollout stops with one new and
	// two old replicas running.
	if err := sim.WriteConfig(filepath.Join(w.dir, "sim"), sim.Config{Failures: []sim.Failure{
		{Op: sim.OpCreate, Kind: providers.KindJob, Address: `service.web\[1\]`, Code: providers.Auth, Times: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	c, err := sim.Open(filepath.Join(w.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	w.set = sim.Set{Cloud: c}
	res := w.apply(p, planner.ApplyOptions{})
	if res.Failed != 1 || res.Done != 2 || res.Skipped != 4 {
		t.Fatalf("apply: %d done, %d failed, %d skipped; want 2, 1, 4 (%v)", res.Done, res.Failed, res.Skipped, res.Err())
	}
	var kept, made int
	for _, in := range w.state().Resource("service.web").Instances {
		if old[in.Token] {
			kept++
		} else {
			made++
		}
	}
	if kept != 2 || made != 1 {
		t.Fatalf("after the failed rollout: %d old and %d new replicas, want 2 and 1", kept, made)
	}
	live, err := c.Live()
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 3 {
		t.Fatalf("the cloud runs %d replicas, want 3", len(live))
	}
}

// TestPlanNotes: a plan says where a service is reached (its URL on a
// gateway with a domain, its model's OpenAI-compatible endpoint), its
// replica counts now and planned, and what the control loop will do on
// its own about each resource.
func TestPlanNotes(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": `type: gateway
name: gw
backend: aws
region: us-east-1
domain: example.com
default: true
---
type: service
name: llm
port: 8000
commands: [serve]
model: llama-3
replicas: 1..3
scaling:
  metric: rps
  target: 10
  scale_up_delay: 1m
retry:
  on_events: [interruption, no-capacity]
  duration: 2h
probes:
  - type: http
    url: /health
---
type: fleet
name: pool
nodes: 0..2
idle_duration: 10m
---
type: task
name: nightly
commands: [eval]
schedule:
  cron: "30 2 * * *"
max_duration: 3h
utilization_policy:
  min_gpu_utilization: 10
  time_window: 30m
`})
	p := w.mustPlan(cfg, planOpts{})
	if len(p.Services) != 1 {
		t.Fatalf("services: %+v", p.Services)
	}
	want := planner.ServiceNote{Address: "service.llm", URL: "https://llm.example.com/", Model: "llama-3",
		ModelEndpoint: "https://gateway.example.com/v1", Replicas: "1..3", Current: 0, Planned: 1}
	if p.Services[0] != want {
		t.Errorf("service note %+v, want %+v", p.Services[0], want)
	}
	got := map[string]string{}
	for _, l := range p.Loop {
		got[l.Address] = strings.Join(l.Does, "; ")
	}
	for addr, line := range map[string]string{
		"service.llm":  "scales 1..3 on rps=10 (up after 1m, down after 10m); makes dead replicas again; replaces replicas that keep failing their probes; retries on interruption for 2h",
		"fleet.pool":   "tears down instances idle for 10m (down to 0)",
		"task.nightly": `starts at "30 2 * * *" UTC (next `,
	} {
		if !strings.HasPrefix(got[addr], line) {
			t.Errorf("%s: the loop %q, want %q", addr, got[addr], line)
		}
	}
	if !strings.HasSuffix(got["task.nightly"], "; stops it when its GPUs stay under 10% utilization for 30m; stops it after 3h (its agent does)") {
		t.Errorf("task.nightly: %q", got["task.nightly"])
	}
}

// TestPlanRefusesGroupScaling: a replica group's own scaling, which the
// loop does not act on, is refused where it is written.
func TestPlanRefusesGroupScaling(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": `type: service
name: s
port: 8000
commands: [serve]
replicas:
  - name: a
    count: 1..2
    commands: [serve]
    scaling:
      metric: rps
      target: 5
`})
	_, err := w.plan(cfg, planOpts{})
	if err == nil || !strings.Contains(err.Error(), "main.dstack.yml:") || !strings.Contains(err.Error(), "a replica group's own scaling is not enforced") {
		t.Fatalf("plan: %v", err)
	}
}

// TestPlanRefusesRunIdleDuration: idle_duration on a service or a dev
// environment, which nothing acts on (a task's releases its own machine),
// is refused where it is written; a task's is accepted.
func TestPlanRefusesRunIdleDuration(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"type: service\nname: s\nport: 8000\ncommands: [serve]\nidle_duration: 10m\n", "main.dstack.yml:5:16: service.s: idle_duration is not supported on a service yet"},
		{"type: dev-environment\nname: d\nide: vscode\nidle_duration: 10m\n", "main.dstack.yml:4:16: dev-environment.d: idle_duration is not supported on a dev-environment yet"},
		{"type: task\nname: t\ncommands: [run]\nidle_duration: 10m\n", ""},
	} {
		w := newWorld(t, nil)
		_, err := w.plan(w.config(map[string]string{"main.dstack.yml": tc.doc}), planOpts{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: plan: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: plan: %v", tc.doc, err)
		}
	}
}

// TestRecordedConfigOfExamples: after each example converged, the
// configuration the state records is every resource (but those with
// sensitive values, which the state holds masked) exactly as applied,
// and a plan of it, as the control loop makes, changes nothing.
func TestRecordedConfigOfExamples(t *testing.T) {
	dirs, err := load.ConfigDirs("../examples")
	if err != nil || len(dirs) < 10 {
		t.Fatalf("examples: %v %v", dirs, err)
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			w := newWorld(t, nil)
			cfg, diags := load.Path(d, load.Options{})
			if diags.HasErrors() {
				t.Fatal(diags.Err())
			}
			w.converge(cfg)
			rec, skipped := planner.RecordedConfig(w.state())
			for _, r := range cfg.Sorted() {
				addr := r.Address.String()
				if why, ok := skipped[addr]; ok {
					if len(r.SensitivePaths()) == 0 {
						t.Errorf("%s left out: %s", addr, why)
					}
					continue
				}
				if got := rec.Resources[r.Address]; got == nil || got.Hash() != r.Hash() {
					t.Errorf("%s: recorded configuration differs from the applied one", addr)
				}
			}
			var targets []string
			for _, r := range rec.Sorted() {
				targets = append(targets, r.Address.String())
			}
			if len(targets) == 0 {
				return
			}
			if p := w.mustPlan(rec, planOpts{targets: targets}); !p.Empty() {
				t.Errorf("a plan of the recorded configuration changes:\n%s", describe(p))
			}
		})
	}
}
