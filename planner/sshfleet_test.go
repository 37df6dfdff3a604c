package planner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/planner/render"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
)

const sshFleet = `type: fleet
name: onprem
ssh_config:
  user: ubuntu
  identity_file: ~/.ssh/id_rsa
  hosts:
    - a100-1
    - a100-2
    - hostname: a100-3
      port: 2222
---
type: task
name: train
nodes: 3
startup_order: master-first
fleets: [onprem]
commands: [python train.py]
`

// hostsOf returns the hostnames of an SSH fleet's instances in state, by
// index.
func (w *world) hostsOf(addr string) map[int]string {
	w.t.Helper()
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int]string{}
	for _, in := range snap.State.Resource(addr).Instances {
		o, _ := in.Attributes["offer"].(map[string]any)
		out[in.Index], _ = o["instance_type"].(string)
	}
	return out
}

func tokensOf(t *testing.T, w *world, addr string) map[string]string {
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range snap.State.Resource(addr).Instances {
		o, _ := in.Attributes["offer"].(map[string]any)
		name, _ := o["instance_type"].(string)
		out[name] = in.Token
	}
	return out
}

// TestSSHFleetHostByHost: an SSH fleet's instances are its hosts by name.
// Removing a host deletes only its instance (and moves the job on it),
// adding one creates one, and a host whose SSH settings change is
// replaced alone.
func TestSSHFleetHostByHost(t *testing.T) {
	w := newWorld(t, nil)
	w.converge(w.config(map[string]string{"main.dstack.yml": sshFleet}))
	before := tokensOf(t, w, "fleet.onprem")
	if len(before) != 3 {
		t.Fatalf("hosts: %v", before)
	}

	// The distributed task's three jobs are on three different hosts,
	// and the workers wait for the master.
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": strings.Replace(sshFleet, "python train.py", "python train2.py", 1)}), planOpts{})
	var jobs []*planner.Step
	for _, s := range p.Steps {
		if s.Address == "task.train" && s.Op == planner.OpCreate {
			jobs = append(jobs, s)
		}
	}
	if len(jobs) != 3 {
		t.Fatalf("want 3 jobs, got %d", len(jobs))
	}
	hosts := map[string]bool{}
	for _, j := range jobs {
		hosts[j.HostToken] = true
		if j.Index > 0 && !slices.Contains(j.Deps, jobs[0].ID) {
			t.Errorf("worker %d does not wait for the master (startup_order: master-first): deps %v", j.Index, j.Deps)
		}
	}
	if len(hosts) != 3 {
		t.Errorf("the 3 nodes share hosts: %v", hosts)
	}

	// Remove the middle host: only its instance goes.
	removed := strings.Replace(sshFleet, "    - a100-2\n", "", 1)
	p = w.mustPlan(w.config(map[string]string{"main.dstack.yml": strings.Replace(removed, "nodes: 3", "nodes: 2", 1)}), planOpts{})
	c := change(p, "fleet.onprem")
	if c == nil || c.Action != planner.Scale || !strings.Contains(c.Reason, "removes a100-2") {
		t.Fatalf("removing a host:\n%s", describe(p))
	}
	ops := stepsByOp(p, c)
	for _, s := range ops[planner.OpCreate] {
		t.Errorf("removing a host plans %s", s.Name())
	}
	if dels := tokens(ops[planner.OpDelete]); !slices.Equal(dels, []string{before["a100-2"]}) {
		t.Errorf("deletes %v, want only a100-2's instance %s", dels, before["a100-2"])
	}
	w.converge(w.config(map[string]string{"main.dstack.yml": strings.Replace(removed, "nodes: 3", "nodes: 2", 1)}))
	after := tokensOf(t, w, "fleet.onprem")
	if after["a100-1"] != before["a100-1"] || after["a100-3"] != before["a100-3"] || after["a100-2"] != "" {
		t.Fatalf("after removing a100-2: %v (before %v)", after, before)
	}

	// Change one host's port: that host alone is replaced.
	moved := strings.Replace(strings.Replace(removed, "nodes: 3", "nodes: 2", 1), "port: 2222", "port: 2200", 1)
	p = w.mustPlan(w.config(map[string]string{"main.dstack.yml": moved}), planOpts{})
	c = change(p, "fleet.onprem")
	if c == nil || !strings.Contains(c.Reason, "replaces a100-3") {
		t.Fatalf("changing a host's port:\n%s", describe(p))
	}
	w.converge(w.config(map[string]string{"main.dstack.yml": moved}))
	final := tokensOf(t, w, "fleet.onprem")
	if final["a100-1"] != before["a100-1"] || final["a100-3"] == before["a100-3"] || final["a100-3"] == "" {
		t.Fatalf("after changing a100-3's port: %v (before %v)", final, before)
	}

	// The fleet's other fields steer placement only: in place.
	inPlace := strings.Replace(moved, "name: onprem\n", "name: onprem\nresources:\n  cpu: 4..\nplacement: cluster\n", 1)
	p = w.mustPlan(w.config(map[string]string{"main.dstack.yml": inPlace}), planOpts{})
	if c := change(p, "fleet.onprem"); c == nil || c.Action != planner.Update || len(c.Steps) > 1 {
		t.Fatalf("changing an SSH fleet's resources and placement:\n%s", describe(p))
	}

	// Add a host back: one create, at a free index.
	w.converge(w.config(map[string]string{"main.dstack.yml": strings.Replace(moved, "    - a100-1\n", "    - a100-1\n    - a100-4\n", 1)}))
	if got := w.hostsOf("fleet.onprem"); len(got) != 3 || !slices.Contains(valuesOf(got), "a100-4") {
		t.Fatalf("after adding a100-4: %v", got)
	}
}

func valuesOf(m map[int]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// stepsByOp groups a change's steps by what they do.
func stepsByOp(p *planner.Plan, c *planner.Change) map[planner.StepOp][]*planner.Step {
	out := map[planner.StepOp][]*planner.Step{}
	for _, id := range c.Steps {
		s := p.Steps[id]
		out[s.Op] = append(out[s.Op], s)
	}
	return out
}

// tokens are the steps' tokens.
func tokens(steps []*planner.Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Token)
	}
	return out
}

func change(p *planner.Plan, addr string) *planner.Change {
	for _, c := range p.Changes {
		if c.Address == addr {
			return c
		}
	}
	return nil
}

// TestDistributedTaskNeedsAHostPerNode: a 3-node task on a fleet of two
// hosts fails the plan, naming the hosts.
func TestDistributedTaskNeedsAHostPerNode(t *testing.T) {
	w := newWorld(t, nil)
	cfg := strings.Replace(sshFleet, "    - a100-2\n", "", 1)
	_, err := w.plan(w.config(map[string]string{"main.dstack.yml": cfg}), planOpts{})
	if err == nil || !strings.Contains(err.Error(), "has another job of this run") || !strings.Contains(err.Error(), "(a100-1)") {
		t.Fatalf("want a placement error naming the hosts, got %v", err)
	}
}

// TestBlocks: a host split into blocks takes runs in whole blocks. An
// 8-GPU host in 4 blocks holds four 1-GPU tasks (each takes a block of 2
// GPUs); a fifth does not fit, and the plan says why.
func TestBlocks(t *testing.T) {
	w := newWorld(t, nil)
	fleet := `type: fleet
name: box
resources:
  gpu: H100:8
  cpu: 32
  memory: 256GB
ssh_config:
  user: root
  hosts:
    - hostname: gpu-1
      blocks: 4
`
	task := func(i int) string {
		return fmt.Sprintf("---\ntype: task\nname: t%d\nfleets: [box]\nresources:\n  gpu: H100:1\n  cpu: 2\n  memory: 8GB\ncommands: [train]\n", i)
	}
	cfg := fleet
	for i := range 4 {
		cfg += task(i)
	}
	p := w.converge(w.config(map[string]string{"main.dstack.yml": cfg}))
	for _, s := range p.Steps {
		if s.Kind == "job" && s.Op == planner.OpCreate {
			if s.Demand == nil || s.Demand.GPUs != 2 || s.Demand.CPUs != 8 || s.Demand.MemoryMB != 64*1024 {
				t.Errorf("%s takes %+v, want one block (2 GPUs, 8 CPUs, 64GB)", s.Name(), s.Demand)
			}
		}
	}
	_, err := w.plan(w.config(map[string]string{"main.dstack.yml": cfg + task(4)}), planOpts{})
	if err == nil || !strings.Contains(err.Error(), "task.t4") || !strings.Contains(err.Error(), "in 4 blocks of 2 GPU") {
		t.Fatalf("a fifth task: want a placement error about the blocks, got %v", err)
	}
}

func TestForcesReplacement(t *testing.T) {
	ssh := &lang.Fleet{Type: "fleet", SSHConfig: &lang.SSHConfig{Hosts: []lang.SSHHost{{Hostname: "a"}}}}
	cloud := &lang.Fleet{Type: "fleet"}
	for _, tc := range []struct {
		spec  lang.Spec
		field string
		want  bool
	}{
		{&lang.Task{}, "image", true},
		{&lang.Task{}, "tags", false},
		{cloud, "resources", true},
		{cloud, "tags", false},
		{ssh, "ssh_config", false},
		{ssh, "resources", false},
	} {
		if got := planner.ForcesReplacement(tc.spec, tc.field); got != tc.want {
			t.Errorf("%T %s: %v, want %v", tc.spec, tc.field, got, tc.want)
		}
	}
}

// silentSet is the simulated cloud with some objects cut off, as an SSH
// fleet's provider reports a host that does not answer and the jobs on
// it: their status unknown, and deleting them fails.
type silentSet struct {
	sim.Set
	silent map[string]bool // tokens and IDs
}

func (s silentSet) For(backend string) (providers.Provider, error) {
	p, err := s.Set.For(backend)
	if err != nil {
		return nil, err
	}
	return silentProvider{Provider: p, silent: s.silent}, nil
}

type silentProvider struct {
	providers.Provider
	silent map[string]bool
}

func (p silentProvider) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	objs, err := p.Provider.Describe(ctx, tokens)
	for t, o := range objs {
		if p.silent[t] {
			o.Status, o.Reason = providers.StatusUnknown, "does not answer"
			objs[t] = o
		}
	}
	return objs, err
}

func (p silentProvider) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	if p.silent[id] {
		return fmt.Errorf("%s does not answer", id)
	}
	return p.Provider.Delete(ctx, kind, id)
}

// TestRunMovesOffSilentHost: a run on a host that stops answering moves
// to another host when its retry policy lists interruption (the job left
// there is abandoned, not forgotten), stays put otherwise, and the
// abandoned job is removed once its host answers again.
func TestRunMovesOffSilentHost(t *testing.T) {
	const fleet = "type: fleet\nname: onprem\nssh_config:\n  user: ubuntu\n  identity_file: ~/.ssh/id_rsa\n  hosts: [h1, h2, h3]\n"
	const web = "---\ntype: service\nname: web\nport: 8000\nfleets: [onprem]\ncommands: [serve]\n"
	w := newWorld(t, nil)
	cfg := func(retry string) *lang.Config {
		return w.config(map[string]string{"main.dstack.yml": fleet + web + retry})
	}
	w.converge(cfg(""))
	st := w.state()
	job := st.Resource("service.web").Instances[0]
	hostToken, _ := job.Attributes["host"].(string)
	var host *state.Instance
	for _, in := range st.Resource("fleet.onprem").Instances {
		if in.Token == hostToken {
			host = in
		}
	}
	if host == nil {
		t.Fatalf("the job's host %q is no instance of the fleet", hostToken)
	}
	silent := map[string]bool{host.Token: true, host.ProviderID: true, job.Token: true, job.ProviderID: true}
	w.set = silentSet{Set: sim.Set{Cloud: w.cloud}, silent: silent}

	// Without retry on interruption the run waits for its host.
	p := w.mustPlan(cfg(""), planOpts{})
	if len(p.Changes) != 0 || len(p.Drift) == 0 {
		t.Fatalf("a silent host under a run without retry:\n%s", describe(p))
	}

	// With it, the run moves: the job there is abandoned, a new one is
	// made on a host that answers.
	withRetry := cfg("retry:\n  on_events: [interruption]\n")
	// A policy that does not list it changes in place, and leaves the run.
	p = w.mustPlan(cfg("retry:\n  on_events: [error]\n"), planOpts{})
	if c := change(p, "service.web"); c == nil || c.Action != planner.Update {
		t.Fatalf("a retry policy without interruption:\n%s", describe(p))
	}
	if res := w.apply(p, planner.ApplyOptions{}); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	p = w.mustPlan(withRetry, planOpts{})
	c := change(p, "service.web")
	if c == nil || c.Action != planner.Replace || !strings.Contains(c.Reason, "does not answer") {
		t.Fatalf("moving off a silent host:\n%s", describe(p))
	}
	ops := stepsByOp(p, c)
	abandoned, created := ops[planner.OpAbandon], ops[planner.OpCreate]
	for _, s := range ops[planner.OpDelete] {
		t.Errorf("moving off a silent host deletes %s", s.Name())
	}
	if len(abandoned) != 1 || abandoned[0].Token != job.Token {
		t.Fatalf("abandons %v, want the job %s", abandoned, job.Token)
	}
	if len(created) != 1 || created[0].HostToken == "" || created[0].HostToken == host.Token {
		t.Fatalf("the new job goes to %v, want a host other than %s", created, host.Token)
	}
	if res := w.apply(p, planner.ApplyOptions{}); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	// The abandoned job is still recorded (it may run on), apart from
	// the run's jobs, and the cloud and the state agree.
	r := w.state().Resource("service.web")
	if len(r.Instances) != 2 || len(planner.WithoutAbandoned(r).Instances) != 1 {
		t.Fatalf("after the move, the run's instances: %d, live %d", len(r.Instances), len(planner.WithoutAbandoned(r).Instances))
	}
	w.checkInventory()
	if p := w.mustPlan(withRetry, planOpts{}); len(p.Changes) != 0 {
		t.Fatalf("the plan while the host is still silent:\n%s", describe(p))
	}

	// The host answers again: the abandoned job is removed, nothing else.
	w.set = nil
	p = w.mustPlan(withRetry, planOpts{})
	c = change(p, "service.web")
	if c == nil || c.Action != planner.Update || !strings.Contains(c.Reason, "did not answer") {
		t.Fatalf("after the host answers again:\n%s", describe(p))
	}
	ops = stepsByOp(p, c)
	for _, s := range append(ops[planner.OpCreate], ops[planner.OpAbandon]...) {
		t.Errorf("the clean-up plans %s", s.Name())
	}
	if dels := tokens(ops[planner.OpDelete]); !slices.Equal(dels, []string{job.Token}) {
		t.Fatalf("the clean-up deletes %v, want the abandoned job %s", dels, job.Token)
	}
	w.converge(withRetry)
	if r := w.state().Resource("service.web"); len(r.Instances) != 1 || r.Instances[0].Token == job.Token {
		t.Fatalf("after the clean-up the run has %d instances", len(r.Instances))
	}
}

// TestGivenHostsAreAProperty: the planner knows a fleet of given hosts by
// its ssh_config and its hosts by their offers, not by a backend's name.
// The backend that serves them is whatever the caller names, and without
// one such a fleet cannot be planned.
func TestGivenHostsAreAProperty(t *testing.T) {
	w := newWorld(t, nil)
	w.hostsBackend = "onprem-hosts"
	cfg := w.config(map[string]string{"main.dstack.yml": sshFleet})
	p := w.mustPlan(cfg, planOpts{})
	var text strings.Builder
	if err := render.Text(&text, p, render.Options{}); err != nil {
		t.Fatal(err)
	}
	hosts := 0
	for _, s := range p.Steps {
		if s.Address != "fleet.onprem" || s.Op != planner.OpCreate {
			continue
		}
		hosts++
		if s.Backend != "onprem-hosts" || s.Offer == nil || !s.Offer.Given || s.Offer.Backend != "onprem-hosts" {
			t.Errorf("host step %d: backend %q, offer %+v", s.ID, s.Backend, s.Offer)
		}
	}
	if hosts != 3 || !strings.Contains(text.String(), "SSH host a100-2 (its GPUs, CPUs and memory are read at apply)") {
		t.Fatalf("%d host steps; plan:\n%s", hosts, text.String())
	}
	w.converge(cfg)
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range snap.State.Resource("fleet.onprem").Instances {
		if in.Provider != "onprem-hosts" {
			t.Errorf("fleet.onprem[%d] made by %q", in.Index, in.Provider)
		}
	}
	// Placement names a given host by its hostname.
	two := strings.Replace(sshFleet, "    - a100-2\n", "", 1)
	if _, err := w.plan(w.config(map[string]string{"main.dstack.yml": two}), planOpts{}); err == nil || !strings.Contains(err.Error(), "(a100-1)") {
		t.Fatalf("want a placement error naming the host, got %v", err)
	}

	none := newWorld(t, nil)
	none.hostsBackend = "-"
	if _, err := none.plan(none.config(map[string]string{"main.dstack.yml": sshFleet}), planOpts{}); err == nil ||
		!strings.Contains(err.Error(), "fleet.onprem: no provider in this build serves fleets of given hosts (ssh_config)") {
		t.Fatalf("no backend for given hosts: %v", err)
	}
}
