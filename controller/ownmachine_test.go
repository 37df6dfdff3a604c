package controller_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
)

// quickTasks is a simulated cloud whose tasks' jobs finish at once.
func quickTasks(t *testing.T) (*project, *sim.Cloud) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sim")
	zero := sim.Duration(0)
	if err := sim.WriteConfig(dir, sim.Config{JobDuration: &zero}); err != nil {
		t.Fatal(err)
	}
	c, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return newProject(t, sim.Set{Cloud: c}), c
}

// liveObjects counts the objects the simulated cloud still holds (and
// bills).
func liveObjects(t *testing.T, c *sim.Cloud) int {
	t.Helper()
	objs, err := c.Live()
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// finishedJob is the one job of task.train, which must be done.
func finishedJob(t *testing.T, p *project) map[string]any {
	t.Helper()
	r := p.state().Resource("task.train")
	if r == nil || len(r.Instances) != 1 || r.Instances[0].Status != providers.StatusDone {
		t.Fatalf("task.train in state: %+v; want its one job, done", r)
	}
	return r.Instances[0].Attributes
}

// TestLoopReleasesFinishedOwnMachine: the machine a task without a fleet
// got of its own is released by the loop once the run has been finished
// for its idle_duration, and not before; the job's record stays (ps
// still lists the run as done), and the plan after it is empty.
func TestLoopReleasesFinishedOwnMachine(t *testing.T) {
	p, cloud := quickTasks(t)
	cfg := p.config("type: task\nname: train\ncommands: [train]\nidle_duration: 2m\n")
	p.apply(cfg)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now})
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("the tick that saw the task finish changed %v", rep.Changes)
	}
	finishedJob(t, p)
	clk.add(time.Minute)
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("a tick before idle_duration changed %v", rep.Changes)
	}
	if n := liveObjects(t, cloud); n != 1 {
		t.Fatalf("before idle_duration the cloud holds %d machines, want the task's 1", n)
	}
	clk.add(65 * time.Second)
	rep := tick(t, l)
	got := strings.Join(rep.Changes, "\n")
	if len(rep.Changes) != 1 || !strings.Contains(got, "task.train: releases its own machine: job 0: run finished") ||
		!strings.Contains(got, "own machine idle past idle_duration (2m)") {
		t.Fatalf("changes %v", rep.Changes)
	}
	if n := liveObjects(t, cloud); n != 0 {
		t.Fatalf("after idle_duration the cloud holds %d machines, want none", n)
	}
	if a := finishedJob(t, p); a[planner.AttrReleasedAt] == nil {
		t.Errorf("the job's record is not marked released: %v", a)
	}
	p.noDrift(cfg)
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Errorf("a tick after the release changed %v", rep.Changes)
	}
	finishedJob(t, p)
}

// TestPlanReleasesFinishedOwnMachine: `dstack plan` made once a finished
// run's own machine has idled past idle_duration proposes the release,
// and not before; its apply keeps the job's record. "off" keeps the
// machine.
func TestPlanReleasesFinishedOwnMachine(t *testing.T) {
	p, cloud := quickTasks(t)
	cfg := p.config("type: task\nname: train\ncommands: [train]\nidle_duration: 2s\n---\ntype: task\nname: kept\ncommands: [train]\nidle_duration: \"off\"\n")
	p.apply(cfg)
	if pl := p.plan(cfg); !pl.Empty() {
		t.Fatalf("a plan right after the tasks finished is not empty: %+v", pl.Changes)
	}
	time.Sleep(3500 * time.Millisecond)
	pl := p.plan(cfg)
	if len(pl.Changes) != 1 || pl.Changes[0].Address != "task.train" ||
		!strings.Contains(pl.Changes[0].Reason, "own machine idle past idle_duration (2s)") {
		t.Fatalf("plan after idle_duration: %+v", pl.Changes)
	}
	var release *planner.Step
	for _, id := range pl.Changes[0].Steps {
		if s := pl.Steps[id]; s.Op == planner.OpDelete {
			release = s
		}
	}
	if release == nil || !strings.Contains(release.Release, "run finished") {
		t.Fatalf("the plan has no release step: %+v", pl.Steps)
	}
	p.apply(cfg)
	if n := liveObjects(t, cloud); n != 1 {
		t.Fatalf("after the apply the cloud holds %d machines, want task.kept's 1", n)
	}
	first := p.state().Resource("task.train").Instances[0]
	if first.Status != providers.StatusDone || !planner.Released(first) {
		t.Fatalf("task.train's job after the release: %+v", first)
	}
	p.noDrift(cfg)
}
