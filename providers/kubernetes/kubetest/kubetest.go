// Package kubetest starts a Kubernetes cluster for tests: a real etcd and
// kube-apiserver on loopback, with a generated serving certificate and
// bearer token, and kwok to run simulated nodes (GPU nodes among them):
// kwok marks them ready and runs the pods bound to them.
//
// The binaries are built from their Go modules by .ci/install-k8s.sh into
// GOPATH/bin (or found on PATH). Without them Start skips the test, or
// fails it when DSTACK_REQUIRE_K8S=1. Everything it starts is stopped by
// the test's cleanup.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RequireEnv turns a skip into a failure: with DSTACK_REQUIRE_K8S=1,
// Start fails the test where the cluster's binaries are missing.
const RequireEnv = "DSTACK_REQUIRE_K8S"

// KwokAnnotation marks the nodes kwok manages.
const KwokAnnotation = "kwok.x-k8s.io/node"

// Cluster is a running test cluster.
type Cluster struct {
	// Kubeconfig is a kubeconfig file for it (context "kubetest",
	// namespace "default").
	Kubeconfig string
	// Config is its REST config, with the admin token.
	Config *rest.Config
	Client *k8s.Clientset
	dir    string
	exited map[string]chan struct{}
}

// Options configure Start.
type Options struct {
	// NoKwok starts no kwok: nodes never become ready and pods never run.
	NoKwok bool
	// Output, when set, is what every pod's container "job" printed, as
	// kwok serves it through its kubelet API (kwok runs no containers).
	Output []string
}

// find looks for a binary on PATH, then in GOPATH/bin.
func find(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p, true
	}
	return "", false
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (run .ci/install-k8s.sh)"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s; %s=1 requires the cluster", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Start starts a cluster for t. No kube-controller-manager runs, so the
// admission plugins whose objects only it finishes are off: ServiceAccount
// (no default service account is made) and StorageObjectInUseProtection
// (no controller would remove a claim's finalizer).
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	bins := map[string]string{}
	need := []string{"etcd", "kube-apiserver"}
	if !o.NoKwok {
		need = append(need, "kwok")
	}
	for _, name := range need {
		p, ok := find(name)
		if !ok {
			unavailable(t, "%s is not installed", name)
		}
		bins[name] = p
	}
	stages := ""
	if !o.NoKwok {
		stages = filepath.Join(filepath.Dir(bins["kwok"]), "kwok-stages.yaml")
		if _, err := os.Stat(stages); err != nil {
			unavailable(t, "kwok's stages are not beside it: %v", err)
		}
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{dir: dir, exited: map[string]chan struct{}{}}

	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.start(t, bins["etcd"], "etcd", "--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL, "--log-level=error", "--quota-backend-bytes=2147483648",
		"--unsafe-no-fsync")

	certPEM, keyPEM := serving(t)
	write(t, filepath.Join(dir, "tls.crt"), certPEM)
	write(t, filepath.Join(dir, "tls.key"), keyPEM)
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	write(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}))
	write(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	write(t, filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"))
	c.start(t, bins["kube-apiserver"], "kube-apiserver", "--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+filepath.Join(dir, "tls.crt"), "--tls-private-key-file="+filepath.Join(dir, "tls.key"),
		"--cert-dir="+filepath.Join(dir, "certs"), "--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC", "--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--disable-admission-plugins=ServiceAccount,StorageObjectInUseProtection",
		"--allow-privileged=true", "--endpoint-reconciler-type=none", "--v=0")

	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Config = &rest.Config{Host: server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: certPEM},
		QPS: 200, Burst: 400}
	c.Client, err = k8s.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: certPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "kubetest"
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t)
	if !o.NoKwok {
		config := stages
		if len(o.Output) > 0 {
			// A CRI log of the lines, and kwok's ClusterLogs serving it
			// for the containers "job" of the default namespace.
			var log strings.Builder
			for _, line := range o.Output {
				fmt.Fprintf(&log, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
			}
			write(t, filepath.Join(dir, "job.log"), []byte(log.String()))
			st, err := os.ReadFile(stages)
			if err != nil {
				t.Fatal(err)
			}
			st = append(st, []byte("\n---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: job-output\nspec:\n"+
				"  selector:\n    matchNamespaces: [default]\n  logs:\n  - containers: [job]\n    logsFile: "+filepath.Join(dir, "job.log")+"\n")...)
			config = filepath.Join(dir, "kwok.yaml")
			write(t, config, st)
		}
		port := strconv.Itoa(freePort(t))
		c.start(t, bins["kwok"], "kwok", "--kubeconfig="+c.Kubeconfig, "--config="+config,
			"--manage-nodes-with-annotation-selector="+KwokAnnotation+"=fake", "--cidr=10.244.0.0/16",
			"--node-ip=127.0.0.1", "--node-port="+port, "--server-address=127.0.0.1:"+port,
			"--tls-cert-file="+filepath.Join(dir, "tls.crt"), "--tls-private-key-file="+filepath.Join(dir, "tls.key"))
	}
	return c
}

// start runs a part of the cluster, its output in dir/NAME.log, stopped
// at cleanup.
func (c *Cluster) start(t testing.TB, bin, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	c.exited[name] = done
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s's output (last 3000 bytes):\n%s", name, c.tail(name))
		}
	})
}

func (c *Cluster) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func (c *Cluster) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		for _, name := range []string{"etcd", "kube-apiserver"} {
			select {
			case <-c.exited[name]:
				t.Fatalf("%s exited:\n%s", name, c.tail(name))
			default:
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("ok")) {
			// The default namespace is made by the API server's own
			// controller, shortly after it is ready.
			if _, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err == nil {
				return
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the API server is not ready after 3 minutes: %v\n%s", last, c.tail("kube-apiserver"))
}

// Node is a simulated node to add.
type Node struct {
	Name   string
	CPUs   int
	Memory int64 // MiB
	// GPUs of Vendor ("nvidia" or "amd"), model Product as the node's
	// label gives it ("NVIDIA-H100-80GB-HBM3"), MemoryMB each.
	GPUs     int
	Vendor   string
	Product  string
	MemoryMB int
	Zone     string
	Arch     string // amd64 (default) or arm64
}

// AddNodes creates nodes that kwok runs, and waits until they are ready.
func (c *Cluster) AddNodes(t testing.TB, nodes []Node) {
	t.Helper()
	ctx := context.Background()
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := c.Client.CoreV1().Nodes().Create(ctx, KwokNode(n), metav1.CreateOptions{})
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("creating a node: %v", err)
		}
	}
	c.WaitNodesReady(t, len(nodes))
}

// WaitNodesReady waits until at least n nodes are ready.
func (c *Cluster) WaitNodesReady(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	ready := 0
	for time.Now().Before(deadline) {
		list, err := c.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready = 0
		for _, node := range list.Items {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%d of %d nodes are ready after 3 minutes\nkwok:\n%s", ready, n, c.tail("kwok"))
}

// KwokNode is the Node object of n, for kwok to run.
func KwokNode(n Node) *corev1.Node {
	arch := n.Arch
	if arch == "" {
		arch = "amd64"
	}
	labels := map[string]string{corev1.LabelHostname: n.Name, corev1.LabelArchStable: arch, corev1.LabelOSStable: "linux",
		"type": "kwok"}
	if n.Zone != "" {
		labels[corev1.LabelTopologyZone] = n.Zone
	}
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(n.CPUs), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(n.Memory<<20, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(1<<40, resource.BinarySI),
	}
	if n.GPUs > 0 {
		switch n.Vendor {
		case "amd":
			alloc["amd.com/gpu"] = *resource.NewQuantity(int64(n.GPUs), resource.DecimalSI)
			labels["amd.com/gpu.product-name"] = n.Product
		default:
			alloc["nvidia.com/gpu"] = *resource.NewQuantity(int64(n.GPUs), resource.DecimalSI)
			labels["nvidia.com/gpu.product"] = n.Product
			if n.MemoryMB > 0 {
				labels["nvidia.com/gpu.memory"] = strconv.Itoa(n.MemoryMB)
			}
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels, Annotations: map[string]string{KwokAnnotation: "fake"}},
		Status:     corev1.NodeStatus{Allocatable: alloc, Capacity: alloc.DeepCopy()},
	}
}

// Leftovers lists the pods, services, claims and secrets in namespace ns
// that selector matches, as "kind/name".
func (c *Cluster) Leftovers(ctx context.Context, ns, selector string) ([]string, error) {
	var out []string
	opts := metav1.ListOptions{LabelSelector: selector}
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		out = append(out, "pod/"+p.Name)
	}
	svcs, err := c.Client.CoreV1().Services(ns).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, s := range svcs.Items {
		out = append(out, "service/"+s.Name)
	}
	pvcs, err := c.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, p := range pvcs.Items {
		out = append(out, "pvc/"+p.Name)
	}
	secs, err := c.Client.CoreV1().Secrets(ns).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, s := range secs.Items {
		out = append(out, "secret/"+s.Name)
	}
	return out, nil
}

// IsNotFound reports whether err is the API's not found.
func IsNotFound(err error) bool { return apierrors.IsNotFound(err) }

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serving is a self-signed certificate for 127.0.0.1 and localhost.
func serving(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
