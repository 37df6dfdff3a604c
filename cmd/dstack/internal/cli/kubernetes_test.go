package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dstackai/dstack-go/providers/kubernetes"
	"github.com/dstackai/dstack-go/providers/kubernetes/kubetest"
)

// TestKubernetesTask drives the real CLI and the real
// dstack-provider-kubernetes (built here, found on PATH) against a real
// API server whose nodes kwok runs: plan places a task on a GPU node,
// apply makes its pod (env in a Secret), logs reads the pod's output
// through the API server, destroy leaves no pod, Secret,
// service or claim. The kubeconfig's token appears in no output and not
// in the state.
func TestKubernetesTask(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{Output: []string{"output of the pod, through the API server"}})
	c.AddNodes(t, []kubetest.Node{
		{Name: "gpu-h100-0", CPUs: 96, Memory: 1 << 20, GPUs: 8, Product: "NVIDIA-H100-80GB-HBM3", MemoryMB: 81559},
		{Name: "gpu-l4-0", CPUs: 16, Memory: 64 << 10, GPUs: 1, Product: "NVIDIA-L4", MemoryMB: 23034},
	})
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, kubernetes.Program), "github.com/dstackai/dstack-go/cmd/dstack-provider-kubernetes")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", kubernetes.Program, err, out)
	}
	p := newSSHProject(t, nil)
	home := filepath.Join(p.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".dstack"), 0o700); err != nil {
		t.Fatal(err)
	}
	backends := "backends:\n  - type: kubernetes\n    kubeconfig:\n      filename: " + c.Kubeconfig + "\n    namespace: default\n"
	if err := os.WriteFile(filepath.Join(home, ".dstack", "backends.yml"), []byte(backends), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range p.env {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	p.env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var outputs []string
	must := func(want int, args ...string) string {
		t.Helper()
		out := p.must(want, args...)
		outputs = append(outputs, out)
		return out
	}
	p.write("hello.dstack.yml", "type: task\nname: hello\nimage: busybox\nbackends: [kubernetes]\n"+
		"env:\n  - GREETING=s3cret-greeting\ncommands:\n  - echo \"$GREETING from $DSTACK_NODE_RANK\"\nresources:\n  gpu: H100:2\n")
	plan := must(0, "plan", "-f", "hello.dstack.yml")
	if !strings.Contains(plan, "gpu-h100-0") {
		t.Fatalf("plan does not place the task on node gpu-h100-0:\n%s", plan)
	}
	must(0, "apply", "-f", "hello.dstack.yml", "-y", "-d")
	ctx := context.Background()
	pods, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelManaged + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods after apply, want 1", len(pods.Items))
	}
	pod := pods.Items[0]
	if pod.Spec.NodeName != "gpu-h100-0" || pod.Annotations[kubernetes.AnnotationAddress] != "task.hello[0]" {
		t.Errorf("pod %s on %s, address %q", pod.Name, pod.Spec.NodeName, pod.Annotations[kubernetes.AnnotationAddress])
	}
	if q := pod.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; q.Value() != 2 {
		t.Errorf("nvidia.com/gpu limit %s, want 2", q.String())
	}
	if sec, err := c.Client.CoreV1().Secrets("default").Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || string(sec.Data["GREETING"]) != "s3cret-greeting" {
		t.Errorf("the run's env is not in the pod's Secret: %v", err)
	}
	// A second apply changes nothing: the pod is found by its token.
	must(0, "plan", "-detailed-exitcode")
	// kwok runs no container: the node's kubelet API serves the lines the
	// cluster was started with, which dstack logs reads through the API
	// server.
	if logs := must(0, "logs", "hello"); !strings.Contains(logs, "output of the pod, through the API server") {
		t.Errorf("dstack logs:\n%s", logs)
	}
	ps := must(0, "ps", "-a")
	if !strings.Contains(ps, "hello") {
		t.Errorf("ps does not show the run:\n%s", ps)
	}

	must(0, "destroy", "-y")
	deadline := time.Now().Add(time.Minute)
	for {
		left, err := c.Leftovers(ctx, "default", kubernetes.LabelManaged+"=true")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in the cluster a minute after destroy: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	token := c.Config.BearerToken
	for i, out := range outputs {
		if strings.Contains(out, token) {
			t.Errorf("output %d shows the kubeconfig's token", i)
		}
	}
	_ = filepath.WalkDir(p.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), token) {
			t.Errorf("%s holds the kubeconfig's token", path)
		}
		return nil
	})
}
