package agent_test

// The agent with the docker runtime, through its HTTP API: these tests
// need a Docker Engine and are skipped without one (failing instead under
// DSTACK_REQUIRE_DOCKER, see dockertest).

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/imds"
	"github.com/dstackai/dstack-go/agent/imds/imdstest"
	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// dockerRuntime connects a docker runtime to the test Engine and makes
// sure the test image is there; it returns the runtime and the image.
func dockerRuntime(t testing.TB) (*docker.Runtime, string) {
	t.Helper()
	img := dockertest.Image(t)
	rt, err := docker.New(t.Context())
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, img
}

// dockerJob is a job of the test image running commands, with an ID unique
// to this run (container names are global to the Engine); its container is
// removed when t ends.
func dockerJob(t testing.TB, img, name string, commands ...string) agent.JobSpec {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	id := name + "-" + hex.EncodeToString(b[:])
	dockertest.RemoveContainers(t, docker.LabelJobID+"="+id)
	return agent.JobSpec{ID: id, RunName: "test", Image: img, Commands: commands}
}

// in is the agent seen from t (a subtest), for the helpers that fail t.
func (a *testAgent) in(t testing.TB) *testAgent {
	sub := *a
	sub.t = t
	return &sub
}

// follow streams a job's log from offset since to the job's end.
func (a *testAgent) follow(id string, since int64) string {
	a.t.Helper()
	s, err := a.c.Logs(a.t.Context(), id, since, true)
	if err != nil {
		a.t.Fatalf("logs %s: %v", id, err)
	}
	defer s.Close()
	data, err := io.ReadAll(s)
	if err != nil {
		a.t.Fatalf("follow logs %s: %v", id, err)
	}
	return string(data)
}

// followDiscard follows a job's output to its end like a client that
// reads and drops it, and returns how many bytes came.
func (a *testAgent) followDiscard(id string) int64 {
	a.t.Helper()
	s, err := a.c.Logs(a.t.Context(), id, 0, true)
	if err != nil {
		a.t.Fatalf("logs %s: %v", id, err)
	}
	defer s.Close()
	n, err := io.Copy(io.Discard, s)
	if err != nil {
		a.t.Fatalf("follow logs %s: %v", id, err)
	}
	return n
}

// numbered is the output of `echo "out $i"; echo "err $i" >&2` for i
// from 1 to n.
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "out %d\nerr %d\n", i, i)
	}
	return b.String()
}

func TestDockerJobLogs(t *testing.T) {
	rt, img := dockerRuntime(t)
	a := startAgent(t, t.TempDir(), withRuntime(rt))

	t.Run("interleaved", func(t *testing.T) {
		t.Parallel()
		a := a.in(t)
		const n = 3000
		spec := dockerJob(t, img, "interleaved", fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`, n), "exit 3")
		a.submit(spec)
		if got := a.follow(spec.ID, 0); got != numbered(n) {
			t.Errorf("followed log of %d bytes differs from the %d written; it starts %q", len(got), len(numbered(n)), got[:min(200, len(got))])
		}
		job := a.waitFinished(spec.ID)
		if job.State != agent.StateFailed || exitCode(job) != 3 || job.Reason != "exit code 3" || job.Runtime != "docker" {
			t.Errorf("job %s on %s, code %d (%s); want failed with exit code 3 on docker", job.State, job.Runtime, exitCode(job), job.Reason)
		}
	})
	t.Run("big", func(t *testing.T) {
		t.Parallel()
		a := a.in(t)
		const lines = 2_000_000 // about 15 MB
		spec := dockerJob(t, img, "big", fmt.Sprintf("seq 1 %d", lines))
		a.submit(spec)
		got := a.follow(spec.ID, 0)
		var want strings.Builder
		for i := 1; i <= lines; i++ {
			fmt.Fprintf(&want, "%d\n", i)
		}
		if got != want.String() {
			t.Errorf("followed log of %d bytes, want %d; it ends %q", len(got), want.Len(), got[max(0, len(got)-100):])
		}
		if job := a.waitFinished(spec.ID); job.State != agent.StateDone {
			t.Errorf("job %s (%s)", job.State, job.Reason)
		}
	})
	t.Run("non-root user", func(t *testing.T) {
		t.Parallel()
		a := a.in(t)
		spec := dockerJob(t, img, "user", "id -u", "echo to stderr >&2")
		spec.User = "nobody"
		spec.WorkingDir = "/tmp"
		a.submit(spec)
		if job := a.waitFinished(spec.ID); job.State != agent.StateDone {
			t.Fatalf("job %s (%s)", job.State, job.Reason)
		}
		if got := a.logs(spec.ID); got != "65534\nto stderr\n" {
			t.Errorf("log %q", got)
		}
	})
	t.Run("entrypoint without commands", func(t *testing.T) {
		t.Parallel()
		a := a.in(t)
		spec := dockerJob(t, img, "entrypoint")
		spec.Entrypoint = []string{"/bin/sh", "-c", "echo from the entrypoint"}
		a.submit(spec)
		if job := a.waitFinished(spec.ID); job.State != agent.StateDone {
			t.Fatalf("job %s (%s)", job.State, job.Reason)
		}
		if got := a.logs(spec.ID); got != "from the entrypoint\n" {
			t.Errorf("log %q", got)
		}
	})
}

// TestDockerRestartMidOutput restarts the agent while a container job
// prints: the job goes on writing its log while no agent runs, and a
// client following the log across the restart gets every line once, in
// the order written.
func TestDockerRestartMidOutput(t *testing.T) {
	dir := t.TempDir()
	rt, img := dockerRuntime(t)
	a := startAgent(t, dir, withRuntime(rt))
	const n = 20000
	spec := dockerJob(t, img, "restart", fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; echo "err $i" >&2; if [ $((i %% 1000)) = 0 ]; then sleep 0.2; fi; i=$((i+1)); done`, n), "exit 7")
	a.submit(spec)
	a.waitLog(spec.ID, "err 2000\n")

	// Read what is there, as a client following the log would have.
	s, err := a.c.Logs(t.Context(), spec.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	first, err := io.ReadAll(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	a.close()
	logPath := filepath.Join(dir, "jobs", spec.ID, "output.log")
	atClose := fileSize(t, logPath)
	time.Sleep(500 * time.Millisecond)
	if fileSize(t, logPath) <= atClose {
		t.Error("the job's log did not grow while the agent was down")
	}

	rt2, _ := dockerRuntime(t)
	b := startAgent(t, dir, withRuntime(rt2))
	if job, err := b.c.Get(t.Context(), spec.ID); err != nil || job.State != agent.StateRunning {
		t.Fatalf("after the restart the job is %s (%s, %v), want running", job.State, job.Reason, err)
	}
	rest := b.follow(spec.ID, int64(len(first)))
	if got := string(first) + rest; got != numbered(n) {
		t.Errorf("log across the restart (%d bytes) differs from the %d written; after the restart it starts %q", len(got), len(numbered(n)), rest[:min(100, len(rest))])
	}
	job := b.waitFinished(spec.ID)
	if job.State != agent.StateFailed || exitCode(job) != 7 || job.Reason != "exit code 7" {
		t.Errorf("job ended %s, code %d (%s); want failed with exit code 7", job.State, exitCode(job), job.Reason)
	}
	if err := b.c.Delete(t.Context(), spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("the job's files outlived Delete: %v", err)
	}
}

// TestDockerLogSizeCap: the manager's cap holds for a container that
// appends to its log itself, as for a host process.
func TestDockerLogSizeCap(t *testing.T) {
	rt, img := dockerRuntime(t)
	const limit = 1 << 20
	a := startAgent(t, t.TempDir(), withLogLimit(limit), withRuntime(rt))
	checkLogSizeCap(t, a, dockerJob(t, img, "chatty"), limit)
}

// TestDockerExecAsJobUser: a command run in a container job (attach --
// CMD) runs as the job's user, in its working directory, with the job's
// environment and nothing of the agent's.
func TestDockerExecAsJobUser(t *testing.T) {
	rt, img := dockerRuntime(t)
	name, value, _ := strings.Cut(agentSecret, "=")
	t.Setenv(name, value)
	a := startAgent(t, t.TempDir(), withRuntime(rt))
	spec := dockerJob(t, img, "exec-user", "sleep 30")
	spec.User, spec.WorkingDir = "nobody", "/tmp"
	spec.Env = map[string]string{"JOB_VAR": "from-job"}
	a.submit(spec)
	a.waitRunning(spec.ID)
	if got := strings.TrimSpace(execOutput(t, a.c, spec.ID, "id", "-un")); got != "nobody" {
		t.Errorf("exec id -un = %q, want nobody", got)
	}
	if got := strings.TrimSpace(execOutput(t, a.c, spec.ID, "pwd")); got != "/tmp" {
		t.Errorf("exec pwd = %q, want /tmp", got)
	}
	env := execOutput(t, a.c, spec.ID, "env")
	if !strings.Contains(env, "JOB_VAR=from-job\n") || strings.Contains(env, value) || strings.Contains(env, name) {
		t.Errorf("exec env, want JOB_VAR and not the agent's %s:\n%s", name, env)
	}
}

// TestDockerStopRemovesContainer: stopping a container job removes its
// container (docker ps -a no longer lists it) once its output is in the
// log, which stays readable; Delete then has nothing left to remove.
func TestDockerStopRemovesContainer(t *testing.T) {
	rt, img := dockerRuntime(t)
	a := startAgent(t, t.TempDir(), withRuntime(rt))
	spec := dockerJob(t, img, "stop-rm", "trap 'echo cleaning up; exit 0' TERM", "echo started", "while true; do sleep 0.1; done")
	a.submit(spec)
	a.waitRunning(spec.ID)
	a.waitLog(spec.ID, "started\n")
	job, err := a.c.Stop(t.Context(), spec.ID, agent.StopRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateStopped {
		t.Errorf("stopped job is %s (%s)", job.State, job.Reason)
	}
	list, err := dockertest.Client(t).ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobID+"="+spec.ID))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		t.Errorf("container %s of the stopped job is still there (%s)", c.Names, c.Status)
	}
	if got := a.logs(spec.ID); got != "started\ncleaning up\n" {
		t.Errorf("log of the stopped job: %q", got)
	}
	if err := a.c.Delete(t.Context(), spec.ID); err != nil {
		t.Errorf("delete after the stop: %v", err)
	}
}

// TestDockerSpotInterruption: a container job that ignores SIGTERM is
// killed once its stop grace period has passed after the spot
// interruption notice of amazon-ec2-metadata-mock, ends failed by
// "interruption", and its container is removed.
func TestDockerSpotInterruption(t *testing.T) {
	rt, img := dockerRuntime(t)
	endpoint := imdstest.Spot(t, 0)
	a := startAgent(t, t.TempDir(), withRuntime(rt))
	spec := dockerJob(t, img, "spot", "trap '' TERM", "echo ready", "sleep 600")
	spec.StopGraceSeconds = 2
	a.submit(spec)
	a.waitRunning(spec.ID) // a job still starting is cancelled, not stopped
	a.waitLog(spec.ID, "ready\n")

	n, err := imds.Watch(t.Context(), imds.New(endpoint, nil), 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	noticed := time.Now()
	a.m.Interrupt(agent.Interruption{Notice: n.String(), Deadline: n.Time})
	job := a.waitFinished(spec.ID)
	if job.State != agent.StateFailed || job.Termination != agent.TerminationInterruption || exitCode(job) != 137 ||
		!strings.HasPrefix(job.Reason, "interrupted (spot interruption notice: terminate at ") {
		t.Errorf("job: state %s, termination %q, exit %d, reason %q", job.State, job.Termination, exitCode(job), job.Reason)
	}
	if took := job.FinishedAt.Sub(noticed); took < 2*time.Second || took > 5*time.Second {
		t.Errorf("the job ended %s after the notice, want its 2s stop grace period", took)
	}
	list, err := dockertest.Client(t).ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobID+"="+spec.ID))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		t.Errorf("container %s of the interrupted job is still there (%s)", c.Names, c.Status)
	}
}
