package planner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
)

// TestExamplesConverge: plan → apply → plan shows no changes for every
// example, and destroy leaves the cloud empty.
func TestExamplesConverge(t *testing.T) {
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
			p := w.converge(cfg)
			if len(p.Changes) != len(cfg.Resources) {
				t.Errorf("first plan has %d changes for %d resources", len(p.Changes), len(cfg.Resources))
			}
			destroy := w.mustPlan(cfg, planOpts{mode: planner.Destroy})
			if res := w.apply(destroy, planner.ApplyOptions{}); res.Err() != nil {
				t.Fatal(res.Err())
			}
			if live := liveObjects(t, w.cloud); len(live) != 0 {
				t.Fatalf("destroy left %d objects: %+v", len(live), live)
			}
			if n := len(w.state().Resources); n != 0 {
				t.Fatalf("destroy left %d resources in state", n)
			}
		})
	}
}

const base = `
type: fleet
name: gpus
nodes: 2
resources:
  gpu: A100:8
---
type: volume
name: data
backend: aws
region: us-east-1
size: 100GB
---
type: service
name: llm
image: vllm/vllm-openai:v1
port: 8000
replicas: 2
commands: [vllm serve]
resources:
  gpu: A100:1
`

func TestDiffActions(t *testing.T) {
	w := newWorld(t, nil)
	w.converge(w.config(map[string]string{"main.dstack.yml": base}))
	cases := []struct {
		name    string
		edit    func(string) string
		address string
		action  planner.Action
		field   string
		forces  bool
	}{
		{"image forces a rolling replace", func(s string) string { return strings.Replace(s, "v1", "v2", 1) }, "service.llm", planner.Replace, "image", true},
		{"replicas scale", func(s string) string { return strings.Replace(s, "replicas: 2", "replicas: 3", 1) }, "service.llm", planner.Scale, "replicas", false},
		{"nodes scale", func(s string) string { return strings.Replace(s, "nodes: 2", "nodes: 3", 1) }, "fleet.gpus", planner.Scale, "nodes", false},
		{"tags update in place", func(s string) string { return strings.Replace(s, "size: 100GB", "size: 100GB\ntags: {team: ml}", 1) }, "volume.data", planner.Update, "tags", false},
		{"volume size replaces", func(s string) string { return strings.Replace(s, "size: 100GB", "size: 200GB", 1) }, "volume.data", planner.Replace, "size", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": tc.edit(base)}), planOpts{})
			var got *planner.Change
			for _, c := range p.Changes {
				if c.Address == tc.address {
					got = c
				}
			}
			if got == nil || got.Action != tc.action {
				t.Fatalf("want %s %s, got:\n%s", tc.action, tc.address, describe(p))
			}
			found := false
			for _, f := range got.Fields {
				if f.Field == tc.field {
					found = true
					if f.ForcesReplacement != tc.forces {
						t.Errorf("field %s forces replacement = %v", f.Field, f.ForcesReplacement)
					}
				}
			}
			if !found {
				t.Errorf("field %s not in the change: %+v", tc.field, got.Fields)
			}
			if tc.action == planner.Replace && tc.address == "service.llm" && !got.CreateBeforeDestroy {
				t.Errorf("a service's replacement should roll: new replicas first")
			}
		})
	}
	// -replace forces a replacement without a change.
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": base}), planOpts{replace: []string{"volume.data"}})
	if len(p.Changes) != 1 || p.Changes[0].Action != planner.Replace || !strings.Contains(p.Changes[0].Reason, "-replace") {
		t.Fatalf("-replace: %s", describe(p))
	}
	// -target plans only the target and what it needs.
	p = w.mustPlan(w.config(map[string]string{"main.dstack.yml": strings.Replace(strings.Replace(base, "v1", "v2", 1), "nodes: 2", "nodes: 3", 1)}),
		planOpts{targets: []string{"fleet.gpus"}})
	if len(p.Changes) != 1 || p.Changes[0].Address != "fleet.gpus" {
		t.Fatalf("-target: %s", describe(p))
	}
}

func TestCostAndSummary(t *testing.T) {
	w := newWorld(t, nil)
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": base}), planOpts{})
	s := p.Summarize()
	if s.Provision != 3 || s.CostDelta <= 0 {
		t.Fatalf("summary %+v", s)
	}
	// Two 8xA100 machines at the cheapest catalog price.
	var fleet *planner.Change
	for _, c := range p.Changes {
		if c.Address == "fleet.gpus" {
			fleet = c
		}
	}
	if fleet.CostAfter != 2*p.Steps[fleet.Steps[0]].Offer.PricePerHour {
		t.Fatalf("fleet cost %v", fleet.CostAfter)
	}
	if !strings.HasPrefix(s.Line(), "Plan: 3 to provision, 0 to scale, 0 to replace, 0 to tear down. Cost: +$") {
		t.Fatalf("line %q", s.Line())
	}
	// The replicas go on the fleet's machines, not on new ones.
	for _, st := range p.Steps {
		if st.Address == "service.llm" && st.Op == planner.OpCreate && st.HostStep < 0 {
			t.Fatalf("replica %d not placed on the fleet", st.Index)
		}
	}
}

func TestDeterministic(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": base})
	a := w.mustPlan(cfg, planOpts{})
	b := w.mustPlan(cfg, planOpts{})
	a.Prior, b.Prior = nil, nil
	b.Lineage = a.Lineage // a new state's lineage is new each time
	ja, _ := jsonOf(a)
	jb, _ := jsonOf(b)
	if ja != jb {
		t.Fatalf("two plans of the same inputs differ:\n%s\n%s", ja, jb)
	}
}

func TestDriftAndRepair(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": base})
	w.converge(cfg)
	var victim string
	for _, r := range w.state().Resources {
		if r.Address == "fleet.gpus" {
			victim = r.Instances[1].ProviderID
		}
	}
	if err := w.cloud.Interrupt(victim, "spot interruption"); err != nil {
		t.Fatal(err)
	}
	p := w.mustPlan(cfg, planOpts{})
	found := false
	for _, d := range p.Drift {
		if d.Message == "instance "+victim+" of fleet.gpus was terminated outside dstack (spot interruption)" {
			found = true
		}
	}
	if !found {
		t.Fatalf("drift not reported: %s", describe(p))
	}
	w.converge(cfg)
}

func TestFailoverOnNoCapacity(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": "type: fleet\nname: f\nnodes: 1\nresources:\n  gpu: H100:8\n"})
	p := w.mustPlan(cfg, planOpts{})
	step := p.Steps[p.Changes[0].Steps[0]]
	if len(step.Candidates) == 0 {
		t.Fatal("no failover candidates")
	}
	first := step.Offer
	// The cheapest offer runs out of capacity after the plan was made.
	key := first.Backend + "/" + first.Region + "/" + first.InstanceType
	if err := sim.WriteConfig(w.cloud.Dir(), sim.Config{Capacity: map[string]int{key: 0}}); err != nil {
		t.Fatal(err)
	}
	c2, err := sim.Open(w.cloud.Dir())
	if err != nil {
		t.Fatal(err)
	}
	w.cloud = c2
	var events []planner.Event
	res := w.apply(p, planner.ApplyOptions{Events: func(e planner.Event) { events = append(events, e) }})
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	failover := false
	for _, e := range events {
		failover = failover || e.Type == "failover"
	}
	in := w.state().Resources[0].Instances[0]
	if !failover || in.Attributes["offer"].(map[string]any)["instance_type"] == first.InstanceType {
		t.Fatalf("no failover: %+v", in.Attributes)
	}
	w.checkInventory()
}

func TestFailureFinishesIndependentBranches(t *testing.T) {
	w := newWorld(t, &sim.Config{Failures: []sim.Failure{{Op: sim.OpCreate, Address: "volume.bad*", Code: providers.Auth}}})
	// The fleet is in the volume's backend, where a job can attach it.
	src := strings.Replace(strings.Replace(base, "name: data", "name: bad", 1), "nodes: 2", "nodes: 2\nbackends: [aws]", 1)
	cfg := w.config(map[string]string{"main.dstack.yml": src +
		"---\ntype: task\nname: uses-bad\ncommands: [ls]\nvolumes: [bad:/data]\nfleets: [gpus]\n"})
	p := w.mustPlan(cfg, planOpts{})
	res := w.apply(p, planner.ApplyOptions{})
	if res.Failed != 1 || res.Skipped == 0 || res.Done == 0 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Err().Error(), "auth") {
		t.Fatalf("error %v", res.Err())
	}
	w.checkInventory()
	// What was done stays done: the next plan only retries the failures.
	again := w.mustPlan(cfg, planOpts{})
	for _, c := range again.Changes {
		if c.Address == "fleet.gpus" || c.Address == "service.llm" {
			t.Fatalf("%s changes again: %s", c.Address, describe(again))
		}
	}
}

func TestLifecycle(t *testing.T) {
	w := newWorld(t, nil)
	src := `volume "data" {
  backend = "aws"
  region  = "us-east-1"
  size    = "100GB"
  tags    = { team = "a" }
  lifecycle {
    prevent_destroy = true
    ignore_changes  = [tags]
  }
}
`
	cfg := w.config(map[string]string{"main.dstack.hcl": src})
	w.converge(cfg)
	// ignore_changes: a tag change is no change.
	p := w.mustPlan(w.config(map[string]string{"main.dstack.hcl": strings.Replace(src, `"a"`, `"b"`, 1)}), planOpts{})
	if !p.Empty() {
		t.Fatalf("ignored change planned: %s", describe(p))
	}
	// prevent_destroy: a replacement or a destroy is refused.
	_, err := w.plan(w.config(map[string]string{"main.dstack.hcl": strings.Replace(src, "100GB", "200GB", 1)}), planOpts{})
	var perr *planner.Error
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "prevent_destroy") {
		t.Fatalf("replace of a protected resource: %v", err)
	}
	if _, err := w.plan(cfg, planOpts{mode: planner.Destroy}); err == nil || !strings.Contains(err.Error(), "prevent_destroy") {
		t.Fatalf("destroy of a protected resource: %v", err)
	}
}

func TestCycleIsNamed(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.hcl": `
task "a" {
  commands   = ["x"]
  depends_on = [task.b]
}
task "b" {
  commands   = ["x"]
  depends_on = [task.a]
}
`})
	_, err := w.plan(cfg, planOpts{})
	if err == nil || !strings.Contains(err.Error(), "task.a → task.b → task.a") {
		t.Fatalf("cycle: %v", err)
	}
}

func TestFinishedTaskIsNotRerun(t *testing.T) {
	w := newWorld(t, &sim.Config{JobDuration: ptr(sim.Duration(0))})
	task := "type: task\nname: t\ncommands: [echo hi]\n"
	w.converge(w.config(map[string]string{"main.dstack.yml": task}))
	st := w.state()
	if st.Resources[0].Instances[0].Status != providers.StatusDone {
		t.Fatalf("task status %q", st.Resources[0].Instances[0].Status)
	}
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": strings.Replace(task, "hi", "again", 1)}), planOpts{})
	if len(p.Changes) != 1 || p.Changes[0].Action != planner.Replace {
		t.Fatalf("changed task: %s", describe(p))
	}
}

// TestFinishedTaskRerunByFile: a plan asked for by file (dstack's apply
// -f) runs a finished task again; a whole-configuration plan, or one
// whose targets leave the task out, keeps it as it is.
func TestFinishedTaskRerunByFile(t *testing.T) {
	tests := []struct {
		name      string
		opts      planOpts
		wantRerun bool
	}{
		{"by file", planOpts{targets: []string{"task.t"}, rerun: true}, true},
		{"whole configuration", planOpts{}, false},
		{"targets without the task", planOpts{targets: []string{"task.other"}, rerun: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, &sim.Config{JobDuration: ptr(sim.Duration(0))})
			cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\ncommands: [echo hi]\n---\ntype: task\nname: other\ncommands: [echo hi]\n"})
			w.converge(cfg)
			p := w.mustPlan(cfg, tt.opts)
			var rerun *planner.Change
			for _, c := range p.Changes {
				if c.Address == "task.t" && c.Action == planner.Replace {
					rerun = c
				}
			}
			if (rerun != nil) != tt.wantRerun {
				t.Fatalf("re-run = %v, want %v:\n%s", rerun != nil, tt.wantRerun, describe(p))
			}
			if rerun != nil && rerun.Reason != "the task finished; apply -f runs it again" {
				t.Errorf("reason %q", rerun.Reason)
			}
			if len(tt.opts.targets) == 0 && len(p.Changes) != 0 {
				t.Errorf("changes where none were due:\n%s", describe(p))
			}
		})
	}
}

func TestStaleSavedPlan(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": base})
	p := w.mustPlan(cfg, planOpts{})
	path := filepath.Join(t.TempDir(), "plan.bin")
	if err := planner.Save(path, p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file mode %v", fi.Mode())
	}
	saved, err := planner.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := saved.CheckFresh("", 0, false); err != nil {
		t.Fatalf("fresh plan refused: %v", err)
	}
	w.converge(cfg)
	st := w.state()
	err = saved.CheckFresh(st.Lineage, st.Serial, true)
	if !errors.Is(err, planner.ErrStale) {
		t.Fatalf("stale plan: %v", err)
	}
	p2 := w.mustPlan(cfg, planOpts{replace: []string{"volume.data"}})
	if err := p2.CheckFresh(st.Lineage, st.Serial, true); err != nil {
		t.Fatal(err)
	}
	if err := p2.CheckFresh("another-lineage", st.Serial, true); err == nil || !strings.Contains(err.Error(), "lineage") {
		t.Fatalf("other lineage: %v", err)
	}
}

func TestStopFinishesInFlight(t *testing.T) {
	w := newWorld(t, &sim.Config{Latency: sim.Duration(5 * time.Millisecond)})
	var b strings.Builder
	for i := range 40 {
		b.WriteString("---\ntype: volume\nname: v" + itoa(i) + "\nbackend: aws\nregion: us-east-1\nsize: 10GB\n")
	}
	cfg := w.config(map[string]string{"main.dstack.yml": b.String()})
	p := w.mustPlan(cfg, planOpts{})
	stop := make(chan struct{})
	started := 0
	res := w.apply(p, planner.ApplyOptions{Parallelism: 4, Stop: stop, Events: func(e planner.Event) {
		if e.Type == "step_start" {
			if started++; started == 6 {
				close(stop)
			}
		}
	}})
	if res.NotStarted == 0 || res.Failed != 0 {
		t.Fatalf("result %+v", res)
	}
	w.checkInventory()
	w.converge(cfg)
}

func TestTaskRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		retry string
		later time.Duration
		rerun bool
	}{
		{"no retry", "", 0, false},
		{"retry on interruption", "retry:\n  on_events: [interruption]\n  duration: 1h\n", 0, true},
		{"retry on error only", "retry:\n  on_events: [error]\n", 0, false},
		{"retry window over", "retry:\n  on_events: [interruption]\n  duration: 1h\n", 2 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\ncommands: [train]\n" + tc.retry})
			w.converge(cfg)
			job := w.state().Resources[0].Instances[0]
			if err := w.cloud.Interrupt(job.ProviderID, "spot interruption"); err != nil {
				t.Fatal(err)
			}
			p, err := w.plan(cfg, planOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.later > 0 {
				// The same refreshed state, planned later.
				p, err = planner.Make(planner.Input{Config: cfg, Prior: p.Prior, StateExisted: true, Workspace: "default",
					ToolVersion: "test", Offers: mustOffers(t, w), HostsBackend: w.hosts(), Drift: p.Drift, Now: time.Now().Add(tc.later)})
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(p.Drift) != 1 || !strings.Contains(p.Drift[0].Message, "spot interruption") {
				t.Fatalf("drift: %s", describe(p))
			}
			rerun := len(p.Changes) == 1 && p.Changes[0].Action == planner.Replace
			if rerun != tc.rerun || (!tc.rerun && len(p.Changes) != 0) {
				t.Fatalf("re-run = %v, want %v:\n%s", rerun, tc.rerun, describe(p))
			}
		})
	}
}

// flakySet answers "no capacity" to the first creates, then lets them
// through to the simulated cloud.
type flakySet struct {
	sim.Set
	fails *int
}

func (f flakySet) For(backend string) (providers.Provider, error) {
	p, err := f.Set.For(backend)
	return flakyProvider{p, f.fails}, err
}

type flakyProvider struct {
	providers.Provider
	fails *int
}

func (f flakyProvider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if *f.fails > 0 {
		*f.fails--
		return providers.Object{}, providers.Errorf(providers.NoCapacity, "no %s left", req.Offer.InstanceType)
	}
	return f.Provider.Create(ctx, req)
}

func TestRetryOnNoCapacity(t *testing.T) {
	for _, tc := range []struct {
		retry string
		ok    bool
	}{
		{"", false},
		{"retry:\n  on_events: [no-capacity]\n  duration: 1h\n", true},
	} {
		w := newWorld(t, nil)
		cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\ncommands: [train]\nresources:\n  gpu: H100:8\n" + tc.retry})
		p := w.mustPlan(cfg, planOpts{})
		// Every offer is out of capacity for the first round, and then some.
		fails := len(p.Steps[p.Changes[0].Steps[0]].Candidates) + 3
		var retries int
		res, err := planner.Apply(context.Background(), p, w.store(), flakySet{sim.Set{Cloud: w.cloud}, &fails},
			planner.ApplyOptions{Parallelism: 1, RetryInterval: time.Millisecond, Events: func(e planner.Event) {
				if e.Type == "retry" {
					retries++
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if (res.Err() == nil) != tc.ok || (tc.ok && retries == 0) {
			t.Fatalf("retry %q: result %v, %d retries", tc.retry, res.Err(), retries)
		}
		if !tc.ok && !strings.Contains(res.Err().Error(), "no-capacity") {
			t.Fatalf("error %v", res.Err())
		}
		w.checkInventory()
	}
}
