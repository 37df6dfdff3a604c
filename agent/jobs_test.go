package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/inventory"
)

func TestExitCodesAndLogs(t *testing.T) {
	a := startAgent(t, t.TempDir())
	tests := []struct {
		name       string
		commands   []string
		shell      string
		wantState  agent.JobState
		wantCode   int
		wantReason string
		wantLog    string
	}{
		{"success", []string{"echo hello", "echo world >&2"}, "", agent.StateDone, 0, "exit code 0", "hello\nworld\n"},
		{"exit-3", []string{"echo before", "exit 3", "echo after"}, "", agent.StateFailed, 3, "exit code 3", "before\n"},
		{"set-e", []string{"echo one", "false", "echo never"}, "", agent.StateFailed, 1, "exit code 1", "one\n"},
		{"comment-and-bash", []string{"echo $((2+3)) # a comment", "[[ -n x ]] && echo bash"}, "bash", agent.StateDone, 0, "exit code 0", "5\nbash\n"},
		{"killed", []string{"echo bye", "kill -9 $$"}, "", agent.StateFailed, 137, "killed by signal 9", "bye\n"},
		{"not-found", []string{"/no/such/program"}, "", agent.StateFailed, 127, "exit code 127", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.submit(agent.JobSpec{ID: tt.name, RunName: "codes", Commands: tt.commands, Shell: tt.shell})
			job := a.waitFinished(tt.name)
			if job.State != tt.wantState || exitCode(job) != tt.wantCode || job.Reason != tt.wantReason {
				t.Errorf("job ended %s, code %d, reason %q; want %s, %d, %q",
					job.State, exitCode(job), job.Reason, tt.wantState, tt.wantCode, tt.wantReason)
			}
			if job.StartedAt.IsZero() || job.FinishedAt.Before(job.StartedAt) || job.Runtime != "host" {
				t.Errorf("job times/runtime: started %v finished %v runtime %q", job.StartedAt, job.FinishedAt, job.Runtime)
			}
			got := a.logs(tt.name)
			if tt.name == "not-found" {
				if !strings.Contains(got, "not found") {
					t.Errorf("log = %q, want the shell's 'not found'", got)
				}
				return
			}
			if got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
		})
	}
	jobs, err := a.c.List(t.Context(), "codes")
	if err != nil || len(jobs) != len(tests) {
		t.Errorf("List(codes) = %d jobs, %v; want %d", len(jobs), err, len(tests))
	}
}

func TestEnvAndWorkingDir(t *testing.T) {
	t.Setenv("AGENT_ONLY_SECRET", "must-not-leak")
	a := startAgent(t, t.TempDir())
	abs := filepath.Join(t.TempDir(), "abs-work")
	tests := []struct {
		name    string
		spec    agent.JobSpec
		wantDir string // "" means inside the agent's data dir
	}{
		{"relative", agent.JobSpec{WorkingDir: "sub/dir"}, ""},
		{"absolute", agent.JobSpec{WorkingDir: abs}, abs},
		{"default", agent.JobSpec{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.ID = "env-" + tt.name
			spec.Env = map[string]string{"DSTACK_NODE_RANK": "1", "DSTACK_NODES_NUM": "2", "GREETING": "hi there", "PATH": "/custom/bin:/usr/bin:/bin"}
			spec.GPUs = []string{"GPU-aaaa", "GPU-bbbb"}
			spec.Commands = []string{`echo "rank=$DSTACK_NODE_RANK/$DSTACK_NODES_NUM greet=$GREETING"`,
				`echo "cuda=$CUDA_VISIBLE_DEVICES path=$PATH secret=${AGENT_ONLY_SECRET:-none}"`, "pwd", "touch made-here"}
			a.submit(spec)
			job := a.waitFinished(spec.ID)
			if job.State != agent.StateDone {
				t.Fatalf("job %s: %s", job.State, job.Reason)
			}
			lines := strings.Split(strings.TrimSpace(a.logs(spec.ID)), "\n")
			want := []string{"rank=1/2 greet=hi there", "cuda=GPU-aaaa,GPU-bbbb path=/custom/bin:/usr/bin:/bin secret=none"}
			if diff := cmp.Diff(want, lines[:2]); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			wd := lines[2]
			switch {
			case tt.wantDir != "" && wd != tt.wantDir:
				t.Errorf("pwd = %s, want %s", wd, tt.wantDir)
			case tt.wantDir == "" && !strings.HasPrefix(wd, a.dir):
				t.Errorf("pwd = %s, want a dir under %s", wd, a.dir)
			case tt.name == "relative" && !strings.HasSuffix(wd, "/sub/dir"):
				t.Errorf("pwd = %s, want it to end in sub/dir", wd)
			}
			if _, err := os.Stat(filepath.Join(wd, "made-here")); err != nil {
				t.Errorf("file made in the working dir: %v", err)
			}
		})
	}
}

func TestStopGrace(t *testing.T) {
	a := startAgent(t, t.TempDir())
	const grace = 2

	// A job that cleans up on SIGTERM ends within the grace period.
	a.submit(agent.JobSpec{ID: "trapper", Commands: []string{
		`trap 'echo cleaning up; exit 0' TERM`, "echo ready", "while :; do sleep 0.05; done"}})
	// A job that ignores SIGTERM is killed once the grace period is over.
	a.submit(agent.JobSpec{ID: "ignorer", StopGraceSeconds: grace, Commands: []string{
		`trap '' TERM`, "echo ready", "while :; do sleep 0.05; done"}})
	a.waitLog("trapper", "ready")
	a.waitLog("ignorer", "ready")

	start := time.Now()
	job, err := a.c.Stop(t.Context(), "trapper", agent.StopRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping a job that exits on TERM took %v", took)
	}
	if job.State != agent.StateStopped || exitCode(job) != 0 {
		t.Errorf("trapper: %s code %d (%s), want stopped with code 0", job.State, exitCode(job), job.Reason)
	}
	if !strings.Contains(a.logs("trapper"), "cleaning up") {
		t.Errorf("trapper's cleanup did not run; log:\n%s", a.logs("trapper"))
	}

	start = time.Now()
	job, err = a.c.Stop(t.Context(), "ignorer", agent.StopRequest{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < grace*time.Second || took > (grace+3)*time.Second {
		t.Errorf("stopping a job that ignores TERM took %v, want about the %ds grace period", took, grace)
	}
	if job.State != agent.StateStopped || exitCode(job) != 137 || !strings.Contains(job.Reason, "killed by signal 9") {
		t.Errorf("ignorer: %s code %d (%s), want stopped, 137, killed by signal 9", job.State, exitCode(job), job.Reason)
	}

	// Abort kills at once, whatever the grace period.
	a.submit(agent.JobSpec{ID: "aborted", StopGraceSeconds: 60, Commands: []string{`trap '' TERM`, "echo ready", "sleep 600"}})
	a.waitLog("aborted", "ready")
	start = time.Now()
	job, err = a.c.Stop(t.Context(), "aborted", agent.StopRequest{Abort: true})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second || job.State != agent.StateStopped {
		t.Errorf("abort took %v and left the job %s", took, job.State)
	}
	// Stopping an ended job is a no-op.
	if job, err = a.c.Stop(t.Context(), "aborted", agent.StopRequest{}); err != nil || job.State != agent.StateStopped {
		t.Errorf("second stop: %v, %s", err, job.State)
	}
}

func TestLogsFollowAndResume(t *testing.T) {
	a := startAgent(t, t.TempDir())
	const n = 60
	a.submit(agent.JobSpec{ID: "counter", Commands: []string{
		fmt.Sprintf("i=1; while [ $i -le %d ]; do echo line $i; i=$((i+1)); sleep 0.01; done", n)}})
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}

	// Follow from the start, break off after the first 10 lines.
	s, err := a.c.Logs(t.Context(), "counter", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\nline 10\n"))
	if _, err := io.ReadFull(s, first); err != nil {
		t.Fatal(err)
	}
	off := s.Offset()
	s.Close()
	if off != int64(len(first)) {
		t.Fatalf("offset after %d bytes = %d", len(first), off)
	}

	// Resume from the offset and follow to the job's end.
	s, err = a.c.Logs(t.Context(), "counter", off, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset() != off {
		t.Errorf("resumed stream starts at %d, want %d", s.Offset(), off)
	}
	rest, err := io.ReadAll(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(first) + string(rest); got != want.String() {
		t.Errorf("followed log =\n%s\nwant\n%s", got, want.String())
	}
	// The stream ended because the job did.
	job, err := a.c.Get(t.Context(), "counter")
	if err != nil || !job.State.Finished() {
		t.Errorf("follow ended with the job %s (%v)", job.State, err)
	}
	// An offset past the end gives nothing; a plain read gives all.
	s, err = a.c.Logs(t.Context(), "counter", 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := io.ReadAll(s); len(data) != 0 {
		t.Errorf("read past the end = %q", data)
	}
	s.Close()
	if got := a.logs("counter"); got != want.String() {
		t.Errorf("log = %q", got)
	}
}

func TestSubmitIsIdempotent(t *testing.T) {
	a := startAgent(t, t.TempDir())
	spec := agent.JobSpec{ID: "once", Commands: []string{"echo started", "sleep 0.5"}}
	first, created, err := a.c.Submit(t.Context(), spec)
	if err != nil || !created {
		t.Fatalf("first submit: created %v, %v", created, err)
	}
	spec.Commands = []string{"echo second"}
	again, created, err := a.c.Submit(t.Context(), spec)
	if err != nil || created {
		t.Fatalf("second submit: created %v, %v", created, err)
	}
	if !again.CreatedAt.Equal(first.CreatedAt) || again.Spec.Commands[0] != "echo started" {
		t.Errorf("second submit returned a different job: %+v", again)
	}
	a.waitFinished("once")
	if got := a.logs("once"); got != "started\n" {
		t.Errorf("log = %q, want the job to have run once", got)
	}
	jobs, _ := a.c.List(t.Context(), "")
	if len(jobs) != 1 {
		t.Errorf("%d jobs, want 1", len(jobs))
	}
}

func TestRegistryPasswordNeverStoredOrReturned(t *testing.T) {
	a := startAgent(t, t.TempDir())
	const password = "hunter2-registry-password"
	spec := agent.JobSpec{ID: "auth", Commands: []string{"true"}, RegistryAuth: &agent.RegistryAuth{Username: "bob", Password: password}}
	job := a.submit(spec)
	if job.Spec.RegistryAuth == nil || job.Spec.RegistryAuth.Username != "bob" || job.Spec.RegistryAuth.Password != "" {
		t.Errorf("returned registry auth = %+v", job.Spec.RegistryAuth)
	}
	a.waitFinished("auth")
	data, err := os.ReadFile(filepath.Join(a.dir, "jobs", "auth", "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), password) {
		t.Errorf("job.json holds the registry password:\n%s", data)
	}
	if got := fmt.Sprint(*spec.RegistryAuth); strings.Contains(got, password) {
		t.Errorf("formatted auth shows the password: %s", got)
	}
}

func TestRestartReattaches(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	a.submit(agent.JobSpec{ID: "long", Commands: []string{
		"i=1; while [ $i -le 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done", "exit 7"}})
	a.waitLog("long", "tick 3\n")
	a.close()

	// While no agent runs, the job goes on writing its log.
	pid := readPID(t, dir, "long")
	logPath := filepath.Join(dir, "jobs", "long", "output.log")
	sizeAtClose := fileSize(t, logPath)
	time.Sleep(500 * time.Millisecond)
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("the job died with the agent")
	}
	if fileSize(t, logPath) <= sizeAtClose {
		t.Error("the job's log did not grow while the agent was down")
	}

	b := startAgent(t, dir)
	job, err := b.c.Get(t.Context(), "long")
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateRunning {
		t.Fatalf("after restart the job is %s (%s), want running", job.State, job.Reason)
	}
	// Follow from where the old stream was, across the restart.
	s, err := b.c.Logs(t.Context(), "long", sizeAtClose, true)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(rest), "tick 30\n") {
		t.Errorf("log after restart ends %q, want tick 30", lastLine(string(rest)))
	}
	job = b.waitFinished("long")
	if job.State != agent.StateFailed || exitCode(job) != 7 || job.Reason != "exit code 7" {
		t.Errorf("job ended %s, code %d (%s); want failed with exit code 7", job.State, exitCode(job), job.Reason)
	}
	// The whole log is there, in order.
	lines := strings.Split(strings.TrimSpace(b.logs("long")), "\n")
	for i, l := range lines {
		if l != fmt.Sprintf("tick %d", i+1) {
			t.Fatalf("line %d = %q", i+1, l)
		}
	}
	if len(lines) != 30 {
		t.Errorf("%d lines, want 30", len(lines))
	}
}

func TestRestartLosesKilledJob(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	a.submit(agent.JobSpec{ID: "doomed", Commands: []string{"echo up", "sleep 600"}})
	a.waitLog("doomed", "up")
	a.close()
	// Kill the whole group, wrapper included: no exit code is recorded.
	pid := readPID(t, dir, "doomed")
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)

	b := startAgent(t, dir)
	job, err := b.c.Get(t.Context(), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if job.State != agent.StateFailed || job.Reason != "lost while the agent was down" {
		t.Errorf("job is %s (%q), want failed, lost while the agent was down", job.State, job.Reason)
	}
	// Deleting it cleans up the runtime's files too.
	if err := b.c.Delete(t.Context(), "doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "host", "jobs", "doomed")); !os.IsNotExist(err) {
		t.Errorf("host runtime's job dir is still there: %v", err)
	}
}

func TestSecondAgentOnDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	startAgent(t, dir)
	_, err := agent.NewManager(t.Context(), agent.Options{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second manager: %v, want 'another agent is using the data dir'", err)
	}
}

func TestDelete(t *testing.T) {
	a := startAgent(t, t.TempDir())
	a.submit(agent.JobSpec{ID: "victim", StopGraceSeconds: 1, Commands: []string{"echo up", "sleep 600"}})
	a.waitLog("victim", "up")
	pid := readPID(t, a.dir, "victim")
	if err := a.c.Delete(t.Context(), "victim"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if _, err := a.c.Get(t.Context(), "victim"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	for _, p := range []string{filepath.Join(a.dir, "jobs", "victim"), filepath.Join(a.dir, "host", "jobs", "victim")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s remains: %v", p, err)
		}
	}
	if err := a.c.Delete(t.Context(), "victim"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("second delete: %v, want not found", err)
	}
	// The ID is free again.
	a.submit(agent.JobSpec{ID: "victim", Commands: []string{"echo again"}})
	a.waitFinished("victim")
	if got := a.logs("victim"); got != "again\n" {
		t.Errorf("reused ID's log = %q", got)
	}
}

func TestMetrics(t *testing.T) {
	usage := func(context.Context) ([]inventory.GPUUsage, error) {
		return []inventory.GPUUsage{
			{Index: 0, UUID: "GPU-0000", UtilizationPercent: 97, MemoryUsedMB: 70000},
			{Index: 1, UUID: "GPU-1111", UtilizationPercent: 3, MemoryUsedMB: 10},
		}, nil
	}
	a := startAgent(t, t.TempDir(), withGPUUsage(usage))
	a.submit(agent.JobSpec{ID: "busy", GPUs: []string{"1"}, Commands: []string{"echo up", "while :; do :; done"}})
	a.waitLog("busy", "up")
	a.waitRunning("busy") // its output can come before the agent records it running
	m, err := a.c.Metrics(t.Context(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	if m.CPUPercent < 10 || m.CPUPercent > 150 { // shared CI machines: any clear share of a CPU
		t.Errorf("CPU = %.1f%%, want about 100%% for a busy loop", m.CPUPercent)
	}
	if m.MemoryMB < 0 || m.MemoryMB > 100 {
		t.Errorf("memory = %d MB", m.MemoryMB)
	}
	want := []agent.GPUMetrics{{UUID: "GPU-1111", UtilizationPercent: 3, MemoryUsedMB: 10}}
	if diff := cmp.Diff(want, m.GPUs); diff != "" {
		t.Errorf("GPU metrics (-want +got):\n%s", diff)
	}
	if _, err := a.c.Stop(t.Context(), "busy", agent.StopRequest{Abort: true}); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if _, err := a.c.Metrics(t.Context(), "busy"); !errors.As(err, &ce) || ce.StatusCode != 409 {
		t.Errorf("metrics of an ended job: %v, want 409", err)
	}
}

func TestLogSizeCap(t *testing.T) {
	const limit = 1 << 20
	a := startAgent(t, t.TempDir(), withLogLimit(limit))
	checkLogSizeCap(t, a, agent.JobSpec{ID: "chatty"}, limit)
}

// checkLogSizeCap runs spec with commands that print about 8.9 MB of
// numbered lines, then idle, on an agent with a log cap of limit bytes,
// and checks that the cap holds while the job runs, not only when it ends.
func checkLogSizeCap(t *testing.T, a *testAgent, spec agent.JobSpec, limit int64) {
	t.Helper()
	id := spec.ID
	spec.Commands = []string{"seq 1 1000000", "sleep 600"}
	a.submit(spec)
	logPath := filepath.Join(a.dir, "jobs", id, "output.log")
	job := a.waitFor(id, "wrote and trimmed its log", func(j agent.Job) bool {
		// Once seq is done and the log is within the cap, it stays so.
		return strings.HasSuffix(a.logs(id), "\n1000000\n") && j.LogDropped > 0 && fileSize(t, logPath)-j.LogDropped <= limit
	})
	if job.State != agent.StateRunning {
		t.Fatalf("job %s: %s", job.State, job.Reason)
	}
	s, err := a.c.Logs(t.Context(), id, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset()-int64(len(data)) != job.LogDropped {
		t.Errorf("stream started at %d, want the first kept byte %d", s.Offset()-int64(len(data)), job.LogDropped)
	}
	if int64(len(data)) > limit || int64(len(data)) < limit/2 {
		t.Errorf("kept %d bytes, want between half the cap and the cap (%d)", len(data), limit)
	}
	// What is kept is the newest part, whole lines, in order.
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	firstN, err := strconv.Atoi(lines[0])
	if err != nil {
		t.Fatalf("kept part starts mid-line: %q", lines[0])
	}
	for i, l := range lines {
		if l != strconv.Itoa(firstN+i) {
			t.Fatalf("kept line %d = %q, want %d", i, l, firstN+i)
		}
	}
	if lines[len(lines)-1] != "1000000" {
		t.Errorf("last line = %q", lines[len(lines)-1])
	}
	// The dropped part no longer takes disk space.
	var st syscall.Stat_t
	if err := syscall.Stat(logPath, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 2*limit {
		t.Errorf("the log takes %d bytes of disk for a %d-byte cap", used, limit)
	}
}

func TestStartFailures(t *testing.T) {
	a := startAgent(t, t.TempDir())
	var ce *client.Error
	// The host runtime cannot publish a port under another number.
	a.submit(agent.JobSpec{ID: "port", Commands: []string{"true"}, Ports: []agent.PortBinding{{Container: 8080, Host: 9090}}})
	job := a.waitFinished("port")
	if job.State != agent.StateFailed || !strings.Contains(job.Reason, "8080") {
		t.Errorf("port job: %s (%s), want failed about the port", job.State, job.Reason)
	}
	// An image needs the docker runtime, which this agent lacks.
	_, _, err := a.c.Submit(t.Context(), agent.JobSpec{ID: "img", Image: "busybox", Commands: []string{"true"}})
	if !errors.As(err, &ce) || ce.StatusCode != 422 || !strings.Contains(ce.Message, "docker") {
		t.Errorf("image job: %v, want 422 naming docker", err)
	}
	// Invalid specs are refused with every problem listed.
	_, _, err = a.c.Submit(t.Context(), agent.JobSpec{ID: "../etc", Shell: "zsh"})
	if !errors.As(err, &ce) || ce.StatusCode != 400 || !strings.Contains(ce.Message, "job id") || !strings.Contains(ce.Message, "shell") {
		t.Errorf("invalid spec: %v, want 400 naming the id and the shell", err)
	}
}

func TestVolumes(t *testing.T) {
	a := startAgent(t, t.TempDir())
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "input.txt"), []byte("from the host\n"), 0o644)
	vols := []agent.Mount{{Name: "cache", Path: "cache"}, {HostPath: hostDir, Path: "data"}}
	a.submit(agent.JobSpec{ID: "v1", Volumes: vols, Commands: []string{"cat data/input.txt", "echo persisted > cache/note"}})
	if job := a.waitFinished("v1"); job.State != agent.StateDone {
		t.Fatalf("v1: %s", job.Reason)
	}
	a.submit(agent.JobSpec{ID: "v2", Volumes: vols, Commands: []string{"cat cache/note"}})
	if job := a.waitFinished("v2"); job.State != agent.StateDone {
		t.Fatalf("v2: %s", job.Reason)
	}
	if got := a.logs("v1") + a.logs("v2"); got != "from the host\npersisted\n" {
		t.Errorf("logs = %q", got)
	}
}

func readPID(t *testing.T, dir, id string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "host", "jobs", id, "process.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ PID int }
	if err := json.Unmarshal(data, &st); err != nil || st.PID == 0 {
		t.Fatalf("process.json %s: %v", data, err)
	}
	return st.PID
}

// waitGone waits until pid has ended (a zombie counts as ended).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && len(data) > i+2 && (data[i+2] == 'Z' || data[i+2] == 'X') {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still runs", pid)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
