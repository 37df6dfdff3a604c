package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"golang.org/x/sys/unix"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// newRuntime connects to the test Engine and makes sure the test image is
// there, skipping (or failing, under DSTACK_REQUIRE_DOCKER) when it cannot.
func newRuntime(t testing.TB, opts ...docker.Option) (*docker.Runtime, string) {
	t.Helper()
	img := dockertest.Image(t)
	r, err := docker.New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, img
}

var badID = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// newJob is a spec for the test image with a job ID unique to this test
// run; the test's containers are removed when it ends.
func newJob(t testing.TB, img string, commands ...string) agent.JobSpec {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := badID.ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	id := "test-" + name + "-" + hex.EncodeToString(b[:])
	dockertest.RemoveContainers(t, docker.LabelJobID+"="+id)
	return agent.JobSpec{ID: id, RunName: "test", Image: img, Commands: commands}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run starts spec, waits for it and removes the container, returning the
// exit code, reason and log.
func run(t *testing.T, r *docker.Runtime, spec agent.JobSpec) (int, string, string) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	logPath := filepath.Join(t.TempDir(), "job.log")
	h, err := r.Start(ctx, spec, logPath, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	code, reason, err := h.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := h.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	return code, reason, readFile(t, logPath)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	if _, err := docker.New(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("New with no Engine: %v, want an unreachable error", err)
	}
}

func TestExitCodesAndLogs(t *testing.T) {
	r, img := newRuntime(t)
	if r.Name() != "docker" {
		t.Fatalf("Name() = %q", r.Name())
	}
	t.Run("exit 0", func(t *testing.T) {
		t.Parallel()
		code, reason, log := run(t, r, newJob(t, img, "echo hello", "echo to stderr >&2", "echo bye"))
		if code != 0 || reason != "exit code 0" {
			t.Errorf("exit %d %q, want 0", code, reason)
		}
		// The job writes its log itself: stdout and stderr interleave as
		// written.
		if log != "hello\nto stderr\nbye\n" {
			t.Errorf("log %q", log)
		}
	})
	t.Run("exit 3", func(t *testing.T) {
		t.Parallel()
		code, reason, log := run(t, r, newJob(t, img, "echo before", "exit 3", "echo never"))
		if code != 3 || reason != "exit code 3" {
			t.Errorf("exit %d %q, want 3", code, reason)
		}
		if log != "before\n" {
			t.Errorf("log %q", log)
		}
	})
	t.Run("set -e stops at a failing command", func(t *testing.T) {
		t.Parallel()
		code, _, log := run(t, r, newJob(t, img, "echo one", "false", "echo never"))
		if code != 1 || log != "one\n" {
			t.Errorf("exit %d, log %q; want 1 and one line", code, log)
		}
	})
	t.Run("entrypoint", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img, "a b", "c")
		spec.Entrypoint = []string{"/bin/echo", "args:"}
		code, _, log := run(t, r, spec)
		if code != 0 || log != "args: a b c\n" {
			t.Errorf("exit %d, log %q", code, log)
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img)
		spec.Entrypoint = []string{"/no/such/program"}
		h, err := r.Start(ctxFor(t, time.Minute), spec, filepath.Join(t.TempDir(), "log"), nil)
		if err == nil {
			h.Remove(context.Background())
			t.Fatal("Start succeeded")
		}
		if !strings.Contains(err.Error(), "/no/such/program") {
			t.Errorf("error %q does not name the program", err)
		}
	})
}

func TestEnvWorkingDirUser(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, `echo "FOO=$FOO"`, `echo "MULTI=$MULTI"`, "pwd", "id -u", "echo $DSTACK_NODE_RANK")
	spec.Env = map[string]string{"FOO": "bar baz", "MULTI": "a=b", "DSTACK_NODE_RANK": "1"}
	spec.WorkingDir = "/work/dir"
	spec.User = "nobody"
	code, _, log := run(t, r, spec)
	want := "FOO=bar baz\nMULTI=a=b\n/work/dir\n65534\n1\n"
	if code != 0 || log != want {
		t.Errorf("exit %d, log %q, want %q", code, log, want)
	}
}

func TestShmSizeAndMemlock(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "df -k /dev/shm | tail -n 1", "ulimit -l")
	spec.ShmSizeMB = 128
	code, _, log := run(t, r, spec)
	if code != 0 || !strings.Contains(log, " 131072 ") {
		t.Errorf("exit %d, log %q; want /dev/shm of 131072 KiB", code, log)
	}
	// The Engine can lift the limit only where it may (CAP_SYS_RESOURCE);
	// it runs on this machine, under the same limits as the test.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil && lim.Max == unix.RLIM_INFINITY {
		if !strings.HasSuffix(log, "\nunlimited\n") {
			t.Errorf("log %q; want memlock unlimited", log)
		}
	} else {
		t.Logf("memlock: the Engine may not lift the limit here (hard limit %d); the job saw %q", lim.Max, log)
	}
}

func TestNamedVolumeSurvivesRuns(t *testing.T) {
	r, img := newRuntime(t)
	var b [4]byte
	rand.Read(b[:])
	vol := "dstack-test-vol-" + hex.EncodeToString(b[:])
	dockertest.RemoveVolume(t, vol)

	first := newJob(t, img, "echo kept > /data/file", "cat /data/file")
	first.Volumes = []agent.Mount{{Name: vol, Path: "/data"}}
	if code, _, log := run(t, r, first); code != 0 || log != "kept\n" {
		t.Fatalf("first run: exit %d, log %q", code, log)
	}
	second := newJob(t, img, "cat /data/file")
	second.Volumes = []agent.Mount{{Name: vol, Path: "/data", ReadOnly: true}}
	if code, _, log := run(t, r, second); code != 0 || log != "kept\n" {
		t.Fatalf("second run: exit %d, log %q", code, log)
	}
	third := newJob(t, img, "echo x > /data/other")
	third.Volumes = []agent.Mount{{Name: vol, Path: "/data", ReadOnly: true}}
	if code, _, _ := run(t, r, third); code == 0 {
		t.Fatal("writing to a read-only volume succeeded")
	}
}

func TestHostPathMount(t *testing.T) {
	r, img := newRuntime(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := newJob(t, img, "cat /mnt/in", "echo from job > /mnt/out")
	spec.Volumes = []agent.Mount{{HostPath: dir, Path: "/mnt"}}
	if code, _, log := run(t, r, spec); code != 0 || log != "from host\n" {
		t.Fatalf("exit %d, log %q", code, log)
	}
	if got := readFile(t, filepath.Join(dir, "out")); got != "from job\n" {
		t.Fatalf("host file %q", got)
	}
}

func TestPortBinding(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "mkdir -p /www", "echo hello from httpd > /www/index.html", "exec httpd -f -p 8080 -h /www")
	spec.Ports = []agent.PortBinding{{Container: 8080}}
	ctx := ctxFor(t, 2*time.Minute)
	h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(context.Background())
	ports := h.Ports()
	if len(ports) != 1 || ports[0].Container != 8080 || ports[0].Host == 0 {
		t.Fatalf("Ports() = %+v, want 8080 on a chosen host port", ports)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Host)
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello from httpd\n" {
		t.Fatalf("body %q", body)
	}

	m, err := h.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	if m.CPUPercent < 0 || m.MemoryMB < 0 || m.MemoryMB > 1024 {
		t.Errorf("metrics of an idle httpd: %+v", m)
	}
	if err := h.Stop(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := h.Wait(ctx); err != nil || code != 137 || reason != "killed by signal 9" {
		t.Fatalf("Wait after a stop without grace: %d %q %v", code, reason, err)
	}
}

func TestFixedHostPort(t *testing.T) {
	r, img := newRuntime(t)
	// A free port: Docker picks one, the test takes it for the next job.
	probe := newJob(t, img, "exec sleep 60")
	probe.Ports = []agent.PortBinding{{Container: 80}}
	ctx := ctxFor(t, time.Minute)
	h, err := r.Start(ctx, probe, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	port := h.Ports()[0].Host
	h.Remove(ctx)

	spec := newJob(t, img, "exec sleep 60")
	spec.Ports = []agent.PortBinding{{Container: 80, Host: port}}
	h, err = r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(ctx)
	if got := h.Ports(); len(got) != 1 || got[0] != (agent.PortBinding{Container: 80, Host: port}) {
		t.Fatalf("Ports() = %+v, want 80 on %d", got, port)
	}
}

func TestStopGrace(t *testing.T) {
	r, img := newRuntime(t)
	t.Run("TERM handled", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img,
			`trap 'echo got TERM; sleep 1; echo cleaned up; exit 0' TERM`,
			"echo ready",
			"while true; do sleep 60 & wait $!; done")
		ctx := ctxFor(t, time.Minute)
		logPath := filepath.Join(t.TempDir(), "log")
		h, err := r.Start(ctx, spec, logPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Remove(context.Background())
		waitForLog(t, logPath, "ready\n")
		start := time.Now()
		if err := h.Stop(ctx, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		code, reason, err := h.Wait(ctx)
		if err != nil || code != 0 || reason != "exit code 0" {
			t.Fatalf("Wait: %d %q %v", code, reason, err)
		}
		if took < time.Second || took > 15*time.Second {
			t.Errorf("Stop took %v; want the trap's 1 s, not the 20 s grace", took)
		}
		if log := readFile(t, logPath); log != "ready\ngot TERM\ncleaned up\n" {
			t.Errorf("log %q", log)
		}
	})
	t.Run("TERM ignored", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img, `trap '' TERM`, "echo ready", "while true; do sleep 1; done")
		ctx := ctxFor(t, time.Minute)
		logPath := filepath.Join(t.TempDir(), "log")
		h, err := r.Start(ctx, spec, logPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Remove(context.Background())
		waitForLog(t, logPath, "ready\n")
		start := time.Now()
		if err := h.Stop(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		code, reason, err := h.Wait(ctx)
		if err != nil || code != 137 || reason != "killed by signal 9" {
			t.Fatalf("Wait: %d %q %v", code, reason, err)
		}
		if took < 2*time.Second || took > 10*time.Second {
			t.Errorf("Stop took %v; want the 2 s grace, then SIGKILL", took)
		}
		// Stopping again, and stopping a removed container, are no errors.
		if err := h.Stop(ctx, time.Second); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := h.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.Stop(ctx, time.Second); err != nil {
			t.Errorf("Stop after Remove: %v", err)
		}
		if err := h.Remove(ctx); err != nil {
			t.Errorf("second Remove: %v", err)
		}
	})
}

func waitForLog(t testing.TB, logPath, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s never had %q; it has %q", logPath, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logSources are the ways a job's output reaches its log: written by the
// container itself (direct, the default for jobs with commands), or
// followed from the Engine's log: its json-file log read directly (where
// the runtime can, as here: the tests run as root beside the Engine) or
// through the logs endpoint.
var logSources = []struct {
	name string
	opts []docker.Option
}{
	{"direct", nil},
	{"file", []docker.Option{docker.WithEngineLogs()}},
	{"endpoint", []docker.Option{docker.WithEngineLogs(), docker.WithEndpointLogs()}},
}

func logSourceOpts(name string) []docker.Option {
	for _, s := range logSources {
		if s.name == name {
			return s.opts
		}
	}
	panic("no log source " + name)
}

// inspectJob inspects the job's container.
func inspectJob(t testing.TB, jobID string) container.InspectResponse {
	t.Helper()
	c := dockertest.Client(t)
	ctx := ctxFor(t, time.Minute)
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobID+"="+jobID))})
	if err != nil || len(list) != 1 {
		t.Fatalf("containers of job %s: %d (%v), want 1", jobID, len(list), err)
	}
	insp, err := c.ContainerInspect(ctx, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return insp
}

// checkDirect checks whether the job's container wrote its log itself,
// and if so, that the Engine's own log of it is empty.
func checkDirect(t testing.TB, jobID string, want bool) {
	t.Helper()
	insp := inspectJob(t, jobID)
	if got := insp.Config.Labels[docker.LabelDirectLog] == "true"; got != want {
		t.Fatalf("job %s: direct log %v, want %v", jobID, got, want)
	}
	if !want {
		return
	}
	if st, err := os.Stat(insp.LogPath); err != nil || st.Size() != 0 {
		t.Errorf("the Engine logged %v bytes (%v) of a job that writes its log itself", st.Size(), err)
	}
}

// checkSource checks that output reached the log the way named: written
// by the container, or followed from the Engine (then the log's cursor
// says through which source).
func checkSource(t testing.TB, jobID, logPath, source string) {
	t.Helper()
	checkDirect(t, jobID, source == "direct")
	if source == "direct" {
		return
	}
	f := strings.Fields(readFile(t, logPath+docker.CursorSuffix))
	if len(f) != 5 || f[0] != "v2" {
		t.Fatalf("cursor %q", f)
	}
	if file := !strings.HasPrefix(f[4], "-"); file != (source == "file") {
		t.Errorf("cursor %q: output was not followed through the %s", f, source)
	}
}

// checkNumbered checks that log is the lines "<prefix>1" to "<prefix>n",
// each exactly once, in order.
func checkNumbered(t testing.TB, log, prefix string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	if len(lines) != n {
		t.Errorf("log has %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != prefix+strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q, want %q (around: %q)", i+1, l, prefix+strconv.Itoa(i+1), lines[max(0, i-3):min(len(lines), i+3)])
		}
	}
}

// TestReattach drops a handle (as an agent that shuts down does) while the
// job prints, and reattaches: the log goes on without a gap or a repeated
// line, and Wait gives the exit code.
func TestReattach(t *testing.T) {
	for _, src := range logSources {
		t.Run(src.name, func(t *testing.T) { testReattach(t, src.name, src.opts) })
	}
}

func testReattach(t *testing.T, source string, opts []docker.Option) {
	r, img := newRuntime(t, opts...)
	spec := newJob(t, img, "i=1", `while [ $i -le 60 ]; do echo "line $i"; if [ $((i % 7)) = 0 ]; then echo "line $i err" >&2; fi; i=$((i+1)); sleep 0.05; done`, "exit 7")
	ctx := ctxFor(t, 2*time.Minute)
	logPath := filepath.Join(t.TempDir(), "job.log")
	h, err := r.Start(ctx, spec, logPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logPath, "line 10\n")
	h.(*docker.Handle).Detach()
	before := readFile(t, logPath)
	time.Sleep(time.Second) // the job prints on while no agent watches

	// A new runtime, as a new agent process has; the spec without secrets.
	r2, err := docker.New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	h2, ok, err := r2.Reattach(ctx, spec.Redacted(), logPath)
	if err != nil || !ok {
		t.Fatalf("Reattach: %v %v", ok, err)
	}
	code, reason, err := h2.Wait(ctx)
	if err != nil || code != 7 || reason != "exit code 7" {
		t.Fatalf("Wait: %d %q %v", code, reason, err)
	}
	checkSource(t, spec.ID, logPath, source)
	log := readFile(t, logPath)
	if !strings.HasPrefix(log, before) {
		t.Fatalf("the log changed before the reattach point")
	}
	if source == "direct" {
		// Written by the job itself: stdout and stderr interleave as
		// written, too.
		var want strings.Builder
		for i := 1; i <= 60; i++ {
			fmt.Fprintf(&want, "line %d\n", i)
			if i%7 == 0 {
				fmt.Fprintf(&want, "line %d err\n", i)
			}
		}
		if log != want.String() {
			t.Fatalf("log after reattach:\n%s", log)
		}
	}
	// Each stream's lines exactly once and in order (the Engine keeps the
	// order within stdout and within stderr, not between them).
	var out, errs, wantOut, wantErr []string
	for _, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if strings.HasSuffix(l, " err") {
			errs = append(errs, l)
		} else {
			out = append(out, l)
		}
	}
	for i := 1; i <= 60; i++ {
		wantOut = append(wantOut, "line "+strconv.Itoa(i))
		if i%7 == 0 {
			wantErr = append(wantErr, "line "+strconv.Itoa(i)+" err")
		}
	}
	if !slices.Equal(out, wantOut) || !slices.Equal(errs, wantErr) {
		t.Fatalf("log after reattach:\n%s", log)
	}

	// Reattaching to the ended job works too, and writes nothing again.
	h3, ok, err := r2.Reattach(ctx, spec, logPath)
	if err != nil || !ok {
		t.Fatalf("Reattach to the ended job: %v %v", ok, err)
	}
	if code, _, err := h3.Wait(ctx); err != nil || code != 7 {
		t.Fatalf("Wait: %d %v", code, err)
	}
	if again := readFile(t, logPath); again != log {
		t.Fatalf("the log changed on the second reattach:\n%s", again)
	}
	if err := h3.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath + docker.CursorSuffix); !os.IsNotExist(err) {
		t.Errorf("the log's cursor outlived Remove: %v", err)
	}
	if _, ok, err := r2.Reattach(ctx, spec, logPath); ok || err != nil {
		t.Fatalf("Reattach to a removed job: ok=%v err=%v", ok, err)
	}
}

func TestReattachUnknown(t *testing.T) {
	r, img := newRuntime(t)
	if h, ok, err := r.Reattach(ctxFor(t, time.Minute), newJob(t, img), filepath.Join(t.TempDir(), "log")); ok || err != nil || h != nil {
		t.Fatalf("Reattach to a job never started: %v %v %v", h, ok, err)
	}
}

func TestStartTwice(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "exec sleep 60")
	ctx := ctxFor(t, time.Minute)
	h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(ctx)
	if _, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil); err == nil || !strings.Contains(err.Error(), "reattach") {
		t.Fatalf("second Start of a running job: %v", err)
	}
}

// The crash test runs its first half in a child process (this test binary)
// that the parent kills with SIGKILL while the job floods its output.
const crashChildEnv = "DSTACK_DOCKER_TEST_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	arg := os.Getenv(crashChildEnv)
	if arg == "" {
		t.Skip("the child half of TestReattachAfterAgentKill")
	}
	parts := strings.SplitN(arg, "|", 4)
	r, err := docker.New(context.Background(), logSourceOpts(parts[3])...)
	if err != nil {
		t.Fatal(err)
	}
	spec := agent.JobSpec{ID: parts[0], Image: parts[1], Commands: []string{`seq 1 200000 | while read i; do echo "n $i"; done`}}
	if _, err := r.Start(context.Background(), spec, parts[2], nil); err != nil {
		t.Fatal(err)
	}
	fmt.Println("started")
	time.Sleep(time.Hour) // until killed
}

func TestReattachAfterAgentKill(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, src := range logSources {
		t.Run(src.name, func(t *testing.T) { testReattachAfterAgentKill(t, src.name, src.opts) })
	}
}

func testReattachAfterAgentKill(t *testing.T, source string, opts []docker.Option) {
	r, img := newRuntime(t, opts...)
	spec := newJob(t, img)
	logPath := filepath.Join(t.TempDir(), "job.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+spec.ID+"|"+img+"|"+logPath+"|"+source)
	var childOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	defer func() {
		if t.Failed() {
			t.Logf("the child's output:\n%s", childOut.String())
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the "agent" in the middle of the flood.
	waitForLog(t, logPath, "n 20000\n")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	ctx := ctxFor(t, 3*time.Minute)
	h, ok, err := r.Reattach(ctx, spec, logPath)
	if err != nil || !ok {
		t.Fatalf("Reattach: %v %v", ok, err)
	}
	defer h.Remove(context.Background())
	if code, reason, err := h.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("Wait: %d %q %v", code, reason, err)
	}
	checkSource(t, spec.ID, logPath, source)
	checkNumbered(t, readFile(t, logPath), "n ", 200000)
}

func TestImagePullFailure(t *testing.T) {
	r, img := newRuntime(t)
	for _, ref := range []string{
		"127.0.0.1:1/dstack-test/missing:latest", // nothing listens there
		"dstack-test/does-not-exist:latest",      // the Hub: unreachable here, or no such image
	} {
		spec := newJob(t, img, "true")
		spec.Image = ref
		spec.RegistryAuth = &agent.RegistryAuth{Username: "u", Password: "p"}
		var states []agent.JobState
		h, err := r.Start(ctxFor(t, 2*time.Minute), spec, filepath.Join(t.TempDir(), "log"), func(s agent.JobState, msg string) {
			states = append(states, s)
		})
		if err == nil {
			h.Remove(context.Background())
			t.Fatalf("%s: Start succeeded", ref)
		}
		if !strings.HasPrefix(err.Error(), "image pull failed: ") || len(err.Error()) < len("image pull failed: x") {
			t.Errorf("%s: error %q, want image pull failed: <reason>", ref, err)
		}
		if !slices.Equal(states, []agent.JobState{agent.StatePulling}) {
			t.Errorf("%s: progress states %v, want pulling alone", ref, states)
		}
		t.Logf("%s: %v", ref, err)
	}
}

func TestProgressWithLocalImage(t *testing.T) {
	r, img := newRuntime(t)
	var states []agent.JobState
	spec := newJob(t, img, "true")
	ctx := ctxFor(t, time.Minute)
	h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), func(s agent.JobState, msg string) { states = append(states, s) })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(ctx)
	if len(states) == 0 || slices.ContainsFunc(states, func(s agent.JobState) bool { return s != agent.StateCreating }) {
		t.Errorf("progress states %v, want creating alone (the image is there)", states)
	}
}

func TestStartCanceled(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "true")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil); err != context.Canceled {
		t.Fatalf("Start with a canceled context: %v", err)
	}
	if _, ok, err := r.Reattach(context.Background(), spec, filepath.Join(t.TempDir(), "log")); ok || err != nil {
		t.Fatalf("a canceled Start left a container: %v %v", ok, err)
	}
}

func TestMetricsBusy(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "while :; do :; done")
	ctx := ctxFor(t, time.Minute)
	h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(ctx)
	m, err := h.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// About 100; less where other tests keep the machine's CPUs busy.
	if m.CPUPercent < 10 || m.CPUPercent > 150 {
		t.Errorf("a busy loop uses %.1f%% CPU, want about 100", m.CPUPercent)
	}
	time.Sleep(300 * time.Millisecond)
	if m, err = h.Metrics(ctx); err != nil || m.CPUPercent < 10 {
		t.Errorf("second sample: %+v %v", m, err)
	}
}

// TestPullWithRegistryAuth pulls from a registry that wants credentials:
// with them the image is pulled (progress reported as pulling) and runs;
// without them, or with wrong ones, the pull fails with the registry's
// reason.
func TestPullWithRegistryAuth(t *testing.T) {
	r, img := newRuntime(t)
	reg := dockertest.NewRegistry(t, "alice", "s3cret")

	t.Run("right credentials", func(t *testing.T) {
		spec := newJob(t, img, "echo pulled")
		spec.Image = reg.AddImage(t, "team/busybox", "v1")
		spec.RegistryAuth = &agent.RegistryAuth{Username: "alice", Password: "s3cret"}
		var msgs []string
		var states []agent.JobState
		ctx := ctxFor(t, 2*time.Minute)
		logPath := filepath.Join(t.TempDir(), "log")
		h, err := r.Start(ctx, spec, logPath, func(s agent.JobState, msg string) {
			states = append(states, s)
			msgs = append(msgs, msg)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Remove(context.Background())
		if code, _, err := h.Wait(ctx); err != nil || code != 0 || readFile(t, logPath) != "pulled\n" {
			t.Fatalf("Wait: %d %v; log %q", code, err, readFile(t, logPath))
		}
		if states[0] != agent.StatePulling || states[len(states)-1] != agent.StateCreating {
			t.Errorf("progress %v %q, want pulling then creating", states, msgs)
		}
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "1/1 layers") }) {
			t.Errorf("progress %q: no layer summary", msgs)
		}
		if reg.Authorized.Load() == 0 {
			t.Error("the registry saw no request with the credentials")
		}
	})
	for _, tc := range []struct {
		name string
		auth *agent.RegistryAuth
	}{
		{"no credentials", nil},
		{"wrong password", &agent.RegistryAuth{Username: "alice", Password: "wrong"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := newJob(t, img, "true")
			spec.Image = reg.AddImage(t, "team/private", strings.ReplaceAll(tc.name, " ", "-"))
			spec.RegistryAuth = tc.auth
			before := reg.Unauthorized.Load()
			h, err := r.Start(ctxFor(t, time.Minute), spec, filepath.Join(t.TempDir(), "log"), nil)
			if err == nil {
				h.Remove(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.HasPrefix(err.Error(), "image pull failed: ") {
				t.Errorf("error %q, want image pull failed: ...", err)
			}
			if reg.Unauthorized.Load() == before {
				t.Error("the registry refused nothing")
			}
			t.Logf("%v", err)
		})
	}
}
