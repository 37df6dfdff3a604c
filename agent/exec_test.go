package agent_test

import (
	"bytes"
	"context"
	"os"
	"slices"
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

// agentSecret is set in the test process's environment, which is the
// agent's: no job and no command run in one may see it.
const agentSecret = "AWS_SECRET_ACCESS_KEY=agent-only-wJalrXUtnFEMI"

// execOutput runs command in a running job and returns what it printed,
// failing t unless it exits 0.
func execOutput(t *testing.T, c *client.Client, id string, command ...string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := c.Exec(t.Context(), id, agent.ExecRequest{Command: command}, strings.NewReader(""), &out)
	if err != nil || code != 0 {
		t.Fatalf("exec %q in %s: exit %d, %v; output %q", command, id, code, err, out.String())
	}
	return out.String()
}

// envNames is the set of variable names in `env` output.
func envNames(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		if name, _, ok := strings.Cut(line, "="); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestExecAsJobUser: a command run in a host job (attach -- CMD) runs as
// the job's user, in its working directory, with the job's environment
// and nothing of the agent's; so does the job itself.
func TestExecAsJobUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a job as another user needs root")
	}
	name, value, _ := strings.Cut(agentSecret, "=")
	t.Setenv(name, value)
	t.Setenv("LANG", "C.UTF-8") // the agent's locale is not the job's either
	a := startAgent(t, t.TempDir())
	wd, err := os.MkdirTemp("", "execuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(wd) })
	if err := os.Chmod(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	a.submit(agent.JobSpec{ID: "as-nobody", User: "nobody", WorkingDir: wd,
		Env:      map[string]string{"JOB_VAR": "from-job"},
		Commands: []string{"env", "echo ---", "sleep 30"}})
	a.waitRunning("as-nobody")
	a.waitLog("as-nobody", "---\n")

	if got := strings.TrimSpace(execOutput(t, a.c, "as-nobody", "id", "-un")); got != "nobody" {
		t.Errorf("exec id -un = %q, want nobody", got)
	}
	if got := strings.TrimSpace(execOutput(t, a.c, "as-nobody", "pwd")); got != wd {
		t.Errorf("exec pwd = %q, want %s", got, wd)
	}
	env := execOutput(t, a.c, "as-nobody", "env")
	want := []string{"HOME", "JOB_VAR", "LOGNAME", "PATH", "USER"}
	if got := envNames(env); !slices.Equal(got, want) {
		t.Errorf("exec env has %q, want exactly %q; it is:\n%s", got, want, env)
	}
	for _, line := range []string{"JOB_VAR=from-job", "USER=nobody", "HOME=/nonexistent"} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("exec env lacks %s; it is:\n%s", line, env)
		}
	}
	jobEnv, _, _ := strings.Cut(a.logs("as-nobody"), "---\n")
	if strings.Contains(env+jobEnv, value) || strings.Contains(jobEnv, "LANG=") {
		t.Errorf("the agent's environment leaked; exec env:\n%s\njob env:\n%s", env, jobEnv)
	}
	if !strings.Contains(jobEnv, "USER=nobody\n") || !strings.Contains(jobEnv, "JOB_VAR=from-job\n") {
		t.Errorf("job env:\n%s", jobEnv)
	}
}
