package kubernetes_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/kubernetes"
	"github.com/dstackai/dstack-go/providers/kubernetes/kubeapi"
	"github.com/dstackai/dstack-go/providers/kubernetes/kubetest"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/providertest"
)

// TestMain lets this test binary be dstack-provider-kubernetes: run under
// that name it serves the cluster on its standard streams, as the
// program does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == kubernetes.Program {
		err := kubernetes.Serve(os.Stdin, os.Stdout, func(ctx context.Context, s kubernetes.Settings) (kubernetes.Cluster, error) {
			return kubeapi.Open(s)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, kubernetes.Program+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mixedNodes are GPU nodes of several kinds and a CPU node.
var mixedNodes = []kubetest.Node{
	{Name: "gpu-h100-0", CPUs: 96, Memory: 1 << 20, GPUs: 8, Product: "NVIDIA-H100-80GB-HBM3", MemoryMB: 81559, Zone: "z1"},
	{Name: "gpu-a100-0", CPUs: 32, Memory: 256 << 10, GPUs: 2, Product: "NVIDIA-A100-SXM4-40GB", MemoryMB: 40960, Zone: "z1"},
	{Name: "gpu-mi300x-0", CPUs: 64, Memory: 512 << 10, GPUs: 8, Vendor: "amd", Product: "AMD_Instinct_MI300X", Zone: "z2"},
	{Name: "cpu-0", CPUs: 16, Memory: 64 << 10, Zone: "z2"},
}

// programProvider is the provider on dstack-provider-kubernetes (this
// test binary under that name) with the cluster's kubeconfig.
func programProvider(t testing.TB, c *kubetest.Cluster) *kubernetes.Provider {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(t.TempDir(), kubernetes.Program)
	if err := os.Symlink(exe, prog); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	proc, err := kubernetes.StartProcess(ctx, exec.Command(prog), kubernetes.Settings{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	p := kubernetes.New(kubernetes.Options{Cluster: proc, Region: "kubetest", PollInterval: 100 * time.Millisecond})
	t.Cleanup(func() { p.Close() })
	return p
}

func offerOf(t testing.TB, p *kubernetes.Provider, node string) offers.Offer {
	t.Helper()
	list, err := p.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(o offers.Offer) bool { return o.InstanceType == node })
	if i < 0 {
		t.Fatalf("no offer of node %s in %+v", node, list)
	}
	return list[i]
}

func jobReq(offer offers.Offer, spec string) providers.CreateRequest {
	return providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.t[0]", Offer: &offer, Spec: []byte(spec)}
}

// TestConformance runs the provider suite against a real API server and
// etcd, with kwok running the nodes, through dstack-provider-kubernetes.
func TestConformance(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.AddNodes(t, mixedNodes)
	p := programProvider(t, c)
	h100 := offerOf(t, p, "gpu-h100-0")
	a100 := offerOf(t, p, "gpu-a100-0")

	// A provider whose token the API server refuses.
	bad := *c.Config
	bad.BearerToken = "not-the-token"
	badCluster, err := kubeapi.FromConfig(&bad, "default")
	if err != nil {
		t.Fatal(err)
	}
	unauthorized := kubernetes.New(kubernetes.Options{Cluster: badCluster})
	gone := h100
	gone.InstanceType = "no-such-node"

	providertest.Run(t, providertest.Harness{
		Provider: p,
		Kinds:    []providers.ObjectKind{providers.KindVolume, providers.KindJob},
		Request: func(kind providers.ObjectKind, made map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			if kind == providers.KindVolume {
				return providers.CreateRequest{Address: "volume.data[0]",
					Spec: []byte(`{"type":"volume","name":"data","backend":"kubernetes","size":10,"storage_class_name":"standard"}`)}
			}
			r := jobReq(h100, `{"type":"task","name":"t","image":"busybox","commands":["sleep 3600"],
				"resources":{"gpu":"H100:2"},"volumes":[{"name":["data"],"path":"/data"}]}`)
			return r
		},
		Errors: map[providers.Code]func(context.Context) error{
			providers.NotFound: func(ctx context.Context) error {
				_, err := p.Create(ctx, jobReq(gone, `{"type":"task","name":"t","image":"busybox","commands":["true"]}`))
				return err
			},
			providers.NoCapacity: func(ctx context.Context) error {
				_, err := p.Create(ctx, jobReq(a100, `{"type":"task","name":"t","image":"busybox","commands":["true"],"resources":{"gpu":"A100:4"}}`))
				return err
			},
			providers.Unsupported: func(ctx context.Context) error {
				r := jobReq(a100, `{"type":"task","name":"t","image":"busybox","commands":["true"]}`)
				r.Host = "i-123"
				_, err := p.Create(ctx, r)
				return err
			},
			providers.Auth: func(ctx context.Context) error {
				_, err := unauthorized.Offers(ctx)
				return err
			},
		},
		Timeout: 2 * time.Minute,
	})
	left, err := c.Leftovers(context.Background(), "default", kubernetes.LabelManaged+"=true")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left in the cluster: %v", left)
	}
}

// TestPods checks what a job's pod is: bound to its node, GPU requests,
// env in a Secret, shm, grace period, labels; the offers shrink by its
// requests; the pod runs (kwok) and is gone after Delete.
func TestPods(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.AddNodes(t, mixedNodes)
	p := programProvider(t, c)
	ctx := context.Background()
	mi := offerOf(t, p, "gpu-mi300x-0")
	req := jobReq(mi, `{"type":"task","name":"t","image":"busybox","commands":["echo hi"],
		"env":["HF_TOKEN=s3cret-value"],"resources":{"gpu":"MI300X:3","cpu":"4..","memory":"16GB..","shm_size":"1GB"},
		"stop_duration":"45s"}`)
	req.Env = map[string]string{"DSTACK_NODE_RANK": "0"}
	o, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := c.Client.CoreV1().Pods("default").Get(ctx, o.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct := pod.Spec.Containers[0]
	if pod.Spec.NodeName != "gpu-mi300x-0" {
		t.Errorf("node %q", pod.Spec.NodeName)
	}
	if q := ct.Resources.Limits["amd.com/gpu"]; q.Value() != 3 {
		t.Errorf("amd.com/gpu limit %v", q.String())
	}
	if q := ct.Resources.Requests[corev1.ResourceCPU]; q.MilliValue() != 4000 {
		t.Errorf("cpu request %v", q.String())
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g != 45 {
		t.Errorf("grace period %v, want stop_duration's 45", g)
	}
	if pod.Labels[kubernetes.LabelToken] != req.Token || pod.Annotations[kubernetes.AnnotationAddress] != "task.t[0]" ||
		pod.Labels[kubernetes.LabelAddress] != "task.t-0" {
		t.Errorf("labels %v, annotations %v", pod.Labels, pod.Annotations)
	}
	shm := false
	for _, v := range pod.Spec.Volumes {
		if e := v.EmptyDir; e != nil && e.Medium == corev1.StorageMediumMemory && e.SizeLimit != nil && e.SizeLimit.Value() == 1<<30 {
			shm = true
		}
	}
	if !shm || !slices.ContainsFunc(ct.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/dev/shm" }) {
		t.Errorf("no 1GB memory emptyDir at /dev/shm: %+v %+v", pod.Spec.Volumes, ct.VolumeMounts)
	}
	spec, _ := pod.Marshal()
	if strings.Contains(string(spec), "s3cret-value") {
		t.Errorf("the run's env value is in the pod's spec")
	}
	sec, err := c.Client.CoreV1().Secrets("default").Get(ctx, o.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["HF_TOKEN"]) != "s3cret-value" || len(ct.EnvFrom) != 1 || ct.EnvFrom[0].SecretRef.Name != o.ID {
		t.Errorf("secret %v, envFrom %+v", sec.Data, ct.EnvFrom)
	}
	after := offerOf(t, p, "gpu-mi300x-0")
	if after.GPU == nil || after.GPU.Count != 5 || after.CPUs != 60 {
		t.Errorf("after a job of 3 GPUs and 4 CPUs the node offers %+v (%v), want 5 GPUs, 60 CPUs", after, after.GPU)
	}
	// kwok runs it.
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := p.Describe(ctx, []string{req.Token})
		if err != nil {
			t.Fatal(err)
		}
		if got[req.Token].Status == providers.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod is not running after a minute: %+v", got[req.Token])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.Delete(ctx, providers.KindJob, o.ID); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		left, err := c.Leftovers(ctx, "default", kubernetes.LabelManaged+"=true")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left a minute after Delete: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLogs reads a pod's output through the API server, from the node's
// kubelet API (kwok's, which serves the lines it is given), from the
// start and from an offset.
func TestLogs(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{Output: []string{"hello from the pod", "second line"}})
	c.AddNodes(t, mixedNodes[3:])
	p := programProvider(t, c)
	ctx := context.Background()
	req := jobReq(offerOf(t, p, "cpu-0"), `{"type":"task","name":"t","image":"busybox","commands":["echo hello"]}`)
	o, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := p.Describe(ctx, []string{req.Token})
		if err != nil {
			t.Fatal(err)
		}
		if got[req.Token].Status == providers.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not running after a minute: %+v", got[req.Token])
		}
		time.Sleep(100 * time.Millisecond)
	}
	read := func(since int64) string {
		rc, err := p.Logs(ctx, o.ID, since, false)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(0); got != "hello from the pod\nsecond line\n" {
		t.Errorf("output %q", got)
	}
	if got := read(int64(len("hello from the pod\n"))); got != "second line\n" {
		t.Errorf("output from an offset %q", got)
	}
}
