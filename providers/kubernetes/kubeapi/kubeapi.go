// Package kubeapi is the kubernetes backend's Cluster on client-go. It is
// linked into dstack-provider-kubernetes only (see package kubernetes).
package kubeapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/kubernetes"
)

// Client is a kubernetes.Cluster of one namespace.
type Client struct {
	cs *k8s.Clientset
	ns string
}

var _ kubernetes.Cluster = (*Client)(nil)

// Open reads the kubeconfig the settings name (else $KUBECONFIG, else
// ~/.kube/config), with their context and namespace (else the context's,
// else "default").
func Open(s kubernetes.Settings) (*Client, error) {
	over := &clientcmd.ConfigOverrides{CurrentContext: s.Context}
	var cc clientcmd.ClientConfig
	if s.KubeconfigData != "" {
		raw, err := clientcmd.Load([]byte(s.KubeconfigData))
		if err != nil {
			return nil, fmt.Errorf("reading the kubeconfig of the backend block: %w", err)
		}
		cc = clientcmd.NewNonInteractiveClientConfig(*raw, s.Context, over, nil)
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if s.Kubeconfig != "" {
			rules.ExplicitPath = s.Kubeconfig
		}
		cc = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	ns := s.Namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	return FromConfig(cfg, ns)
}

// FromConfig is the cluster of a REST config, in namespace ns.
func FromConfig(cfg *rest.Config, ns string) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("a client of the cluster: %w", err)
	}
	return &Client{cs: cs, ns: ns}, nil
}

// classify gives API errors the codes the planner acts on.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var code providers.Code
	switch {
	case apierrors.IsUnauthorized(err):
		code = providers.Auth
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		code = providers.Quota
	case apierrors.IsForbidden(err):
		code = providers.Auth
	case apierrors.IsTooManyRequests(err):
		e := &providers.Error{Code: providers.RateLimited, Err: err}
		if d, ok := apierrors.SuggestsClientDelay(err); ok {
			e.RetryAfter = time.Duration(d) * time.Second
		}
		return e
	case apierrors.IsNotFound(err):
		code = providers.NotFound
	default:
		return err
	}
	return &providers.Error{Code: code, Err: err}
}

// Nodes implements kubernetes.Cluster: the schedulable nodes, each with
// its allocatable less the requests of the pods bound to it that have
// not ended. Both lists are read from the API server's cache.
func (c *Client) Nodes(ctx context.Context) ([]kubernetes.Node, error) {
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, classify(fmt.Errorf("listing nodes: %w", err))
	}
	pods, err := c.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "0",
		FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return nil, classify(fmt.Errorf("listing pods: %w", err))
	}
	used := map[string]corev1.ResourceList{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" {
			continue
		}
		u := used[p.Spec.NodeName]
		if u == nil {
			u = corev1.ResourceList{}
			used[p.Spec.NodeName] = u
		}
		addRequests(u, p)
	}
	out := make([]kubernetes.Node, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.Spec.Unschedulable {
			continue
		}
		out = append(out, node(n, used[n.Name]))
	}
	return out, nil
}

// addRequests adds a pod's requests to u: the sum of its containers', or
// its largest init container's where that is more.
func addRequests(u corev1.ResourceList, p *corev1.Pod) {
	sum := corev1.ResourceList{}
	for _, ct := range p.Spec.Containers {
		for name, q := range ct.Resources.Requests {
			v := sum[name]
			v.Add(q)
			sum[name] = v
		}
	}
	for _, ct := range p.Spec.InitContainers {
		for name, q := range ct.Resources.Requests {
			if v, ok := sum[name]; !ok || q.Cmp(v) > 0 {
				sum[name] = q.DeepCopy()
			}
		}
	}
	for name, q := range p.Spec.Overhead {
		v := sum[name]
		v.Add(q)
		sum[name] = v
	}
	for name, q := range sum {
		v := u[name]
		v.Add(q)
		u[name] = v
	}
}

func node(n *corev1.Node, used corev1.ResourceList) kubernetes.Node {
	free := func(name corev1.ResourceName) (total, left resource.Quantity) {
		total = n.Status.Allocatable[name]
		left = total.DeepCopy()
		if q, ok := used[name]; ok {
			left.Sub(q)
		}
		return total, left
	}
	cpu, cpuLeft := free(corev1.ResourceCPU)
	mem, memLeft := free(corev1.ResourceMemory)
	_, diskLeft := free(corev1.ResourceEphemeralStorage)
	out := kubernetes.Node{Name: n.Name, Zone: n.Labels[corev1.LabelTopologyZone],
		CPUMilli: max(cpuLeft.MilliValue(), 0), MemoryMB: max(memLeft.Value()>>20, 0), DiskMB: max(diskLeft.Value()>>20, 0),
		AllocCPUMilli: cpu.MilliValue(), AllocMemoryMB: mem.Value() >> 20}
	switch n.Labels[corev1.LabelArchStable] {
	case "arm64":
		out.Arch = "arm"
	default:
		out.Arch = "x86"
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, g := range []struct {
		res, vendor, product string
	}{{kubernetes.ResourceNVIDIAGPU, "nvidia", kubernetes.LabelNVIDIAProduct}, {kubernetes.ResourceAMDGPU, "amd", kubernetes.LabelAMDProduct}} {
		total, left := free(corev1.ResourceName(g.res))
		if total.Value() <= 0 {
			continue
		}
		out.AllocGPUs = int(total.Value())
		out.GPUs = int(max(left.Value(), 0))
		out.GPUVendor = g.vendor
		out.GPUName = kubernetes.GPUModel(n.Labels[g.product])
		if out.GPUName == "" {
			out.GPUName = strings.ToUpper(g.vendor) + "-GPU"
		}
		if g.vendor == "nvidia" {
			fmt.Sscan(n.Labels[kubernetes.LabelNVIDIAMemory], &out.GPUMemoryMB)
		}
		break
	}
	return out
}

func selectorIn(key string, values []string) (string, error) {
	r, err := labels.NewRequirement(key, selection.In, values)
	if err != nil {
		return "", err
	}
	return labels.NewSelector().Add(*r).String(), nil
}

func (c *Client) meta(name, token, address string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: c.ns,
		Labels: map[string]string{kubernetes.LabelManaged: "true", kubernetes.LabelToken: kubernetes.LabelValue(token),
			kubernetes.LabelAddress: kubernetes.LabelValue(address)},
		Annotations: map[string]string{kubernetes.AnnotationAddress: address, annotationToken: token}}
}

// annotationToken keeps the token as given (its label is a label value).
const annotationToken = "dstack.ai/token"

// CreateJob implements kubernetes.Cluster.
func (c *Client) CreateJob(ctx context.Context, req kubernetes.JobRequest) (kubernetes.Job, error) {
	pods := c.cs.CoreV1().Pods(c.ns)
	if p, err := pods.Get(ctx, req.Name, metav1.GetOptions{}); err == nil {
		return c.adopt(p, req.Token)
	} else if !apierrors.IsNotFound(err) {
		return kubernetes.Job{}, classify(fmt.Errorf("reading pod %s: %w", req.Name, err))
	}
	meta := c.meta(req.Name, req.Token, req.Address)
	// The run's env goes in a Secret of the pod's name: no value of it
	// is in the pod's spec.
	if len(req.SecretEnv) > 0 {
		sec := &corev1.Secret{ObjectMeta: meta, StringData: req.SecretEnv, Type: corev1.SecretTypeOpaque}
		if _, err := c.cs.CoreV1().Secrets(c.ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return kubernetes.Job{}, classify(fmt.Errorf("creating secret %s: %w", req.Name, err))
		}
	}
	pod, err := c.pod(ctx, req, meta)
	if err != nil {
		return kubernetes.Job{}, err
	}
	made, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		if made, err = pods.Get(ctx, req.Name, metav1.GetOptions{}); err == nil {
			return c.adopt(made, req.Token)
		}
	}
	if err != nil {
		return kubernetes.Job{}, classify(fmt.Errorf("creating pod %s: %w", req.Name, err))
	}
	return job(made), nil
}

// adopt returns the pod made before with token; a pod of that name made
// with another token is not ours to take.
func (c *Client) adopt(p *corev1.Pod, token string) (kubernetes.Job, error) {
	if p.Annotations[annotationToken] != token {
		return kubernetes.Job{}, fmt.Errorf("pod %s/%s exists and was not made with token %s", c.ns, p.Name, token)
	}
	return job(p), nil
}

func (c *Client) pod(ctx context.Context, req kubernetes.JobRequest, meta metav1.ObjectMeta) (*corev1.Pod, error) {
	ct := corev1.Container{Name: "job", Image: req.Image, Command: req.Command, Args: req.Args, WorkingDir: req.WorkingDir,
		ImagePullPolicy: corev1.PullIfNotPresent}
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		ct.Env = append(ct.Env, corev1.EnvVar{Name: k, Value: req.Env[k]})
	}
	if len(req.SecretEnv) > 0 {
		ct.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: req.Name}}}}
	}
	rl := corev1.ResourceList{}
	if req.CPUMilli > 0 {
		rl[corev1.ResourceCPU] = *resource.NewMilliQuantity(req.CPUMilli, resource.DecimalSI)
	}
	if req.MemoryMB > 0 {
		rl[corev1.ResourceMemory] = *resource.NewQuantity(req.MemoryMB<<20, resource.BinarySI)
	}
	if req.GPUs > 0 {
		res := kubernetes.ResourceNVIDIAGPU
		if req.GPUVendor == "amd" {
			res = kubernetes.ResourceAMDGPU
		}
		rl[corev1.ResourceName(res)] = *resource.NewQuantity(int64(req.GPUs), resource.DecimalSI)
	}
	// Requests are limits: the job gets what it was placed for, and the
	// extended GPU resources need limits equal to requests.
	ct.Resources = corev1.ResourceRequirements{Requests: rl, Limits: rl.DeepCopy()}
	for _, p := range req.Ports {
		ct.Ports = append(ct.Ports, corev1.ContainerPort{ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	spec := corev1.PodSpec{NodeName: req.Node, RestartPolicy: corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: req.GraceSeconds, EnableServiceLinks: new(false),
		AutomountServiceAccountToken: new(false)}
	if req.ShmMB > 0 {
		size := resource.NewQuantity(req.ShmMB<<20, resource.BinarySI)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "dshm",
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: size}}})
		ct.VolumeMounts = append(ct.VolumeMounts, corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"})
	}
	for i, v := range req.Volumes {
		claim, err := c.claimOf(ctx, v.Volume)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("vol-%d", i)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		ct.VolumeMounts = append(ct.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: v.Path})
	}
	spec.Containers = []corev1.Container{ct}
	return &corev1.Pod{ObjectMeta: meta, Spec: spec}, nil
}

// claimOf is the claim of the dstack volume named name.
func (c *Client) claimOf(ctx context.Context, name string) (string, error) {
	sel, err := selectorIn(kubernetes.LabelVolume, []string{kubernetes.LabelValue(name)})
	if err != nil {
		return "", err
	}
	list, err := c.cs.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", classify(fmt.Errorf("finding the claim of volume %s: %w", name, err))
	}
	if len(list.Items) == 0 {
		return "", providers.Errorf(providers.NotFound, "volume %s has no claim in namespace %s: apply the volume first", name, c.ns)
	}
	return list.Items[0].Name, nil
}

func job(p *corev1.Pod) kubernetes.Job {
	j := kubernetes.Job{Name: p.Name, Token: p.Annotations[annotationToken], Address: p.Annotations[kubernetes.AnnotationAddress],
		Node: p.Spec.NodeName, Phase: string(p.Status.Phase), Deleting: p.DeletionTimestamp != nil, IP: p.Status.PodIP,
		Reason: p.Status.Reason}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			code := int(t.ExitCode)
			j.ExitCode = &code
			if j.Reason == "" && t.Reason != "" && t.Reason != "Completed" {
				j.Reason = t.Reason
			}
		}
		if w := cs.State.Waiting; w != nil && j.Reason == "" {
			j.Reason = w.Reason
			if w.Message != "" {
				j.Reason += ": " + w.Message
			}
		}
	}
	return j
}

// Jobs implements kubernetes.Cluster.
func (c *Client) Jobs(ctx context.Context, tokens []string) ([]kubernetes.Job, error) {
	list, err := c.byTokens(ctx, tokens, func(ctx context.Context, sel string) ([]metav1.Object, error) {
		l, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, err
		}
		out := make([]metav1.Object, len(l.Items))
		for i := range l.Items {
			out[i] = &l.Items[i]
		}
		return out, nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("listing pods: %w", err))
	}
	out := make([]kubernetes.Job, 0, len(list))
	for _, o := range list {
		out = append(out, job(o.(*corev1.Pod)))
	}
	return out, nil
}

// byTokens lists the objects labelled with tokens, a few hundred tokens
// a request, keeping those whose token annotation is one asked for.
func (c *Client) byTokens(ctx context.Context, tokens []string, list func(context.Context, string) ([]metav1.Object, error)) ([]metav1.Object, error) {
	want := map[string]bool{}
	var values []string
	for _, t := range tokens {
		want[t] = true
		values = append(values, kubernetes.LabelValue(t))
	}
	sort.Strings(values)
	values = slices.Compact(values)
	var out []metav1.Object
	for len(values) > 0 {
		n := min(len(values), 200)
		sel, err := selectorIn(kubernetes.LabelToken, values[:n])
		if err != nil {
			return nil, err
		}
		values = values[n:]
		objs, err := list(ctx, sel)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if want[o.GetAnnotations()[annotationToken]] {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// DeleteJob implements kubernetes.Cluster.
func (c *Client) DeleteJob(ctx context.Context, name string, graceSeconds *int64) error {
	err := c.cs.CoreV1().Pods(c.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: graceSeconds})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("deleting pod %s: %w", name, err))
	}
	err = c.cs.CoreV1().Secrets(c.ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("deleting secret %s: %w", name, err))
	}
	return nil
}

// Logs implements kubernetes.Cluster.
func (c *Client) Logs(ctx context.Context, name string, since int64) (kubernetes.LogChunk, error) {
	p, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return kubernetes.LogChunk{}, classify(fmt.Errorf("reading pod %s: %w", name, err))
	}
	ended := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	if p.Status.Phase == corev1.PodPending {
		return kubernetes.LogChunk{}, nil
	}
	b, err := c.cs.CoreV1().Pods(c.ns).GetLogs(name, &corev1.PodLogOptions{Container: "job"}).DoRaw(ctx)
	if err != nil {
		return kubernetes.LogChunk{}, classify(fmt.Errorf("reading the output of pod %s: %w", name, err))
	}
	if since > int64(len(b)) {
		since = int64(len(b))
	}
	return kubernetes.LogChunk{Data: b[since:], Ended: ended}, nil
}

// annotationRegistered marks a claim dstack did not make.
const annotationRegistered = "dstack.ai/registered"

// CreateVolume implements kubernetes.Cluster.
func (c *Client) CreateVolume(ctx context.Context, req kubernetes.VolumeRequest) (kubernetes.Volume, error) {
	claims := c.cs.CoreV1().PersistentVolumeClaims(c.ns)
	if req.ClaimName != "" {
		pvc, err := claims.Get(ctx, req.ClaimName, metav1.GetOptions{})
		if err != nil {
			return kubernetes.Volume{}, classify(fmt.Errorf("reading claim %s: %w", req.ClaimName, err))
		}
		if t := pvc.Annotations[annotationToken]; t != "" && t != req.Token {
			return kubernetes.Volume{}, fmt.Errorf("claim %s is another dstack volume's (%s)", req.ClaimName, pvc.Annotations[kubernetes.AnnotationAddress])
		}
		m := c.meta(pvc.Name, req.Token, req.Address)
		if pvc.Labels == nil {
			pvc.Labels = map[string]string{}
		}
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		maps.Copy(pvc.Labels, m.Labels)
		maps.Copy(pvc.Annotations, m.Annotations)
		pvc.Labels[kubernetes.LabelVolume] = kubernetes.LabelValue(req.Name)
		pvc.Annotations[annotationRegistered] = "true"
		up, err := claims.Update(ctx, pvc, metav1.UpdateOptions{})
		if err != nil {
			return kubernetes.Volume{}, classify(fmt.Errorf("labelling claim %s: %w", req.ClaimName, err))
		}
		return volume(up), nil
	}
	name := kubernetes.ClaimName(req.Name)
	meta := c.meta(name, req.Token, req.Address)
	meta.Labels[kubernetes.LabelVolume] = kubernetes.LabelValue(req.Name)
	modes := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	if len(req.AccessModes) > 0 {
		modes = modes[:0]
		for _, m := range req.AccessModes {
			modes = append(modes, corev1.PersistentVolumeAccessMode(m))
		}
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: meta, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: modes,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceStorage: *resource.NewQuantity(req.SizeMB<<20, resource.BinarySI)}}}}
	if req.StorageClassName != "" {
		pvc.Spec.StorageClassName = &req.StorageClassName
	}
	made, err := claims.Create(ctx, pvc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		made, err = claims.Get(ctx, name, metav1.GetOptions{})
		if err == nil && made.Annotations[annotationToken] != req.Token {
			return kubernetes.Volume{}, fmt.Errorf("claim %s exists and was not made with token %s", name, req.Token)
		}
	}
	if err != nil {
		return kubernetes.Volume{}, classify(fmt.Errorf("creating claim %s: %w", name, err))
	}
	return volume(made), nil
}

func volume(p *corev1.PersistentVolumeClaim) kubernetes.Volume {
	v := kubernetes.Volume{Name: p.Name, Token: p.Annotations[annotationToken], Address: p.Annotations[kubernetes.AnnotationAddress],
		Phase: string(p.Status.Phase), Registered: p.Annotations[annotationRegistered] == "true"}
	if p.DeletionTimestamp != nil {
		v.Phase = "Deleting"
	}
	if q, ok := p.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		v.SizeMB = q.Value() >> 20
	}
	return v
}

// Volumes implements kubernetes.Cluster.
func (c *Client) Volumes(ctx context.Context, tokens []string) ([]kubernetes.Volume, error) {
	list, err := c.byTokens(ctx, tokens, func(ctx context.Context, sel string) ([]metav1.Object, error) {
		l, err := c.cs.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, err
		}
		out := make([]metav1.Object, len(l.Items))
		for i := range l.Items {
			out[i] = &l.Items[i]
		}
		return out, nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("listing claims: %w", err))
	}
	out := make([]kubernetes.Volume, 0, len(list))
	for _, o := range list {
		out = append(out, volume(o.(*corev1.PersistentVolumeClaim)))
	}
	return out, nil
}

// DeleteVolume implements kubernetes.Cluster.
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	claims := c.cs.CoreV1().PersistentVolumeClaims(c.ns)
	pvc, err := claims.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("reading claim %s: %w", name, err))
	}
	if pvc.Annotations[annotationRegistered] == "true" {
		// Not dstack's: it loses dstack's marks and stays.
		for _, k := range []string{kubernetes.LabelManaged, kubernetes.LabelToken, kubernetes.LabelAddress, kubernetes.LabelVolume} {
			delete(pvc.Labels, k)
		}
		for _, k := range []string{annotationToken, kubernetes.AnnotationAddress, annotationRegistered} {
			delete(pvc.Annotations, k)
		}
		if _, err := claims.Update(ctx, pvc, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return classify(fmt.Errorf("unlabelling claim %s: %w", name, err))
		}
		return nil
	}
	if err := claims.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return classify(fmt.Errorf("deleting claim %s: %w", name, err))
	}
	return nil
}
