package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
)

// crashConfigs are the configurations the crash test moves between, so
// kills land in creates, deletes, scaling and replacements alike.
var crashConfigs = []string{
	`type: fleet
name: gpus
nodes: 3
resources:
  gpu: A100:8
---
type: service
name: llm
image: vllm:1
port: 8000
replicas: 4
commands: [serve]
resources:
  gpu: A100:2
---
type: task
name: train
commands: [train]
resources:
  gpu: A100:4
` + volumes(0, 12),
	`type: fleet
name: gpus
nodes: 1
resources:
  gpu: A100:8
---
type: service
name: llm
image: vllm:2
port: 8000
replicas: 2
commands: [serve]
resources:
  gpu: A100:2
` + volumes(6, 18),
	`type: fleet
name: h100
nodes: 2
resources:
  gpu: H100:8
---
type: task
name: train
commands: [train --again]
resources:
  gpu: H100:8
` + volumes(10, 14),
}

func volumes(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "---\ntype: volume\nname: v%d\nbackend: aws\nregion: us-east-1\nsize: 100GB\n", i)
	}
	return b.String()
}

// TestCrashAnywhere kills `dstack apply` with SIGKILL at random points
// (and lets the simulated cloud crash it right after a create now and
// then); every time, the next apply converges, the plan after it is
// empty, and the cloud holds exactly what the state records. `make
// crash-test` runs it 100 times (DSTACK_CRASH_RUNS).
func TestCrashAnywhere(t *testing.T) {
	runs := 20
	if v := os.Getenv("DSTACK_CRASH_RUNS"); v != "" {
		runs, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		runs = 5
	}
	bin := filepath.Join(t.TempDir(), "dstack")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dstackai/dstack-go/cmd/dstack").CombinedOutput(); err != nil {
		t.Fatalf("building dstack: %v\n%s", err, out)
	}
	dir := t.TempDir()
	simDir := filepath.Join(dir, "sim")
	if err := sim.WriteConfig(simDir, sim.Config{Latency: sim.Duration(2 * time.Millisecond), Seed: 7,
		Failures: []sim.Failure{{Op: sim.OpCreate, Code: sim.CodeCrash, Probability: 0.03}}}); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DSTACK_SIM_DIR="+simDir, "NO_COLOR=1")
	run := func(args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		return cmd, cmd.Start()
	}
	r := rand.New(rand.NewPCG(42, uint64(runs)))
	kills, cur := 0, 0
	for i := range runs {
		// Always a different configuration, so there is work to kill.
		cur = (cur + 1 + r.IntN(len(crashConfigs)-1)) % len(crashConfigs)
		cfg := crashConfigs[cur]
		if err := os.WriteFile(filepath.Join(dir, "main.dstack.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd, err := run("apply", "-y", "-parallelism", "4")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			kills++
		}
		converged := false
		var last string
		for attempt := 0; attempt < 6 && !converged; attempt++ {
			cmd, err := run("apply", "-y", "-parallelism", "4")
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			_ = cmd.Wait()
			last = out.String()
			converged = cmd.ProcessState.ExitCode() == 0
		}
		if !converged {
			t.Fatalf("run %d: apply did not converge after the kill:\n%s", i, last)
		}
		cmd = exec.Command(bin, "plan", "-detailed-exitcode")
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("run %d: the plan after apply is not empty (%v):\n%s", i, err, out)
		}
		checkCloudMatchesState(t, i, dir, simDir)
	}
	t.Logf("%d runs, %d killed mid-apply", runs, kills)
	if kills < runs/2 {
		t.Errorf("only %d of %d applies were killed before they finished; the test is not testing much", kills, runs)
	}
}

func checkCloudMatchesState(t *testing.T, run int, dir, simDir string) {
	t.Helper()
	b, err := local.New(map[string]string{"path": filepath.Join(dir, ".dstack")})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	if msg := cloudMatchesState(t, snap.State, simDir); msg != "" {
		t.Fatalf("run %d: %s", run, msg)
	}
}
