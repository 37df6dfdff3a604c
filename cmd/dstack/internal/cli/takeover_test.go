package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backends"
)

// takeoverConfig is what the stalled apply is making: more creates than
// its parallelism, so that some wait while others are in flight.
const takeoverConfig = `type: fleet
name: gpus
nodes: 3
resources:
  gpu: A100:8
---
type: service
name: llm
image: vllm:1
port: 8000
replicas: 2
commands: [serve]
resources:
  gpu: A100:2
---
type: task
name: train
commands: [train]
resources:
  gpu: A100:4
---
type: volume
name: data
backend: aws
region: us-east-1
size: 100GB
---
type: volume
name: ckpt
backend: aws
region: us-east-1
size: 100GB
`

// takeoverBackend is a state backend the takeover test runs on: its
// settings (lock_ttl included) as dstack init records them.
type takeoverBackend struct {
	name     string
	settings func(t *testing.T) backendSettings
}

// TestLockTakeover stalls an apply (SIGSTOP) while its creates are in
// flight, lets another apply take the lock over (after the lease expires,
// or at once with force-unlock), then wakes the stalled one. The stalled
// apply must start nothing more and exit non-zero saying so; afterwards
// the next apply and plan work with no manual step, and the simulated
// cloud holds exactly what the state records: no orphans, no duplicates.
func TestLockTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls applies for seconds")
	}
	// dstack, and beside it the programs of the backends that run in
	// their own (see docs/design.md).
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "dstack")
	for _, prog := range []string{"dstack", "dstack-backend-s3", "dstack-backend-pg"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, prog), "github.com/dstackai/dstack-go/cmd/"+prog).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", prog, err, out)
		}
	}
	for _, b := range takeoverBackends() {
		for _, mode := range []string{"lease-expiry", "force-unlock"} {
			t.Run(b.name+"/"+mode, func(t *testing.T) { testTakeover(t, bin, b.settings(t), mode) })
		}
	}
}

const takeoverTTL = 3 * time.Second

func testTakeover(t *testing.T, bin string, settings backendSettings, mode string) {
	dir := t.TempDir()
	simDir := filepath.Join(dir, "sim")
	if err := sim.WriteConfig(simDir, sim.Config{Latency: sim.Duration(1500 * time.Millisecond), Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, dataDir), 0o700); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(settings)
	if err := os.WriteFile(filepath.Join(dir, dataDir, "backend.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.dstack.yml"), []byte(takeoverConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DSTACK_SIM_DIR="+simDir, "NO_COLOR=1")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}

	// A: the apply that stalls once its first creates are in flight.
	a := exec.Command(bin, "apply", "-y", "-parallelism", "3")
	a.Dir, a.Env = dir, env
	var aOut syncBuffer
	a.Stdout, a.Stderr = &aOut, &aOut
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	aDone := make(chan struct{})
	go func() { _ = a.Wait(); close(aDone) }()
	t.Cleanup(func() {
		_ = a.Process.Signal(syscall.SIGCONT)
		_ = a.Process.Kill()
		<-aDone
	})
	waitOutput(t, &aOut, "Creating...", 30*time.Second)
	time.Sleep(200 * time.Millisecond) // its calls are in flight
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()

	// B takes the lock over while A is stopped.
	bArgs := []string{"apply", "-y"}
	switch mode {
	case "lease-expiry":
		bArgs = append(bArgs, "-lock-timeout=60s")
	case "force-unlock":
		id := lockHolder(t, settings)
		if out, code := run("force-unlock", "-force", id); code != 0 {
			t.Fatalf("force-unlock %s: exit %d\n%s", id, code, out)
		}
	}
	bOut, bCode := run(bArgs...)
	if bCode != 0 {
		t.Fatalf("the apply that took the lock over failed (exit %d):\n%s\nthe stalled apply so far:\n%s", bCode, bOut, aOut.String())
	}
	// A must have been stopped for longer than its lease, whichever way
	// it lost the lock.
	time.Sleep(time.Until(stoppedAt.Add(takeoverTTL + 500*time.Millisecond)))
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("the stalled apply did not end after it woke:\n%s", aOut.String())
	}
	if code := a.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("the stalled apply exited 0 after losing its lock:\n%s", aOut.String())
	}
	if !strings.Contains(aOut.String(), "stopped starting work") {
		t.Fatalf("the stalled apply did not say it stopped starting work:\n%s", aOut.String())
	}

	// The next apply and plan need no manual step.
	if out, code := run("apply", "-y"); code != 0 {
		t.Fatalf("the apply after the takeover failed (exit %d):\n%s\nstalled apply:\n%s\ntakeover:\n%s", code, out, aOut.String(), bOut)
	}
	if out, code := run("plan", "-detailed-exitcode"); code != 0 {
		t.Fatalf("the plan after that is not empty (exit %d):\n%s", code, out)
	}
	pulled := filepath.Join(dir, "pulled.json")
	if out, code := run("state", "pull", "-out", pulled); code != 0 {
		t.Fatalf("state pull: %s", out)
	}
	raw, err := os.ReadFile(pulled)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Decode(raw, pulled)
	if err != nil {
		t.Fatal(err)
	}
	if msg := cloudMatchesState(t, st, simDir); msg != "" {
		t.Fatal(msg)
	}
	t.Logf("stalled apply:\n%s\ntakeover:\n%s", aOut.String(), bOut)
}

// cloudMatchesState says how the simulated cloud and the state disagree,
// "" when every live object is in the state and every instance the state
// records is live (a finished task's record aside), with no address and
// index twice.
func cloudMatchesState(t *testing.T, st *state.State, simDir string) string {
	t.Helper()
	c, err := sim.Open(simDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	live, err := c.Live()
	if err != nil {
		t.Fatal(err)
	}
	var inCloud, inState []string
	for _, o := range live {
		inCloud = append(inCloud, o.Token+" "+o.ID)
	}
	seen := map[string]bool{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			key := in.Token + " " + in.ProviderID
			finished := in.Status == providers.StatusDone || in.Status == providers.StatusFailed
			if finished && !slices.Contains(inCloud, key) {
				continue
			}
			at := fmt.Sprintf("%s[%d]", r.Address, in.Index)
			if seen[at] {
				return fmt.Sprintf("the state holds %s twice", at)
			}
			seen[at] = true
			inState = append(inState, key)
		}
	}
	slices.Sort(inCloud)
	slices.Sort(inState)
	if !slices.Equal(inCloud, inState) {
		return fmt.Sprintf("the cloud and the state disagree:\nstate: %v\ncloud: %v", inState, inCloud)
	}
	return ""
}

// lockHolder is the ID of the lock on the default workspace.
func lockHolder(t *testing.T, s backendSettings) string {
	t.Helper()
	b, err := backends.New(s.Type, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		defer c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := b.LockInfo(context.Background(), state.DefaultWorkspace)
		if err != nil {
			t.Fatal(err)
		}
		if l != nil {
			return l.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled apply holds no lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a buffer a process writes to while the test reads it.
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

func waitOutput(t *testing.T, b *syncBuffer, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", want, limit, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
