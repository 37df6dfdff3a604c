package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Provider is the kubernetes backend. It is safe for concurrent use.
type Provider struct {
	cluster Cluster
	region  string
	poll    time.Duration
	lookup  func(string) (string, bool)
	offline bool
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.JobControl = (*Provider)(nil)
)

// Options configure a Provider.
type Options struct {
	Cluster Cluster
	// Region names the cluster in offers (its kubeconfig context, or
	// "kubernetes").
	Region string
	// PollInterval is how often followed logs are read (500 ms when
	// zero).
	PollInterval time.Duration
	// Lookup resolves a run's env variables declared without a value
	// (os.LookupEnv when nil).
	Lookup func(string) (string, bool)
	// Unconfigured: no backend block names the cluster, so it offers
	// nothing (the objects of tokens are still found and deleted through
	// the kubeconfig of the environment).
	Unconfigured bool
}

// New returns the provider of a cluster.
func New(o Options) *Provider {
	p := &Provider{cluster: o.Cluster, region: o.Region, poll: o.PollInterval, lookup: o.Lookup, offline: o.Unconfigured}
	if p.region == "" {
		p.region = Backend
	}
	if p.poll <= 0 {
		p.poll = 500 * time.Millisecond
	}
	if p.lookup == nil {
		p.lookup = os.LookupEnv
	}
	return p
}

// Close closes the cluster's program when it runs.
func (p *Provider) Close() error {
	if c, ok := p.cluster.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Backend }

// Offers implements providers.Provider: one offer per ready node, with
// what is free on it, at no price (the cluster is paid for already).
func (p *Provider) Offers(ctx context.Context) ([]offers.Offer, error) {
	if p.offline {
		return nil, nil
	}
	nodes, err := p.cluster.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's nodes: %w", err)
	}
	return NodeOffers(p.region, nodes), nil
}

// NodeOffers turns nodes into offers: the instance type is the node's
// name, CPUs whole free cores, and nodes that are not ready or have no
// whole core free are left out.
func NodeOffers(region string, nodes []Node) []offers.Offer {
	out := make([]offers.Offer, 0, len(nodes))
	for _, n := range nodes {
		if o, ok := nodeOffer(region, n); ok {
			out = append(out, o)
		}
	}
	// In the order offers.Match ranks them (all cost nothing): by zone,
	// then name, so that matching them needs no sort.
	slices.SortFunc(out, func(a, b offers.Offer) int {
		return cmp.Or(strings.Compare(a.Zone, b.Zone), strings.Compare(a.InstanceType, b.InstanceType))
	})
	return out
}

func nodeOffer(region string, n Node) (offers.Offer, bool) {
	if !n.Ready || n.CPUMilli < 1000 || n.MemoryMB <= 0 {
		return offers.Offer{}, false
	}
	o := offers.Offer{Backend: Backend, Region: region, Zone: n.Zone, InstanceType: n.Name, CPUs: int(n.CPUMilli / 1000),
		Arch: n.Arch, Memory: resources.Memory(n.MemoryMB), Disk: resources.Memory(n.DiskMB), Availability: offers.Available,
		Divisible: true}
	if o.Arch == "" {
		o.Arch = "x86"
	}
	if n.GPUs > 0 {
		o.GPU = &offers.GPU{Vendor: n.GPUVendor, Name: n.GPUName, MemoryMB: resources.Memory(n.GPUMemoryMB), Count: n.GPUs}
	}
	return o, true
}

// Explain says why spec fits none of the nodes: for each node, what it
// lacks ("node gpu-a-3: gpu: needs H100:8, offer has A100:2 free").
func Explain(region string, nodes []Node, spec resources.Spec) string {
	var lines []string
	for _, n := range nodes {
		o, ok := nodeOffer(region, n)
		switch {
		case !n.Ready:
			lines = append(lines, fmt.Sprintf("node %s: not ready", n.Name))
		case !ok:
			lines = append(lines, fmt.Sprintf("node %s: no whole CPU and memory free (%dm CPU, %dMB)", n.Name, n.CPUMilli, n.MemoryMB))
		default:
			if why := offers.Explain(o, spec); why != "" {
				lines = append(lines, fmt.Sprintf("node %s: %s free", n.Name, why))
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "; ")
}

// pickNode is the node that fits spec best for a job planned on want: of
// want's GPU model where one fits, else any, the one with the least left
// over (GPUs, then CPUs), by name on ties.
func pickNode(region string, nodes []Node, spec resources.Spec, want *offers.Offer) (offers.Offer, bool) {
	fit := offers.Match(NodeOffers(region, nodes), spec, offers.Filter{})
	if len(fit) == 0 {
		return offers.Offer{}, false
	}
	gpuName := func(o offers.Offer) string {
		if o.GPU == nil {
			return ""
		}
		return o.GPU.Name
	}
	gpus := func(o offers.Offer) int {
		if o.GPU == nil {
			return 0
		}
		return o.GPU.Count
	}
	best := -1
	for i, o := range fit {
		if best >= 0 {
			b := fit[best]
			sameB, sameO := gpuName(b) == gpuName(*want), gpuName(o) == gpuName(*want)
			switch {
			case sameB && !sameO:
				continue
			case sameO == sameB && (gpus(o) > gpus(b) || gpus(o) == gpus(b) && o.CPUs >= b.CPUs):
				continue
			}
		}
		best = i
	}
	return fit[best], true
}

// PodName is the name of a job's pod, from its token: lower-case letters,
// digits and dashes, as pod names (DNS labels) need.
func PodName(token string) string { return "dstack-" + dnsLabel(token, 56) }

// ClaimName is the name of the claim dstack makes for the volume named
// name.
func ClaimName(name string) string { return "dstack-" + dnsLabel(name, 56) }

func dnsLabel(s string, max int) string {
	b := make([]byte, 0, len(s))
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, '-')
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	return strings.Trim(string(b), "-")
}

// LabelValue makes s a label value: at most 63 of [A-Za-z0-9-_.],
// beginning and ending with a letter or digit ("task.t[0]" is "task.t-0").
func LabelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-_.")
}

// Create implements providers.Provider.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	switch req.Kind {
	case providers.KindJob:
		return p.createJob(ctx, req)
	case providers.KindVolume:
		return p.createVolume(ctx, req)
	}
	return providers.Object{}, providers.Errorf(providers.Unsupported, "%s: the kubernetes backend does not make %s objects: runs go to the cluster's nodes as pods", req.Address, req.Kind)
}

func (p *Provider) createJob(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if req.Host != "" {
		return providers.Object{}, providers.Errorf(providers.Unsupported, "%s: the kubernetes backend has no fleet instances to run on; a run goes to a node of the cluster", req.Address)
	}
	if req.Offer == nil || req.Offer.InstanceType == "" {
		return providers.Object{}, providers.Errorf(providers.Unsupported, "%s: no node to run on (the offer names none)", req.Address)
	}
	jr, spec, err := p.jobRequest(req)
	if err != nil {
		return providers.Object{}, err
	}
	// The node must still have room: its offer may be stale, and pods of
	// others may have come since.
	nodes, err := p.cluster.Nodes(ctx)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: listing the cluster's nodes: %w", req.Address, err)
	}
	// A pod made before (the same token) is adopted without the check:
	// it counts against its own node.
	if have, err := p.cluster.Jobs(ctx, []string{req.Token}); err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	} else if len(have) == 0 {
		i := slices.IndexFunc(nodes, func(n Node) bool { return n.Name == jr.Node })
		if i < 0 {
			return providers.Object{}, providers.Errorf(providers.NotFound, "%s: node %s is not in the cluster", req.Address, jr.Node)
		}
		if why := Explain(p.region, nodes[i:i+1], spec); why != "" {
			// The plan placed runs on offers as if each were a machine of
			// its own; a node fills up. Another node that fits takes the
			// job, one of the same GPU model first.
			other, ok := pickNode(p.region, nodes, spec, req.Offer)
			if !ok {
				return providers.Object{}, providers.Errorf(providers.NoCapacity, "%s: no node of the cluster has room: %s", req.Address, Explain(p.region, nodes, spec))
			}
			jr.Node = other.InstanceType
			req.Offer = &other
		}
	}
	j, err := p.cluster.CreateJob(ctx, jr)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	o := p.jobObject(j)
	o.Offer = req.Offer
	return o, nil
}

// jobRequest builds a job's pod from its run: the run's image and
// commands by its shell, its env (in a Secret), the resources' lower
// bounds as requests and limits, shm as a memory emptyDir, its volumes'
// claims, and stop_duration as the grace period.
func (p *Provider) jobRequest(req providers.CreateRequest) (JobRequest, resources.Spec, error) {
	spec, err := lang.DecodeSpec(req.Spec)
	if err != nil {
		return JobRequest{}, resources.Spec{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	var (
		cfg      *lang.RunConfig
		profile  *lang.Profile
		commands []string
		ports    []int
	)
	switch s := spec.(type) {
	case *lang.Task:
		cfg, profile, commands = &s.RunConfig, &s.Profile, s.Commands
		for _, pt := range s.Ports {
			ports = append(ports, pt.ContainerPort)
		}
	case *lang.Service:
		cfg, profile, commands = &s.RunConfig, &s.Profile, s.Commands
		if s.Port != nil {
			ports = append(ports, s.Port.ContainerPort)
		}
	case *lang.DevEnvironment:
		cfg, profile = &s.RunConfig, &s.Profile
		commands = append(slices.Clone(s.Init), "while true; do sleep 3600; done")
	default:
		return JobRequest{}, resources.Spec{}, fmt.Errorf("%s: a job of a %s; only tasks, services and dev environments run jobs", req.Address, spec.Kind())
	}
	if cfg.Image == "" {
		return JobRequest{}, resources.Spec{}, providers.Errorf(providers.Unsupported, "%s: a run on kubernetes needs an image", req.Address)
	}
	if cfg.Privileged {
		return JobRequest{}, resources.Spec{}, providers.Errorf(providers.Unsupported, "%s: privileged runs are not made on kubernetes", req.Address)
	}
	env, err := cfg.Env.Resolve(p.lookup)
	if err != nil {
		return JobRequest{}, resources.Spec{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	jr := JobRequest{Name: PodName(req.Token), Token: req.Token, Address: req.Address, Node: req.Offer.InstanceType,
		Image: cfg.Image, WorkingDir: cfg.WorkingDir, SecretEnv: env, Ports: ports,
		Env: maps.Clone(req.Env)}
	if jr.Env == nil {
		jr.Env = map[string]string{}
	}
	if s, ok := spec.(*lang.Service); ok && s.Port != nil {
		if _, set := env["PORT"]; !set {
			jr.Env["PORT"] = strconv.Itoa(s.Port.ContainerPort)
		}
	}
	js := agent.JobSpec{Commands: commands, Shell: cfg.Shell}
	if cfg.Entrypoint != "" {
		jr.Command = strings.Fields(cfg.Entrypoint)
		jr.Args = commands
	} else if len(commands) > 0 {
		jr.Command = js.ShellCommand()
	}
	var rs resources.Spec
	if cfg.Resources != nil {
		rs = *cfg.Resources
	}
	full := rs.WithDefaults()
	if c := full.CPU; c != nil && c.Count.Min != nil {
		jr.CPUMilli = int64(*c.Count.Min) * 1000
	}
	if m := full.Memory; m != nil && m.Min != nil {
		jr.MemoryMB = int64(*m.Min)
	}
	if g := full.GPU; g != nil && g.Count.Min != nil && *g.Count.Min > 0 {
		jr.GPUs = *g.Count.Min
		jr.GPUVendor = "nvidia"
		if req.Offer.GPU != nil && req.Offer.GPU.Vendor != "" {
			jr.GPUVendor = req.Offer.GPU.Vendor
		}
	}
	if rs.SharedMemory != nil {
		jr.ShmMB = int64(*rs.SharedMemory)
	}
	for _, v := range cfg.Volumes {
		switch {
		case v.InstancePath != "":
			return JobRequest{}, resources.Spec{}, providers.Errorf(providers.Unsupported, "%s: instance volumes (%s) are not mounted on kubernetes: use a volume with backend: kubernetes", req.Address, v.InstancePath)
		case len(v.Name) > 0:
			jr.Volumes = append(jr.Volumes, JobVolume{Volume: v.Name[0], Path: v.Path})
		}
	}
	if profile.StopDuration != nil && *profile.StopDuration >= 0 {
		g := int64(*profile.StopDuration)
		jr.GraceSeconds = &g
	}
	return jr, full, nil
}

func (p *Provider) jobObject(j Job) providers.Object {
	o := providers.Object{Kind: providers.KindJob, ID: j.Name, Token: j.Token, Address: j.Address,
		Attributes: map[string]string{"node": j.Node, providers.AttrRuntime: "kubernetes"}}
	if j.IP != "" {
		o.Attributes[providers.AttrIP] = j.IP
	}
	switch {
	case j.Deleting:
		o.Status, o.Reason = providers.StatusTerminated, "deleted"
	case j.Phase == "Running":
		o.Status = providers.StatusRunning
	case j.Phase == "Succeeded":
		o.Status = providers.StatusDone
	case j.Phase == "Failed":
		o.Status, o.Reason = providers.StatusFailed, j.Reason
	default:
		o.Status, o.Reason = providers.StatusProvisioning, j.Reason
	}
	if j.ExitCode != nil {
		o.Attributes[providers.AttrExitCode] = strconv.Itoa(*j.ExitCode)
		if o.Status == providers.StatusFailed && o.Reason == "" {
			o.Reason = fmt.Sprintf("exit code %d", *j.ExitCode)
		}
	}
	return o
}

// Describe implements providers.Provider.
func (p *Provider) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	out := map[string]providers.Object{}
	if len(tokens) == 0 {
		return out, nil
	}
	jobs, err := p.cluster.Jobs(ctx, tokens)
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's pods: %w", err)
	}
	for _, j := range jobs {
		out[j.Token] = p.jobObject(j)
	}
	vols, err := p.cluster.Volumes(ctx, tokens)
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's claims: %w", err)
	}
	for _, v := range vols {
		out[v.Token] = volumeObject(v)
	}
	return out, nil
}

// Delete implements providers.Provider: a job's pod goes with its grace
// period (stop_duration); a claim dstack made is deleted.
func (p *Provider) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	switch kind {
	case providers.KindJob:
		return p.cluster.DeleteJob(ctx, id, nil)
	case providers.KindVolume:
		return p.cluster.DeleteVolume(ctx, id)
	}
	return fmt.Errorf("the kubernetes backend has no %s objects", kind)
}

// StopJob implements providers.JobControl: the pod is deleted with its
// grace period, or at once with abort.
func (p *Provider) StopJob(ctx context.Context, id string, abort bool) error {
	var grace *int64
	if abort {
		zero := int64(0)
		grace = &zero
	}
	return p.cluster.DeleteJob(ctx, id, grace)
}

// Logs implements providers.JobControl: the pod's output through the API
// server, read again every poll interval while followed, until the pod
// has ended and its output is drained.
func (p *Provider) Logs(ctx context.Context, id string, since int64, follow bool) (io.ReadCloser, error) {
	first, err := p.cluster.Logs(ctx, id, since)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		chunk, off := first, since
		for {
			if len(chunk.Data) > 0 {
				if _, err := pw.Write(chunk.Data); err != nil {
					return
				}
				off += int64(len(chunk.Data))
			}
			if !follow || chunk.Ended {
				pw.Close()
				return
			}
			select {
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			case <-time.After(p.poll):
			}
			var err error
			if chunk, err = p.cluster.Logs(ctx, id, off); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr, nil
}

func (p *Provider) createVolume(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	spec, err := lang.DecodeSpec(req.Spec)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	v, ok := spec.(*lang.Volume)
	if !ok {
		return providers.Object{}, fmt.Errorf("%s: a volume of a %s", req.Address, spec.Kind())
	}
	if v.Name == "" {
		return providers.Object{}, fmt.Errorf("%s: a kubernetes volume needs a name (runs mount it by name)", req.Address)
	}
	vr := VolumeRequest{Name: v.Name, Token: req.Token, Address: req.Address, ClaimName: v.ClaimName,
		StorageClassName: v.StorageClassName, AccessModes: v.AccessModes}
	if v.ClaimName == "" {
		if v.Size == nil || *v.Size <= 0 {
			return providers.Object{}, fmt.Errorf("%s: a new kubernetes volume needs a size (or claim_name for an existing claim)", req.Address)
		}
		vr.SizeMB = int64(*v.Size)
	}
	made, err := p.cluster.CreateVolume(ctx, vr)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	return volumeObject(made), nil
}

func volumeObject(v Volume) providers.Object {
	o := providers.Object{Kind: providers.KindVolume, ID: v.Name, Token: v.Token, Address: v.Address, Status: providers.StatusRunning,
		Attributes: map[string]string{"claim": v.Name}}
	switch v.Phase {
	case "Pending":
		// A claim of a storage class that binds on first use waits for
		// its pod: it is usable.
		o.Reason = "pending"
	case "Lost":
		o.Status, o.Reason = providers.StatusFailed, "its volume is lost"
	case "Deleting":
		o.Status, o.Reason = providers.StatusTerminated, "deleted"
	}
	if v.Registered {
		o.Attributes[providers.AttrRegistered] = "true"
	}
	return o
}
