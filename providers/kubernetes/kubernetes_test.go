package kubernetes

import (
	"context"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

func TestGPUModel(t *testing.T) {
	for in, want := range map[string]string{
		"NVIDIA-H100-80GB-HBM3": "H100",
		"NVIDIA-A100-SXM4-80GB": "A100",
		"Tesla-T4":              "T4",
		"NVIDIA-L4":             "L4",
		"AMD_Instinct_MI300X":   "MI300X",
		"Some-Future-Chip":      "Some-Future-Chip",
	} {
		if got := GPUModel(in); got != want {
			t.Errorf("GPUModel(%q) = %q, want %q", in, got, want)
		}
	}
}

var testNodes = []Node{
	{Name: "h100-0", Ready: true, CPUMilli: 96000, MemoryMB: 1 << 20, DiskMB: 1 << 20, GPUs: 8, GPUVendor: "nvidia", GPUName: "H100", GPUMemoryMB: 81920},
	{Name: "a100-0", Ready: true, CPUMilli: 32000, MemoryMB: 256 << 10, DiskMB: 1 << 20, GPUs: 2, GPUVendor: "nvidia", GPUName: "A100", GPUMemoryMB: 40960},
	{Name: "cpu-0", Ready: true, CPUMilli: 1500, MemoryMB: 64 << 10, DiskMB: 1 << 20},
	{Name: "down-0", Ready: false, CPUMilli: 8000, MemoryMB: 64 << 10},
}

func TestNodeOffers(t *testing.T) {
	got := NodeOffers("ctx", testNodes)
	if len(got) != 3 {
		t.Fatalf("%d offers, want 3 (the node that is not ready left out): %+v", len(got), got)
	}
	by := map[string]offers.Offer{}
	for _, o := range got {
		by[o.InstanceType] = o
	}
	if got[0].InstanceType != "a100-0" || got[2].InstanceType != "h100-0" {
		t.Errorf("offers not in order of zone and name: %v, %v, %v", got[0].InstanceType, got[1].InstanceType, got[2].InstanceType)
	}
	o := by["h100-0"]
	if o.Backend != Backend || o.Region != "ctx" || o.InstanceType != "h100-0" || o.CPUs != 96 || o.GPU == nil ||
		o.GPU.Count != 8 || o.GPU.Name != "H100" || o.GPU.MemoryMB != 80*resources.GB || o.PricePerHour != 0 {
		t.Errorf("offer of h100-0: %+v", o)
	}
	if by["cpu-0"].CPUs != 1 {
		t.Errorf("1500m CPU free is %d whole CPUs, want 1", got[2].CPUs)
	}
}

func TestExplainSaysWhatEachNodeLacks(t *testing.T) {
	spec, err := resources.ParseGPU("H100:16")
	if err != nil {
		t.Fatal(err)
	}
	why := Explain("k", testNodes, resources.Spec{GPU: &spec})
	for _, want := range []string{"node h100-0: gpu", "node a100-0: gpu", "node cpu-0: cpu", "node down-0: not ready"} {
		if !strings.Contains(why, want) {
			t.Errorf("explanation lacks %q:\n%s", want, why)
		}
	}
}

func TestNames(t *testing.T) {
	if got := PodName("Tok_123.abc"); got != "dstack-tok-123-abc" {
		t.Errorf("PodName = %q", got)
	}
	if got := LabelValue("task.train[12]"); got != "task.train-12" {
		t.Errorf("LabelValue = %q", got)
	}
	if got := LabelValue(strings.Repeat("a", 80)); len(got) != 63 {
		t.Errorf("LabelValue of 80 characters has %d", len(got))
	}
}

func TestFromConfig(t *testing.T) {
	s, err := FromConfig(map[string]any{"type": "kubernetes", "namespace": "ml",
		"kubeconfig": map[string]any{"filename": "~/.kube/config", "context": "gpu"}}, func(p string) string {
		return strings.Replace(p, "~", "/home/u", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kubeconfig != "/home/u/.kube/config" || s.Context != "gpu" || s.Namespace != "ml" || s.Region() != "gpu" {
		t.Errorf("settings %+v", s)
	}
	if _, err := FromConfig(map[string]any{"kubeconfig": map[string]any{"filename": "a"}, "regions": []any{"x"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "regions") {
		t.Errorf("an unknown setting: %v", err)
	}
}

// recorder is a Cluster that records the job it is asked to make.
type recorder struct {
	Cluster
	nodes []Node
	made  []JobRequest
}

func (r *recorder) Nodes(context.Context) ([]Node, error)         { return r.nodes, nil }
func (r *recorder) Jobs(context.Context, []string) ([]Job, error) { return nil, nil }
func (r *recorder) CreateJob(_ context.Context, req JobRequest) (Job, error) {
	r.made = append(r.made, req)
	return Job{Name: req.Name, Token: req.Token, Address: req.Address, Node: req.Node, Phase: "Pending"}, nil
}

func TestJobRequest(t *testing.T) {
	r := &recorder{nodes: testNodes}
	p := New(Options{Cluster: r, Lookup: func(string) (string, bool) { return "from-env", true }})
	offer, _ := nodeOffer(Backend, testNodes[0])
	spec := `{"type":"task","name":"t","image":"busybox","commands":["echo hi","sleep 1"],
		"env":["HF_TOKEN=s3cret","BARE"],
		"resources":{"gpu":{"name":["H100"],"count":{"min":2,"max":2}},"shm_size":"2GB"},
		"stop_duration":"45s","volumes":[{"name":["data"],"path":"/data"}]}`
	o, err := p.Create(context.Background(), providers.CreateRequest{Kind: providers.KindJob, Token: "tok1", Address: "task.t[0]",
		Offer: &offer, Spec: []byte(spec), Env: map[string]string{"DSTACK_NODE_RANK": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "dstack-tok1" || o.Status != providers.StatusProvisioning {
		t.Errorf("object %+v", o)
	}
	j := r.made[0]
	if j.Node != "h100-0" || j.GPUs != 2 || j.GPUVendor != "nvidia" || j.ShmMB != 2048 || j.GraceSeconds == nil || *j.GraceSeconds != 45 {
		t.Errorf("request %+v", j)
	}
	if j.SecretEnv["HF_TOKEN"] != "s3cret" || j.SecretEnv["BARE"] != "from-env" {
		t.Errorf("secret env %v", j.SecretEnv)
	}
	for k, v := range j.Env {
		if strings.Contains(v, "s3cret") {
			t.Errorf("the run's secret is in the pod spec's env as %s", k)
		}
	}
	if j.Env["DSTACK_NODE_RANK"] != "0" {
		t.Errorf("env %v", j.Env)
	}
	if len(j.Command) != 3 || j.Command[0] != "/bin/sh" || !strings.Contains(j.Command[2], "echo hi\nsleep 1") {
		t.Errorf("command %q", j.Command)
	}
	if len(j.Volumes) != 1 || j.Volumes[0] != (JobVolume{Volume: "data", Path: "/data"}) {
		t.Errorf("volumes %+v", j.Volumes)
	}
}

// A node that filled up since the plan: another that fits takes the job;
// none that fits is no capacity, saying what each node lacks.
func TestCreateOnAFullNode(t *testing.T) {
	nodes := []Node{
		{Name: "a100-full", Ready: true, CPUMilli: 32000, MemoryMB: 256 << 10, DiskMB: 1 << 20, GPUs: 0, GPUVendor: "nvidia", GPUName: "A100"},
		{Name: "h100-1", Ready: true, CPUMilli: 32000, MemoryMB: 256 << 10, DiskMB: 1 << 20, GPUs: 8, GPUVendor: "nvidia", GPUName: "H100"},
		{Name: "a100-1", Ready: true, CPUMilli: 32000, MemoryMB: 256 << 10, DiskMB: 1 << 20, GPUs: 4, GPUVendor: "nvidia", GPUName: "A100"},
	}
	r := &recorder{nodes: nodes}
	p := New(Options{Cluster: r})
	planned := offers.Offer{Backend: Backend, Region: Backend, InstanceType: "a100-full", CPUs: 32, Memory: 256 * resources.GB,
		GPU: &offers.GPU{Vendor: "nvidia", Name: "A100", Count: 4}}
	spec := `{"type":"task","name":"t","image":"busybox","commands":["true"],"resources":{"gpu":{"count":{"min":2,"max":2}}}}`
	o, err := p.Create(context.Background(), providers.CreateRequest{Kind: providers.KindJob, Token: "tok2", Address: "task.t[0]",
		Offer: &planned, Spec: []byte(spec)})
	if err != nil {
		t.Fatal(err)
	}
	if r.made[0].Node != "a100-1" || o.Offer.InstanceType != "a100-1" {
		t.Errorf("the job went to %s (offer %s), want a100-1, the free node of the planned GPU model", r.made[0].Node, o.Offer.InstanceType)
	}
	spec = `{"type":"task","name":"t","image":"busybox","commands":["true"],"resources":{"gpu":{"count":{"min":16,"max":16}}}}`
	_, err = p.Create(context.Background(), providers.CreateRequest{Kind: providers.KindJob, Token: "tok3", Address: "task.t[0]",
		Offer: &planned, Spec: []byte(spec)})
	if providers.CodeOf(err) != providers.NoCapacity || !strings.Contains(err.Error(), "node h100-1: gpu") {
		t.Errorf("a job no node fits: %v", err)
	}
}
