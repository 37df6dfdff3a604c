package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/yamlconf"
	"github.com/dstackai/dstack-go/providers"
)

// request builds a create request from a run's YAML, as the planner does.
func request(t *testing.T, src string) providers.CreateRequest {
	t.Helper()
	raws, diags := yamlconf.Parse("run.dstack.yml", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	r, diags := lang.DecodeResource(raws[0])
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return providers.CreateRequest{Kind: providers.KindJob, Token: "tok", Address: r.Address.String() + "[1]", Spec: spec,
		Env: map[string]string{"DSTACK_NODE_RANK": "1", "DSTACK_NODES_NUM": "2"}}
}

func TestJobSpec(t *testing.T) {
	t.Setenv("FROM_CALLER", "caller-value")
	req := request(t, `type: task
name: train
image: pytorch:2
commands: [python train.py]
env:
  - A=1
  - FROM_CALLER
working_dir: /work
user: "1000"
shell: bash
ports: ["18081:8080", 9000]
volumes: [data:/data, /mnt/cache:/cache]
max_duration: 2h
stop_duration: 30s
registry_auth: {username: bot, password: hunter2}
resources:
  shm_size: 16GB
`)
	got, err := JobSpec(req)
	if err != nil {
		t.Fatal(err)
	}
	want := agent.JobSpec{ID: "tok", RunName: "train", Image: "pytorch:2", Commands: []string{"python train.py"}, Shell: "bash",
		WorkingDir: "/work", User: "1000", ShmSizeMB: 16 * 1024, MaxDurationSeconds: 7200, StopGraceSeconds: 30,
		Ports:        []agent.PortBinding{{Container: 8080}, {Container: 9000}},
		Volumes:      []agent.Mount{{Name: "dstack-data", Path: "/data"}, {HostPath: "/mnt/cache", Path: "/cache"}},
		RegistryAuth: &agent.RegistryAuth{Username: "bot", Password: "hunter2"},
		Labels:       map[string]string{"dstack.address": "task.train[1]", "dstack.run": "train"},
		Env: map[string]string{"A": "1", "FROM_CALLER": "caller-value", "DSTACK_RUN_NAME": "train",
			"DSTACK_NODE_RANK": "1", "DSTACK_NODES_NUM": "2"}}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("job spec:\n got %s\nwant %s", gj, wj)
	}
}

func TestJobSpecMissingEnv(t *testing.T) {
	req := request(t, "type: task\nname: t\ncommands: [x]\nenv: [NOT_SET_ANYWHERE_42]\n")
	_, err := JobSpec(req)
	if err == nil || !strings.Contains(err.Error(), "NOT_SET_ANYWHERE_42") {
		t.Fatalf("error %v", err)
	}
}

func TestGPUName(t *testing.T) {
	for in, want := range map[string]string{
		"NVIDIA H100 80GB HBM3":     "H100",
		"NVIDIA A100-SXM4-80GB":     "A100",
		"NVIDIA GeForce RTX 4090":   "RTX4090",
		"AMD Instinct MI300X":       "MI300X",
		"Some Accelerator Nobody K": "Some Accelerator Nobody K",
	} {
		if got := gpuName(in); got != want {
			t.Errorf("gpuName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOffer(t *testing.T) {
	inv := agent.Inventory{Hostname: "box", Arch: "amd64", CPUs: 64, MemoryMB: 512 * 1024, DiskMB: 2 << 20,
		GPUs: []agent.GPU{{Vendor: "nvidia", Name: "NVIDIA H100 80GB HBM3", MemoryMB: 81559}, {Vendor: "nvidia", Name: "NVIDIA H100 80GB HBM3", MemoryMB: 81559}}}
	o := Offer(inv)
	if o.Backend != "local" || o.PricePerHour != 0 || o.GPU == nil || o.GPU.Count != 2 || o.GPU.Name != "H100" || o.Arch != "x86" || o.CPUs != 64 {
		t.Fatalf("offer %+v %+v", o, o.GPU)
	}
}

// fakeAgent replays job states, as an agent pulling an image reports them.
type fakeAgent struct {
	Agent
	states []agent.Job
}

func (f *fakeAgent) Submit(ctx context.Context, spec agent.JobSpec) (agent.Job, bool, error) {
	return agent.Job{Spec: spec, State: agent.StatePending}, true, nil
}

func (f *fakeAgent) WaitFor(ctx context.Context, id string, done func(agent.Job) bool) (agent.Job, error) {
	for _, j := range f.states {
		j.Spec.ID = id
		if done(j) {
			return j, nil
		}
	}
	return agent.Job{}, errors.New("never started")
}

func TestCreateReportsPullProgress(t *testing.T) {
	fa := &fakeAgent{states: []agent.Job{
		{State: agent.StatePulling, Reason: "pulling vllm: 1/2 layers"},
		{State: agent.StatePulling, Reason: "pulling vllm: 1/2 layers"},
		{State: agent.StatePulling, Reason: "pulling vllm: 2/2 layers"},
		{State: agent.StateCreating},
		{State: agent.StateRunning, StartedAt: time.Now()},
	}}
	p := New(Options{Dir: t.TempDir(), Agent: func(context.Context) (Agent, error) { return fa, nil }})
	req := request(t, "type: task\nname: t\nimage: vllm\ncommands: [serve]\n")
	var got []string
	req.Progress = func(s string) { got = append(got, s) }
	o, err := p.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != providers.StatusRunning || strings.Join(got, "|") != "pulling vllm: 1/2 layers|pulling vllm: 2/2 layers" {
		t.Fatalf("object %+v, progress %q", o, got)
	}
	fa.states = []agent.Job{{State: agent.StateFailed, Reason: "image pull failed: manifest unknown"}}
	req.Token = "tok2"
	if _, err := p.Create(context.Background(), req); err == nil || !strings.Contains(err.Error(), "did not start: image pull failed: manifest unknown") {
		t.Fatalf("a failed pull: %v", err)
	}
}

// TestJobSpecGPUs: the GPUs the planner gave a job (DSTACK_GPUS_PER_NODE)
// become a count the agent fills with free GPUs of the host.
func TestJobSpecGPUs(t *testing.T) {
	req := request(t, "type: task\nname: train\ncommands: [python train.py]\nresources:\n  gpu: H100:2\n")
	req.Env["DSTACK_GPUS_PER_NODE"] = "2"
	got, err := JobSpec(req)
	if err != nil {
		t.Fatal(err)
	}
	if got.GPUCount != 2 || len(got.GPUs) != 0 {
		t.Errorf("GPUCount %d, GPUs %v; want 2 and none named", got.GPUCount, got.GPUs)
	}
	delete(req.Env, "DSTACK_GPUS_PER_NODE")
	if got, _ := JobSpec(req); got.GPUCount != 0 {
		t.Errorf("without GPUs from the planner: GPUCount %d", got.GPUCount)
	}
}

// noJobs is an agent that has no jobs.
type noJobs struct{ Agent }

func (noJobs) Get(context.Context, string) (agent.Job, error) { return agent.Job{}, agent.ErrNotFound }

// TestDeleteInstanceKeepsOtherFleets: every fleet on this machine
// registers it as an instance of its own; deleting one fleet's instance
// removes that record only, whatever configuration the others belong to.
func TestDeleteInstanceKeepsOtherFleets(t *testing.T) {
	ctx := context.Background()
	p := New(Options{Dir: t.TempDir(),
		Inventory: func(context.Context) (agent.Inventory, error) { return agent.Inventory{Hostname: "vm", CPUs: 2}, nil },
		Agent:     func(context.Context) (Agent, error) { return noJobs{}, nil }})
	made := map[string]providers.Object{}
	for _, tok := range []string{"tok-a", "tok-b"} {
		o, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindInstance, Token: tok, Address: "fleet.f[0]"})
		if err != nil {
			t.Fatal(err)
		}
		made[tok] = o
	}
	if made["tok-a"].ID == made["tok-b"].ID {
		t.Fatalf("two fleets' instances share the ID %q", made["tok-a"].ID)
	}
	if err := p.Delete(ctx, providers.KindInstance, made["tok-a"].ID); err != nil {
		t.Fatal(err)
	}
	got, err := p.Describe(ctx, []string{"tok-a", "tok-b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["tok-a"]; ok {
		t.Error("the deleted instance is still described")
	}
	if o, ok := got["tok-b"]; !ok || o.ID != made["tok-b"].ID || o.Status != providers.StatusRunning {
		t.Errorf("the other fleet's instance after the delete: %+v, %v; want it kept", o, ok)
	}
}

// TestDeleteSharedLegacyID: records that share an ID (instances made by
// older versions, all "local-HOSTNAME"; volumes of one name) do not say
// whose is meant, so a delete by that ID removes none of them; an ID one
// record has removes it.
func TestDeleteSharedLegacyID(t *testing.T) {
	ctx := context.Background()
	p := New(Options{Dir: t.TempDir(), Agent: func(context.Context) (Agent, error) { return noJobs{}, nil }})
	for _, tok := range []string{"old-a", "old-b", "old-c"} {
		id := "local-vm"
		if tok == "old-c" {
			id = "local-other"
		}
		if err := p.writeRecord(providers.Object{Kind: providers.KindInstance, Token: tok, ID: id, Status: providers.StatusRunning}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"local-vm", "local-other"} {
		if err := p.Delete(ctx, providers.KindInstance, id); err != nil {
			t.Fatal(err)
		}
	}
	got, err := p.Describe(ctx, []string{"old-a", "old-b", "old-c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["old-a"]; !ok {
		t.Error("old-a was removed by a delete of an ID it shares")
	}
	if _, ok := got["old-b"]; !ok {
		t.Error("old-b was removed by a delete of an ID it shares")
	}
	if _, ok := got["old-c"]; ok {
		t.Error("old-c, alone with its ID, was not removed")
	}
}

// TestJobObjectTermination: a job its agent stopped for a spot
// interruption notice is a failed object whose termination says so (the
// planner's retry policy reads it), with the time it ended.
func TestJobObjectTermination(t *testing.T) {
	if string(agent.TerminationInterruption) != providers.TerminationInterruption {
		t.Fatalf("agent %q and providers %q name the interruption differently", agent.TerminationInterruption, providers.TerminationInterruption)
	}
	code := 137
	ended := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	o := JobObject("task.train[0]", "", agent.Job{Spec: agent.JobSpec{ID: "j1"}, State: agent.StateFailed, ExitCode: &code,
		Termination: agent.TerminationInterruption, Reason: "interrupted (spot interruption notice: terminate at 2031-01-02T03:05:00Z): killed by signal 9",
		FinishedAt: ended})
	if o.Status != providers.StatusFailed || o.Attributes[providers.AttrTermination] != "interruption" ||
		o.Attributes[providers.AttrFinishedAt] != "2031-01-02T03:04:05Z" || !strings.HasPrefix(o.Reason, "interrupted (spot") {
		t.Fatalf("object %+v", o)
	}
	running := JobObject("task.train[0]", "", agent.Job{Spec: agent.JobSpec{ID: "j2"}, State: agent.StateRunning})
	if _, ok := running.Attributes[providers.AttrTermination]; ok {
		t.Fatalf("a running job has a termination: %+v", running)
	}
}

// TestClassifyInterrupted: an agent whose machine got an interruption
// notice refuses jobs with 503; for the planner that machine has no
// capacity, so it places the job on another offer.
func TestClassifyInterrupted(t *testing.T) {
	refused := &client.Error{Method: "POST", Path: "/jobs", StatusCode: http.StatusServiceUnavailable,
		Message: "job j1: the machine is being interrupted (spot interruption notice: terminate at 2031-01-02T03:05:00Z)"}
	if code := providers.CodeOf(classify(fmt.Errorf("submitting task.t[0] to the agent: %w", refused))); code != providers.NoCapacity {
		t.Fatalf("code %q, want %q", code, providers.NoCapacity)
	}
	closing := &client.Error{Method: "POST", Path: "/jobs", StatusCode: http.StatusServiceUnavailable, Message: "the agent is shutting down"}
	if code := providers.CodeOf(classify(closing)); code != "" {
		t.Fatalf("an agent shutting down: code %q, want none", code)
	}
}
