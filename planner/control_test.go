package planner_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
