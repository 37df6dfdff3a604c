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
