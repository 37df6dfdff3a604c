package agent_test

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/host"
	"github.com/dstackai/dstack-go/agent/inventory"
)

const testToken = "s3cret-token"

// testAgent is a real agent (manager, host runtime, HTTP server on a
// loopback port) on a data dir, with a client of it.
type testAgent struct {
	t      testing.TB
	dir    string
	m      *agent.Manager
	srv    *agent.Server
	http   *httptest.Server
	c      *client.Client
	closed bool
}

type agentOption func(*agent.Options, *host.Options)

func withLogLimit(n int64) agentOption {
	return func(o *agent.Options, _ *host.Options) { o.LogLimit = n }
}

// withRuntime gives the agent rt beside the host runtime.
func withRuntime(rt agent.Runtime) agentOption {
	return func(o *agent.Options, _ *host.Options) { o.Runtimes = append(o.Runtimes, rt) }
}

func withGPUUsage(f func(context.Context) ([]inventory.GPUUsage, error)) agentOption {
	return func(_ *agent.Options, h *host.Options) { h.GPUUsage = f }
}

// startAgent starts an agent on dir, with the host runtime and those
// given withRuntime. At the end of the test it kills the
// jobs still running, unless the test closed the agent itself.
func startAgent(t testing.TB, dir string, opts ...agentOption) *testAgent {
	t.Helper()
	ho := host.Options{Dir: filepath.Join(dir, "host")}
	ao := agent.Options{DataDir: dir}
	for _, o := range opts {
		o(&ao, &ho)
	}
	rt, err := host.New(ho)
	if err != nil {
		t.Fatal(err)
	}
	ao.Runtimes = append([]agent.Runtime{rt}, ao.Runtimes...)
	m, err := agent.NewManager(t.Context(), ao)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agent.NewServer(m, agent.ServerOptions{Token: testToken, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	c, err := client.New(hs.URL, testToken, hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := &testAgent{t: t, dir: dir, m: m, srv: srv, http: hs, c: c}
	t.Cleanup(func() {
		if a.closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, j := range m.List("") {
			m.Stop(ctx, j.Spec.ID, agent.StopRequest{Abort: true})
		}
		a.close()
	})
	return a
}

// close shuts the server and the manager down, leaving the jobs running.
func (a *testAgent) close() {
	a.t.Helper()
	if a.closed {
		return
	}
	a.closed = true
	a.http.CloseClientConnections()
	a.http.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.m.Close(ctx); err != nil {
		a.t.Errorf("close manager: %v", err)
	}
}

// submit submits a host job running commands.
func (a *testAgent) submit(spec agent.JobSpec) agent.Job {
	a.t.Helper()
	job, created, err := a.c.Submit(a.t.Context(), spec)
	if err != nil {
		a.t.Fatalf("submit %s: %v", spec.ID, err)
	}
	if !created {
		a.t.Fatalf("submit %s: not created", spec.ID)
	}
	return job
}

// waitFor waits up to 30s for the job to satisfy cond.
func (a *testAgent) waitFor(id string, what string, cond func(agent.Job) bool) agent.Job {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(a.t.Context(), 30*time.Second)
	defer cancel()
	job, err := a.c.WaitFor(ctx, id, cond)
	if err != nil {
		a.t.Fatalf("job %s never %s: %v (state %s, reason %q)", id, what, err, job.State, job.Reason)
	}
	return job
}

func (a *testAgent) waitFinished(id string) agent.Job {
	a.t.Helper()
	return a.waitFor(id, "finished", func(j agent.Job) bool { return j.State.Finished() })
}

func (a *testAgent) waitRunning(id string) agent.Job {
	a.t.Helper()
	return a.waitFor(id, "ran", func(j agent.Job) bool { return j.State == agent.StateRunning })
}

// logs reads a job's whole log (without following).
func (a *testAgent) logs(id string) string {
	a.t.Helper()
	s, err := a.c.Logs(a.t.Context(), id, 0, false)
	if err != nil {
		a.t.Fatalf("logs %s: %v", id, err)
	}
	defer s.Close()
	data, err := io.ReadAll(s)
	if err != nil {
		a.t.Fatalf("read logs %s: %v", id, err)
	}
	return string(data)
}

// waitLog waits until the job's log contains want.
func (a *testAgent) waitLog(id, want string) {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.logs(id), want) {
		if time.Now().After(deadline) {
			a.t.Fatalf("log of %s never contained %q; it is:\n%s", id, want, a.logs(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exitCode(j agent.Job) int {
	if j.ExitCode == nil {
		return -1
	}
	return *j.ExitCode
}
