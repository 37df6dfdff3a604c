package agent_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// pullingRuntime stands in for the docker runtime to drive the manager
// through the states before running: it reports pulling, then waits for
// the test to let the pull finish (or fail) or for the start to be
// cancelled.
type pullingRuntime struct {
	release chan error // the pull's outcome
	handles chan *idleHandle
}

func (r *pullingRuntime) Name() string { return "docker" }

func (r *pullingRuntime) Start(ctx context.Context, spec agent.JobSpec, logPath string, progress func(agent.JobState, string)) (agent.Handle, error) {
	progress(agent.StatePulling, "pulling "+spec.Image)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case err := <-r.release:
		if err != nil {
			return nil, err
		}
	}
	progress(agent.StateCreating, "creating the container")
	h := &idleHandle{done: make(chan struct{})}
	r.handles <- h
	return h, nil
}

func (r *pullingRuntime) Reattach(context.Context, agent.JobSpec, string) (agent.Handle, bool, error) {
	return nil, false, nil
}

// idleHandle is a job that runs until stopped, and counts detaches.
type idleHandle struct {
	done     chan struct{}
	stopped  atomic.Bool
	detached atomic.Int32
}

func (h *idleHandle) Wait(ctx context.Context) (int, string, error) {
	select {
	case <-h.done:
		return 143, "killed by signal 15", nil
	case <-ctx.Done():
		return 0, "", ctx.Err()
	}
}

func (h *idleHandle) Stop(context.Context, time.Duration) error {
	if h.stopped.CompareAndSwap(false, true) {
		close(h.done)
	}
	return nil
}

func (h *idleHandle) Remove(context.Context) error                   { return nil }
func (h *idleHandle) Metrics(context.Context) (agent.Metrics, error) { return agent.Metrics{}, nil }
func (h *idleHandle) Ports() []agent.PortBinding                     { return nil }
func (h *idleHandle) Detach()                                        { h.detached.Add(1) }

func TestStatesBeforeRunning(t *testing.T) {
	rt := &pullingRuntime{release: make(chan error), handles: make(chan *idleHandle, 1)}
	m, err := agent.NewManager(t.Context(), agent.Options{DataDir: t.TempDir(), Runtimes: []agent.Runtime{rt}})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := agent.NewServer(m, agent.ServerOptions{Token: testToken})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c, _ := client.New(hs.URL, testToken, nil)
	ctx := t.Context()
	wait := func(id string, cond func(agent.Job) bool) agent.Job {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		j, err := c.WaitFor(wctx, id, cond)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	// Pulling is visible, with its message.
	c.Submit(ctx, agent.JobSpec{ID: "slow", Image: "busybox:1.36"})
	job := wait("slow", func(j agent.Job) bool { return j.State == agent.StatePulling })
	if job.Reason != "pulling busybox:1.36" || job.Runtime != "docker" {
		t.Errorf("pulling job: reason %q runtime %q", job.Reason, job.Runtime)
	}
	// Stopping a job that is still pulling cancels the pull.
	job, err = c.Stop(ctx, "slow", agent.StopRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateStopped || job.Reason != "stopped before it started" || job.ExitCode != nil {
		t.Errorf("stopped while pulling: %s (%q), exit code %v", job.State, job.Reason, job.ExitCode)
	}

	// A failed pull fails the job with the runtime's reason.
	c.Submit(ctx, agent.JobSpec{ID: "bad-image", Image: "nope:latest"})
	wait("bad-image", func(j agent.Job) bool { return j.State == agent.StatePulling })
	rt.release <- errors.New("image pull failed: manifest for nope:latest not found")
	job = wait("bad-image", func(j agent.Job) bool { return j.State.Finished() })
	if job.State != agent.StateFailed || job.Reason != "image pull failed: manifest for nope:latest not found" {
		t.Errorf("failed pull: %s (%q)", job.State, job.Reason)
	}

	// A job that runs, then is stopped: its runtime's reason is kept.
	c.Submit(ctx, agent.JobSpec{ID: "ok", Image: "busybox"})
	rt.release <- nil
	h := <-rt.handles
	wait("ok", func(j agent.Job) bool { return j.State == agent.StateRunning })
	job, err = c.Stop(ctx, "ok", agent.StopRequest{GraceSeconds: new(3)})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateStopped || exitCode(job) != 143 || job.Reason != "stopped on request: killed by signal 15" {
		t.Errorf("stopped job: %s, %d (%q)", job.State, exitCode(job), job.Reason)
	}

	// Close detaches the handles it holds and leaves the jobs alone.
	c.Submit(ctx, agent.JobSpec{ID: "kept", Image: "busybox"})
	rt.release <- nil
	kept := <-rt.handles
	wait("kept", func(j agent.Job) bool { return j.State == agent.StateRunning })
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if kept.detached.Load() != 1 || kept.stopped.Load() {
		t.Errorf("after Close: detached %d times, stopped %v; want detached once, not stopped", kept.detached.Load(), kept.stopped.Load())
	}
	if h.detached.Load() != 1 {
		t.Errorf("ended job's handle detached %d times", h.detached.Load())
	}
	if _, _, err := m.Submit(ctx, agent.JobSpec{ID: "late", Image: "x"}); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("submit after Close: %v", err)
	}
}
