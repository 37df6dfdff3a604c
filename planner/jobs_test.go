package planner_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
)

// TestObserve: what `ps` shows comes from the providers, not the state:
// a job done since apply is done, one deleted outside dstack is
// terminated, and fails the run.
func TestObserve(t *testing.T) {
	w := newWorld(t, &sim.Config{JobDuration: ptr(sim.Duration(0))})
	cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\nnodes: 2\ncommands: [train]\n"})
	w.apply(w.mustPlan(cfg, planOpts{}), planner.ApplyOptions{})
	st := w.state()
	r := st.Resource("task.t")
	// As recorded while the jobs ran.
	for _, in := range r.Instances {
		in.Status = providers.StatusRunning
	}
	if err := w.cloud.Delete(context.Background(), providers.KindJob, r.Instances[1].ProviderID); err != nil {
		t.Fatal(err)
	}
	jobs, err := planner.Observe(context.Background(), st, w.providers())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.Address+" "+j.Status)
	}
	if diff := cmp.Diff([]string{"task.t done", "task.t terminated"}, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	if failed, why := planner.RunFailed(r, jobs); !failed || why != "task.t[1] terminated (deleted)" {
		t.Errorf("RunFailed = %v, %q", failed, why)
	}
}

func TestRunFailed(t *testing.T) {
	job := func(i int, status, reason string) planner.Job {
		return planner.Job{Address: "task.t", Index: i, Status: status, Reason: reason}
	}
	masterDone := &state.Resource{Address: "task.t", Attributes: map[string]any{"spec": map[string]any{"stop_criteria": "master-done"}}}
	allDone := &state.Resource{Address: "task.t"}
	tests := []struct {
		name    string
		run     *state.Resource
		jobs    []planner.Job
		want    bool
		wantWhy string
	}{
		{"done", allDone, []planner.Job{job(0, "done", "exit code 0")}, false, ""},
		{"exit code 3", allDone, []planner.Job{job(0, "failed", "exit code 3")}, true, "task.t[0] failed (exit code 3)"},
		{"still running", allDone, []planner.Job{job(0, "running", "")}, false, ""},
		{"a worker failed", allDone, []planner.Job{job(0, "done", ""), job(1, "failed", "exit code 1")}, true, "task.t[1] failed (exit code 1)"},
		{"a worker still runs", allDone, []planner.Job{job(0, "done", ""), job(1, "running", "")}, false, ""},
		{"master-done: worker stopped", masterDone, []planner.Job{job(1, "failed", "stopped on request"), job(0, "done", "")}, false, ""},
		{"master-done: master failed", masterDone, []planner.Job{job(0, "failed", "exit code 2"), job(1, "running", "")}, true, "task.t[0] failed (exit code 2)"},
		{"no jobs", allDone, nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := planner.RunFailed(tt.run, tt.jobs)
			if got != tt.want || why != tt.wantWhy {
				t.Errorf("RunFailed = %v, %q; want %v, %q", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}
