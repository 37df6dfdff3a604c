package planner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// TestRetryOnAgentInterruption: a task's job that its agent stopped for
// the machine's spot interruption notice (failed, termination
// "interruption") is run again by a retry policy that lists
// "interruption", not by one that lists only "error"; and, as in dstack,
// the policy's duration (one hour by default) runs from when the job
// ended, not from when the task was first submitted.
func TestRetryOnAgentInterruption(t *testing.T) {
	for _, tc := range []struct {
		name        string
		retry       string
		termination string
		createdAgo  time.Duration
		endedAgo    time.Duration
		rerun       bool
	}{
		{"retry on interruption", "retry:\n  on_events: [interruption]\n", "interruption", time.Minute, time.Second, true},
		{"retry: true", "retry: true\n", "interruption", time.Minute, time.Second, true},
		{"no retry", "", "interruption", time.Minute, time.Second, false},
		{"retry on error only", "retry:\n  on_events: [error]\n", "interruption", time.Minute, time.Second, false},
		{"an exit code is an error", "retry:\n  on_events: [interruption]\n", "exited", time.Minute, time.Second, false},
		{"duration runs from the end", "retry:\n  on_events: [interruption]\n  duration: 1h\n", "interruption", 3 * time.Hour, 10 * time.Minute, true},
		{"duration over", "retry:\n  on_events: [interruption]\n  duration: 1h\n", "interruption", 3 * time.Hour, 61 * time.Minute, false},
		{"default duration is an hour", "retry:\n  on_events: [interruption]\n", "interruption", 3 * time.Hour, 2 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\nstop_duration: 5s\ncommands: [train]\n" + tc.retry})
			w.converge(cfg)
			p := w.mustPlan(cfg, planOpts{})
			// What refresh records of a job the agent stopped for a spot
			// interruption notice (see local.JobObject).
			now := time.Now()
			job := p.Prior.Resources[0].Instances[0]
			job.Status = providers.StatusFailed
			job.Attributes[providers.AttrTermination] = tc.termination
			job.Attributes[providers.AttrFinishedAt] = now.Add(-tc.endedAgo).UTC().Format(time.RFC3339)
			job.Attributes[planner.AttrCreatedAt] = now.Add(-tc.createdAgo).UTC().Format(time.RFC3339)
			p, err := planner.Make(planner.Input{Config: cfg, Prior: p.Prior, StateExisted: true, Workspace: state.DefaultWorkspace,
				ToolVersion: "test", Offers: mustOffers(t, w), HostsBackend: w.hosts(), Now: now})
			if err != nil {
				t.Fatal(err)
			}
			rerun := len(p.Changes) == 1 && p.Changes[0].Action == planner.Replace
			if rerun != tc.rerun || (!tc.rerun && len(p.Changes) != 0) {
				t.Fatalf("re-run = %v, want %v:\n%s", rerun, tc.rerun, describe(p))
			}
			if rerun && tc.termination == "interruption" && !strings.Contains(p.Changes[0].Reason, "interrupted and retry on interruption") {
				t.Errorf("reason %q", p.Changes[0].Reason)
			}
		})
	}
}

// TestSpotFleetInterruption: EC2 takes a spot fleet's instance back (the
// simulated cloud's Interrupt), ending the task's job on it. One apply
// makes the fleet whole again and, since the task's retry lists
// "interruption", places the task on the new instance; a task without
// retry stays failed.
func TestSpotFleetInterruption(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": "type: fleet\nname: spot\nnodes: 1\nspot_policy: spot\nresources:\n  gpu: H100:8\n" +
		"---\ntype: task\nname: train\nfleets: [spot]\nresources:\n  gpu: H100:4\ncommands: [train]\nretry:\n  on_events: [interruption]\n" +
		"---\ntype: task\nname: eval\nfleets: [spot]\nresources:\n  gpu: H100:4\ncommands: [eval]\n"})
	w.converge(cfg)
	st := w.state()
	fleet, train := st.Resource("fleet.spot"), st.Resource("task.train")
	if fleet == nil || train == nil || len(fleet.Instances) != 1 || len(train.Instances) != 1 {
		t.Fatalf("state after the first apply: %+v", st.Resources)
	}
	oldInstance, oldJob := fleet.Instances[0].ProviderID, train.Instances[0].ProviderID
	if err := w.cloud.Interrupt(oldInstance, "spot interruption"); err != nil {
		t.Fatal(err)
	}

	p := w.mustPlan(cfg, planOpts{})
	actions := map[string]planner.Action{}
	for _, c := range p.Changes {
		actions[c.Address] = c.Action
	}
	if actions["task.train"] != planner.Replace || actions["fleet.spot"] == "" {
		t.Fatalf("plan after the interruption:\n%s", describe(p))
	}
	if _, ok := actions["task.eval"]; ok {
		t.Fatalf("the task without retry is run again:\n%s", describe(p))
	}
	if res := w.apply(p, planner.ApplyOptions{Parallelism: 4}); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	st = w.state()
	fleet, train = st.Resource("fleet.spot"), st.Resource("task.train")
	if len(fleet.Instances) != 1 || fleet.Instances[0].ProviderID == oldInstance {
		t.Fatalf("the fleet's instance after apply: %+v", fleet.Instances)
	}
	if len(train.Instances) != 1 || train.Instances[0].ProviderID == oldJob || train.Instances[0].Status == providers.StatusFailed {
		t.Fatalf("the task's job after apply: %+v", train.Instances)
	}
	if eval := st.Resource("task.eval"); len(eval.Instances) != 1 || eval.Instances[0].Status != providers.StatusFailed {
		t.Fatalf("the task without retry after apply: %+v", eval.Instances)
	}
	w.checkInventory()
}
