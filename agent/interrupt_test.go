package agent_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestInterrupt: on an interruption notice every running job gets
// SIGTERM and, if it does not exit, SIGKILL after its grace period; it
// ends failed by "interruption", and the agent refuses new jobs.
func TestInterrupt(t *testing.T) {
	a := startAgent(t, t.TempDir())
	// One job exits on SIGTERM, one ignores it and waits for the kill.
	a.submit(agent.JobSpec{ID: "graceful", StopGraceSeconds: 30,
		Commands: []string{"trap 'echo got TERM; exit 0' TERM", "echo ready", "while :; do sleep 0.05; done"}})
	a.submit(agent.JobSpec{ID: "stubborn", StopGraceSeconds: 1,
		Commands: []string{"trap '' TERM", "echo ready", "sleep 600"}})
	a.waitRunning("graceful")
	a.waitRunning("stubborn")
	a.waitLog("graceful", "ready")
	a.waitLog("stubborn", "ready")

	notice := "spot interruption notice: terminate at 2031-01-01T00:00:00Z"
	start := time.Now()
	a.m.Interrupt(agent.Interruption{Notice: notice, Deadline: time.Now().Add(2 * time.Minute)})

	g := a.waitFinished("graceful")
	if g.State != agent.StateFailed || g.Termination != agent.TerminationInterruption || exitCode(g) != 0 ||
		g.Reason != "interrupted ("+notice+"): exit code 0" {
		t.Errorf("graceful job: state %s, termination %q, exit %d, reason %q", g.State, g.Termination, exitCode(g), g.Reason)
	}
	if !strings.Contains(a.logs("graceful"), "got TERM") {
		t.Errorf("the graceful job never saw SIGTERM:\n%s", a.logs("graceful"))
	}
	s := a.waitFinished("stubborn")
	took := s.FinishedAt.Sub(start)
	if s.State != agent.StateFailed || s.Termination != agent.TerminationInterruption || exitCode(s) != 137 ||
		!strings.Contains(s.Reason, "killed by signal 9") {
		t.Errorf("stubborn job: state %s, termination %q, exit %d, reason %q", s.State, s.Termination, exitCode(s), s.Reason)
	}
	// Killed after its 1s grace period, not before and not much later.
	if took < time.Second || took > 3*time.Second {
		t.Errorf("the stubborn job ended %s after the notice, want its 1s grace period", took)
	}

	// The agent takes no more jobs, and says why.
	_, _, err := a.c.Submit(t.Context(), agent.JobSpec{ID: "late", Commands: []string{"true"}})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != http.StatusServiceUnavailable || !strings.Contains(ce.Message, notice) {
		t.Errorf("submit after the notice: %v", err)
	}
	h, err := a.c.Health(t.Context())
	if err != nil || h.Interruption == nil || h.Interruption.Notice != notice {
		t.Errorf("health after the notice: %+v, %v", h, err)
	}
}

// TestInterruptDeadline: a notice's deadline cuts a longer grace period
// short, so the job is gone before the machine is.
func TestInterruptDeadline(t *testing.T) {
	a := startAgent(t, t.TempDir())
	a.submit(agent.JobSpec{ID: "long-grace", StopGraceSeconds: 300,
		Commands: []string{"trap '' TERM", "echo ready", "sleep 600"}})
	a.waitRunning("long-grace")
	a.waitLog("long-grace", "ready")
	start := time.Now()
	a.m.Interrupt(agent.Interruption{Notice: "spot interruption notice: terminate soon", Deadline: time.Now().Add(time.Second)})
	j := a.waitFinished("long-grace")
	if took := j.FinishedAt.Sub(start); took > 3*time.Second || j.Termination != agent.TerminationInterruption || exitCode(j) != 137 {
		t.Fatalf("ended %s after a notice 1s ahead (termination %q, exit %d)", took, j.Termination, exitCode(j))
	}
}

// TestInterruptKeepsOtherEndings: jobs that ended before the notice, or
// were stopped on request, keep how they ended.
func TestInterruptKeepsOtherEndings(t *testing.T) {
	a := startAgent(t, t.TempDir())
	a.submit(agent.JobSpec{ID: "done", Commands: []string{"echo hi"}})
	a.submit(agent.JobSpec{ID: "failed", Commands: []string{"exit 3"}})
	d, f := a.waitFinished("done"), a.waitFinished("failed")
	a.m.Interrupt(agent.Interruption{Notice: "spot interruption notice: terminate at 2031-01-01T00:00:00Z"})
	if d.Termination != agent.TerminationExited || f.Termination != agent.TerminationExited {
		t.Fatalf("terminations: %q, %q", d.Termination, f.Termination)
	}
	for _, id := range []string{"done", "failed"} {
		j, err := a.c.Get(t.Context(), id)
		if err != nil || j.Termination != agent.TerminationExited {
			t.Errorf("%s after the notice: %+v, %v", id, j, err)
		}
	}
}
