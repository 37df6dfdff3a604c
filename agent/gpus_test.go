package agent_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/host"
)

func withGPUs(gpus ...agent.GPU) agentOption {
	return func(o *agent.Options, _ *host.Options) { o.GPUs = gpus }
}

// TestGPUCount: jobs that ask for a number of GPUs get distinct ones
// (seen in CUDA_VISIBLE_DEVICES on the host runtime), a job that asks for
// more than are free is refused (409), and a job's GPUs are free again
// once it ends.
func TestGPUCount(t *testing.T) {
	var gpus []agent.GPU
	for i, u := range []string{"GPU-a", "GPU-b", "GPU-c", "GPU-d"} {
		gpus = append(gpus, agent.GPU{Vendor: "nvidia", Name: "NVIDIA H100 80GB HBM3", UUID: u, Index: i})
	}
	a := startAgent(t, t.TempDir(), withGPUs(gpus...))
	long := func(id string, n int) agent.JobSpec {
		return agent.JobSpec{ID: id, GPUCount: n, Commands: []string{`echo "gpus=$CUDA_VISIBLE_DEVICES"`, "exec sleep 600"}}
	}
	one := a.submit(long("one", 3))
	a.waitLog("one", "gpus=GPU-a,GPU-b,GPU-c")
	if strings.Join(one.Spec.GPUs, ",") != "GPU-a,GPU-b,GPU-c" {
		t.Errorf("job one's spec lists %v", one.Spec.GPUs)
	}
	_, _, err := a.c.Submit(t.Context(), long("two", 2))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != http.StatusConflict || !strings.Contains(ce.Message, "1 of the host's 4 are free") {
		t.Fatalf("a job asking for 2 of 1 free GPUs: %v", err)
	}
	a.submit(long("three", 1))
	a.waitLog("three", "gpus=GPU-d")
	if _, err := a.c.Stop(t.Context(), "one", agent.StopRequest{Abort: true}); err != nil {
		t.Fatal(err)
	}
	a.waitFinished("one")
	a.submit(long("four", 2))
	a.waitLog("four", "gpus=GPU-a,GPU-b")
	for _, id := range []string{"three", "four"} {
		if _, err := a.c.Stop(t.Context(), id, agent.StopRequest{Abort: true}); err != nil {
			t.Fatal(err)
		}
	}
}
