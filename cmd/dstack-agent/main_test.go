package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestMain lets the tests run this test binary as the agent itself.
func TestMain(m *testing.M) {
	if os.Getenv("DSTACK_AGENT_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// agentProc is the agent running as a process of its own.
type agentProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgentProc starts the agent and waits for it to write agent.addr.
func startAgentProc(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(append(os.Environ(), "DSTACK_AGENT_TEST_MAIN=1"), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
		}
	})
	var dataDir string
	for i, a := range args {
		if a == "-data-dir" {
			dataDir = args[i+1]
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(dataDir, "agent.addr"))
		if err == nil && strings.HasSuffix(string(data), "\n") {
			p.addr = strings.TrimSpace(string(data))
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("agent exited: %v\n%s", err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent wrote no address\n%s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks that the agent exits cleanly.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("agent exited with %v\n%s", err, p.stderr)
		}
		p.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatalf("agent did not exit on SIGTERM\n%s", p.stderr)
	}
}

func TestAgentRestartKeepsJobs(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600)
	args := []string{"-listen", "127.0.0.1:0", "-data-dir", dir, "-token-file", tokenFile}
	first := startAgentProc(t, nil, args...)
	c, err := client.New("http://"+first.addr, "t0ken", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health: %+v, %v\n%s", h, err, first.stderr)
	}
	_, _, err = c.Submit(ctx, agent.JobSpec{ID: "survivor", Commands: []string{
		"i=1; while [ $i -le 40 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done", "exit 7"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, c, "survivor", "tick 2\n")

	// A second agent on the same data dir is refused.
	second := exec.Command(os.Args[0], args...)
	second.Env = append(os.Environ(), "DSTACK_AGENT_TEST_MAIN=1")
	if out, err := second.CombinedOutput(); err == nil || !strings.Contains(string(out), "another agent") {
		t.Errorf("second agent on the data dir: %v\n%s", err, out)
	}

	first.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "agent.addr")); !os.IsNotExist(err) {
		t.Errorf("agent.addr outlived the agent: %v", err)
	}
	logPath := filepath.Join(dir, "jobs", "survivor", "output.log")
	before := size(t, logPath)
	time.Sleep(300 * time.Millisecond)
	if size(t, logPath) <= before {
		t.Fatal("the job stopped writing when the agent stopped")
	}

	third := startAgentProc(t, nil, args...)
	c, _ = client.New("http://"+third.addr, "t0ken", nil)
	job, err := c.Get(ctx, "survivor")
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateRunning {
		t.Fatalf("after restart: %s (%s)\n%s", job.State, job.Reason, third.stderr)
	}
	s, err := c.Logs(ctx, "survivor", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 40 || lines[0] != "tick 1" || lines[39] != "tick 40" {
		t.Errorf("log has %d lines, %q ... %q", len(lines), lines[0], lines[len(lines)-1])
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	job, err = c.WaitFor(wctx, "survivor", func(j agent.Job) bool { return j.State.Finished() })
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateFailed || job.ExitCode == nil || *job.ExitCode != 7 {
		t.Errorf("job ended %s (%s), want failed with exit code 7", job.State, job.Reason)
	}
	bad, _ := client.New("http://"+third.addr, "wrong", nil)
	if _, err := bad.Inventory(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	inv, err := c.Inventory(ctx)
	if err != nil || inv.CPUs < 1 || len(inv.Runtimes) == 0 {
		t.Errorf("inventory: %+v, %v", inv, err)
	}
}

func TestTokenSources(t *testing.T) {
	// No token given: one is made and kept in <data-dir>/token.
	dir := t.TempDir()
	p := startAgentProc(t, []string{"DSTACK_AGENT_TOKEN="}, "-listen", "127.0.0.1:0", "-data-dir", dir)
	data, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
	c, _ := client.New("http://"+p.addr, strings.TrimSpace(string(data)), nil)
	if _, err := c.Health(t.Context()); err != nil {
		t.Errorf("generated token: %v", err)
	}
	p.stop(t)

	// DSTACK_AGENT_TOKEN wins over the file.
	p = startAgentProc(t, []string{"DSTACK_AGENT_TOKEN=from-env"}, "-listen", "127.0.0.1:0", "-data-dir", dir)
	c, _ = client.New("http://"+p.addr, "from-env", nil)
	if _, err := c.Health(t.Context()); err != nil {
		t.Errorf("token from the environment: %v", err)
	}
}

func waitLog(t *testing.T, c *client.Client, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s, err := c.Logs(t.Context(), id, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(s)
		s.Close()
		if strings.Contains(string(data), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log of %s never contained %q", id, want)
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
