package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

	"github.com/dstackai/dstack-go/agent/imds/imdstest"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
	providerlocal "github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backendproc"
	"github.com/dstackai/dstack-go/state/httpstate/httpstatetest"
	"github.com/dstackai/dstack-go/state/local"
	"github.com/dstackai/dstack-go/state/pg"
	"github.com/dstackai/dstack-go/state/s3"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run `dstack` as a real process (the test
// binary re-executed), so exit codes and streams are what users see.
func TestMain(m *testing.M) {
	main := func() {
		os.Exit(Run(os.Args[1:], Streams{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Environ()))
	}
	testscript.Main(m, map[string]func(){
		"dstack": main,
		// The agent binary SSH fleets upload: run as `dstack-agent agent
		// ...`, it is `dstack agent ...`.
		"dstack-agent": main,
		// The s3 backend's own program, which dstack finds on PATH.
		"dstack-backend-s3": func() {
			backendproc.Main(func(cfg map[string]string) (state.Backend, error) { return s3.New(cfg) })
		},
		"dstack-backend-pg": func() {
			backendproc.Main(func(cfg map[string]string) (state.Backend, error) { return pg.New(cfg) })
		},
		// The gateway's own program, which dstack finds on PATH.
		"dstack-gateway": gatewayMain,
	})
}

// TestScripts runs testdata/script/*.txtar. UPDATE_SCRIPTS=1 rewrites the
// expected output in place; review the diff like code.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Setup: func(env *testscript.Env) error {
			// A script that fails half-way must not leave its agent and
			// jobs running.
			env.Defer(func() { killAgentAndJobs(filepath.Join(env.WorkDir, "agent")) })
			env.Values[imdsKey{}] = new([]*imdstest.Mock)
			gatewayEnv(env)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" { // switching a job's user needs root
				return os.Geteuid() == 0, nil
			}
			if cond == "ec2-metadata-mock" {
				return hasIMDSMock()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Dir:                 "testdata/script",
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") == "1",
		RequireExplicitExec: false,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkstate":    cmdMkstate,
			"holdlock":   cmdHoldlock,
			"httpserver": cmdHTTPServer,
			"exitcode":   cmdExitcode,
			"stopagent":  cmdStopAgent,
			"httpget":    cmdHTTPGet,
			"waitfor":    cmdWaitFor,
			"within":     cmdWithin,
			"jsonget":    cmdJSONGet,
			"imds":       cmdIMDS,
		},
	})
}

// TestDockerScripts runs testdata/docker/*.txtar against the Docker
// Engine (skipped without one, unless DSTACK_REQUIRE_DOCKER is set), with
// the busybox image the scripts name imported for the test.
func TestDockerScripts(t *testing.T) {
	image := dockertest.Image(t)
	if image != "dstack-test/busybox:latest" {
		t.Fatalf("the scripts name dstack-test/busybox:latest, the test image is %s", image)
	}
	// Runs without an image run in dstack's base image: a stand-in
	// under its real names, as no registry is reachable.
	dockertest.BaseImage(t, providerlocal.DefaultImage(false), providerlocal.DefaultImage(true))
	t.Cleanup(func() { dockertest.RemoveVolume(t, "dstack-data") })
	helper := dockertest.StaticDstack(t)
	t.Cleanup(func() { dockertest.RemoveVolume(t, "dstack-secret-data-0") })
	// A script that fails half-way must not leave containers behind.
	for _, run := range []string{"write", "read", "fail", "web", "two", "long", "whoami", "burn", "box", "idle", "dind", "cli", "secret", "repo", "repo-again", "repo-edit", "hostrun", "svc"} {
		dockertest.RemoveContainers(t, "ai.dstack.run-name="+run)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/docker",
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			env.Defer(func() { killAgentAndJobs(filepath.Join(env.WorkDir, "agent")) })
			// The test binary is linked dynamically: containers get a
			// static dstack for their SSH server and for dstack: true.
			env.Setenv("DSTACK_CONTAINER_HELPER", helper)
			gatewayEnv(env)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"stopagent": cmdStopAgent,
			"httpget":   cmdHTTPGet,
			"exitcode":  cmdExitcode,
			"within":    cmdWithin,
			"jsonget":   cmdJSONGet,
			"waitfor":   cmdWaitFor,
		},
	})
}

// cmdMkstate writes a state file: mkstate FILE SERIAL ADDR... Each
// resource gets one instance with a secret, to check that nothing shows it.
func cmdMkstate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mkstate FILE SERIAL [ADDR...]")
	}
	serial, err := strconv.Atoi(args[1])
	ts.Check(err)
	st := state.New("test")
	if lineage := ts.Getenv("LINEAGE"); lineage != "" {
		st.Lineage = lineage
	}
	st.Serial = uint64(serial)
	for _, a := range args[2:] {
		st.Put(&state.Resource{Address: a, Instances: []*state.Instance{{ProviderID: "id-" + a, Secrets: map[string]string{"agent_token": "tok-SECRET-" + a}}}})
	}
	data, err := state.Encode(st)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), data, 0o600))
	ts.Setenv("LINEAGE", st.Lineage)
}

// cmdHoldlock takes the default workspace's lock in .dstack and leaves
// it held, as a crashed run would; LOCKID is set to its ID.
func cmdHoldlock(ts *testscript.TestScript, neg bool, args []string) {
	b, err := local.New(map[string]string{"path": ts.MkAbs(".dstack")})
	ts.Check(err)
	l, err := b.Lock(context.Background(), state.DefaultWorkspace, state.LockInfo{Operation: "apply", Who: "ci-job-42"}, time.Hour)
	ts.Check(err)
	ts.Setenv("LOCKID", l.ID)
}

// cmdHTTPServer starts an HTTP state server (the protocol's reference
// server) for the rest of the script; $HTTPSTATE is its base URL.
func cmdHTTPServer(ts *testscript.TestScript, neg bool, args []string) {
	dir := ts.MkAbs("http-states")
	ts.Check(os.MkdirAll(dir, 0o700))
	srv := httptest.NewServer(httpstatetest.NewServer(dir))
	ts.Defer(srv.Close)
	ts.Setenv("HTTPSTATE", srv.URL)
}

// cmdExitcode runs a program and checks its exit status: exitcode N
// PROGRAM ARGS... (testscript's exec only tells zero from non-zero).
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Dir = ts.MkAbs(".")
	for _, k := range []string{"PATH", "HOME", "DSTACK_SIM_DIR", "DSTACK_AGENT_DIR", "DSTACK_WORKSPACE", "NO_COLOR", "TMPDIR"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	cmd.Stdout, cmd.Stderr = ts.Stdout(), ts.Stderr()
	if in := ts.Getenv("EXITCODE_STDIN"); in != "" {
		f, err := os.Open(ts.MkAbs(in))
		ts.Check(err)
		defer f.Close()
		cmd.Stdin = f
	}
	_ = cmd.Run()
	if got := cmd.ProcessState.ExitCode(); got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// cmdStopAgent stops the agent of $DSTACK_AGENT_DIR, as a restart or a
// crash of the machine's agent would, and waits until it is gone.
func cmdStopAgent(ts *testscript.TestScript, neg bool, args []string) {
	data, err := os.ReadFile(filepath.Join(ts.Getenv("DSTACK_AGENT_DIR"), "agent.pid"))
	if err != nil {
		return // no agent running
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	ts.Check(err)
	ts.Check(syscall.Kill(pid, syscall.SIGTERM))
	for i := 0; i < 200; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	ts.Fatalf("the agent (pid %d) did not stop", pid)
}

// cmdHTTPGet fetches URL until its body holds WANT (for up to 10 s):
// httpget URL WANT. Negated, `! httpget URL` waits until nothing
// answers at URL any more.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		if len(args) != 1 {
			ts.Fatalf("usage: ! httpget URL")
		}
		for i := 0; i < 100; i++ {
			resp, err := http.Get(args[0])
			if err != nil {
				return
			}
			resp.Body.Close()
			time.Sleep(100 * time.Millisecond)
		}
		ts.Fatalf("GET %s still answers", args[0])
	}
	if len(args) != 2 {
		ts.Fatalf("usage: httpget URL WANT")
	}
	var last string
	for i := 0; i < 100; i++ {
		resp, err := http.Get(args[0])
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), args[1]) {
				return
			}
			last = fmt.Sprintf("%s: %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("GET %s never answered %q; last: %s", args[0], args[1], last)
}

// killAgentAndJobs kills the agent of dir and every host job it started.
func killAgentAndJobs(dir string) {
	if data, err := os.ReadFile(filepath.Join(dir, "agent.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "host", "jobs", "*", "process.json"))
	for _, f := range files {
		var p struct {
			PID int `json:"pid"`
		}
		if data, err := os.ReadFile(f); err == nil && json.Unmarshal(data, &p) == nil && p.PID > 0 {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
}

// cmdWaitFor runs a command every 100 ms until its output matches a
// regular expression: waitfor TIMEOUT PROGRAM ARGS... -- REGEXP.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	sep := slices.Index(args, "--")
	if len(args) < 4 || sep < 2 || sep != len(args)-2 {
		ts.Fatalf("usage: waitfor TIMEOUT PROGRAM [ARGS...] -- REGEXP")
	}
	limit, err := time.ParseDuration(args[0])
	ts.Check(err)
	re, err := regexp.Compile(args[len(args)-1])
	ts.Check(err)
	var out []byte
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cmd := exec.Command(args[1], args[2:sep]...)
		cmd.Dir = ts.MkAbs(".")
		for _, k := range []string{"PATH", "HOME", "DSTACK_SIM_DIR", "DSTACK_AGENT_DIR", "DSTACK_WORKSPACE", "NO_COLOR", "TMPDIR"} {
			cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
		}
		out, _ = cmd.CombinedOutput()
		if re.Match(out) {
			return
		}
	}
	ts.Fatalf("%s never printed %s; last:\n%s", strings.Join(args[1:sep], " "), re, out)
}

// cmdWithin runs a program like exec (its output is what stdout and
// stderr check next) and fails unless it succeeds within a time limit:
// within LIMIT PROGRAM ARGS...
func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: within LIMIT PROGRAM [ARGS...]")
	}
	limit, err := time.ParseDuration(args[0])
	ts.Check(err)
	start := time.Now()
	err = ts.Exec(args[1], args[2:]...)
	took := time.Since(start)
	ts.Logf("%s took %v", strings.Join(args[1:], " "), took.Round(time.Millisecond))
	if err != nil {
		ts.Fatalf("%s: %v", strings.Join(args[1:], " "), err)
	}
	if took > limit {
		ts.Fatalf("%s took %v, more than %v", strings.Join(args[1:], " "), took.Round(time.Millisecond), limit)
	}
}
