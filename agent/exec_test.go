package agent_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestExec runs commands inside a running host job through the API: input
// reaches them, their output and exit code come back, and they see the
// job's environment and working directory.
func TestExec(t *testing.T) {
	a := startAgent(t, t.TempDir())
	c, err := client.New(a.http.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := c.Submit(ctx, agent.JobSpec{ID: "ex", Commands: []string{"sleep 30"}, Env: map[string]string{"JOB_VAR": "from-job"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitFor(ctx, "ex", func(j agent.Job) bool { return j.State == agent.StateRunning }); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := c.Exec(ctx, "ex", agent.ExecRequest{Command: []string{"sh", "-c", `read line; echo "got $line $JOB_VAR"; pwd; exit 3`}},
		strings.NewReader("hello\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 || !strings.Contains(out.String(), "got hello from-job") || !strings.Contains(out.String(), "/jobs/ex/work") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	if _, err := c.Exec(ctx, "nope", agent.ExecRequest{Command: []string{"true"}}, strings.NewReader(""), &out); err == nil {
		t.Fatal("exec in a job that does not exist worked")
	}
	if _, err := c.Stop(ctx, "ex", agent.StopRequest{Abort: true}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx2, "ex", agent.ExecRequest{Command: []string{"true"}}, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("exec in a stopped job: %v", err)
	}
}
