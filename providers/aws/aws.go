// Package aws is dstack's aws backend: fleets' instances on Amazon EC2,
// with dstack's agent installed on them over SSH, and EBS volumes.
//
// The provider is split where the AWS SDK begins. What talks to EC2 is a
// [Cloud]: package ec2api implements it with the SDK, and dstack runs
// that implementation in a program of its own, dstack-provider-aws,
// spoken to over its standard input and output ([StartProcess]), as it
// does the state backends' SDKs (state/backendproc). This package, which
// dstack links, needs nothing but the standard library and dstack's own
// SSH provider: an EC2 instance, once booted, is an SSH host like an SSH
// fleet's, so the agent is installed, reached (one pooled SSH connection,
// its host key read from the instance's console output, where cloud-init
// prints it, and pinned in state) and its jobs run, log, attach and
// forward ports exactly as there.
//
// Every instance is launched with a ClientToken made of the idempotency
// token and the offer, and tagged dstack:token and dstack:address; Describe finds
// instances by that tag, so an instance whose launch was recorded as an
// intent but never seen to finish is adopted.
package aws

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
)

// Instance attributes the provider records (besides the SSH provider's).
const (
	AttrRegion     = "aws_region"
	AttrZone       = "aws_zone"
	AttrPublicIP   = "public_ip"
	AttrInstanceID = "aws_instance_id"
)

// Options configure the provider.
type Options struct {
	// Cloud is EC2.
	Cloud Cloud
	// KeyPath, when set, is the one private key instances of every
	// project accept for root (the public half goes into their
	// user-data); it is made on first use.
	KeyPath string
	// KeyDir holds a private key per project (CreateRequest.Project):
	// KeyDir/PROJECT/id_ed25519, made on first use; a request without a
	// project uses KeyDir/id_ed25519. Ignored when KeyPath is set.
	KeyDir string
	// AgentBinary is the agent binary to install; empty: the SSH
	// provider's choice (this program, or DSTACK_AGENT_BINARY).
	AgentBinary string
	// SSHUser is the user to log in as (default root).
	SSHUser string
	// BootTimeout bounds how long a new instance may take to run and
	// accept SSH (default 10 minutes).
	BootTimeout time.Duration
	// PollInterval is how often a booting instance is looked at (default
	// 2 s).
	PollInterval time.Duration
	// IMDSEndpoint is the instance metadata service the agent of a spot
	// instance watches for the interruption notice; empty: EC2's own.
	// For the fake EC2, whose instances are not on EC2.
	IMDSEndpoint string
	// ConsoleWait bounds how long a new instance's console output is
	// waited for to show its SSH host keys (default 3 minutes); without
	// them, its key is trusted on first use, with a warning.
	ConsoleWait time.Duration
	// DeviceWait bounds, in seconds, how long an instance waits for an
	// attached volume's block device to appear (default 120).
	DeviceWait int
}

// Provider is the aws backend.
type Provider struct {
	cloud Cloud
	ssh   *sshprov.Provider
	opts  Options

	keyMu sync.Mutex
	keys  map[string]string // private key path → authorized_keys line

	mu      sync.Mutex
	objects map[string]providers.Object // token → object, recalled or made
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.JobControl = (*Provider)(nil)
	_ providers.Execer     = (*Provider)(nil)
	_ providers.Recaller   = (*Provider)(nil)
	_ providers.PortDialer = (*Provider)(nil)
)

// New returns the provider.
func New(opts Options) (*Provider, error) {
	if opts.Cloud == nil {
		return nil, errors.New("aws: no Cloud")
	}
	opts.SSHUser = cmp.Or(opts.SSHUser, "root")
	opts.BootTimeout = cmp.Or(opts.BootTimeout, 10*time.Minute)
	opts.PollInterval = cmp.Or(opts.PollInterval, 2*time.Second)
	opts.DeviceWait = cmp.Or(opts.DeviceWait, 120)
	opts.ConsoleWait = cmp.Or(opts.ConsoleWait, 3*time.Minute)
	// Hosts' keys come from their console output (first use only as a
	// fallback) and are pinned in state, never written to the user's
	// known_hosts: an EC2 address is reused.
	sp, err := sshprov.New(sshprov.Options{AgentBinary: opts.AgentBinary, StartTimeout: time.Minute})
	if err != nil {
		return nil, err
	}
	return &Provider{cloud: opts.Cloud, ssh: sp, opts: opts, objects: map[string]providers.Object{}, keys: map[string]string{}}, nil
}

// Close closes the SSH connections and the cloud when it is a process.
func (p *Provider) Close() error {
	err := p.ssh.Close()
	if c, ok := p.cloud.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Backend }

// Offers implements providers.Provider.
func (p *Provider) Offers(ctx context.Context) ([]offers.Offer, error) { return p.cloud.Offers(ctx) }

// keyPath is the private key the project's instances accept.
func (p *Provider) keyPath(project string) (string, error) {
	switch {
	case p.opts.KeyPath != "":
		return p.opts.KeyPath, nil
	case p.opts.KeyDir == "":
		return "", nil // ensureKey says what to set
	case project == "":
		return filepath.Join(p.opts.KeyDir, "id_ed25519"), nil
	case project != filepath.Base(project) || project == "." || project == ".." || strings.ContainsAny(project, `/\`):
		return "", fmt.Errorf("the project %q cannot name a key directory", project)
	}
	return filepath.Join(p.opts.KeyDir, project, "id_ed25519"), nil
}

// publicKey returns the private key path of the project's key and the
// authorized_keys line of its public half, making the key on first use.
func (p *Provider) publicKey(project string) (path, line string, err error) {
	path, err = p.keyPath(project)
	if err != nil {
		return "", "", err
	}
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	if line, ok := p.keys[path]; ok {
		return path, line, nil
	}
	if line, err = ensureKey(path); err != nil {
		return "", "", err
	}
	p.keys[path] = line
	return path, line, nil
}

// ensureKey reads the ed25519 key at path, or makes it.
func ensureKey(path string) (string, error) {
	if path == "" {
		return "", errors.New("the aws backend has no SSH key file: set the backend's ssh_key_dir, or DSTACK_AWS_SSH_KEY")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return "", gerr
		}
		block, merr := ssh.MarshalPrivateKey(priv, "dstack aws")
		if merr != nil {
			return "", merr
		}
		b = pem.EncodeToMemory(block)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("making the aws backend's SSH key: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return "", fmt.Errorf("making the aws backend's SSH key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("making the aws backend's SSH key: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("reading the aws backend's SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return "", fmt.Errorf("the aws backend's SSH key %s: %w", path, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}

func (p *Provider) remember(o providers.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.objects[o.Token] = o
}

func (p *Provider) recalled(tok string) (providers.Object, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.objects[tok]
	return o, ok
}

// byID returns the instance or volume with provider ID id. Of a volume
// both made and registered (a volume_id naming it), the registration
// wins: deleting by ID then keeps the volume rather than destroying
// what another address still names.
func (p *Provider) byID(kind providers.ObjectKind, id string) (providers.Object, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var found providers.Object
	ok := false
	for _, o := range p.objects {
		if o.Kind == kind && o.ID == id {
			if !ok || o.Attributes[providers.AttrRegistered] == "true" {
				found, ok = o, true
			}
		}
	}
	return found, ok
}

// Create implements providers.Provider.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	switch req.Kind {
	case providers.KindInstance:
		return p.createInstance(ctx, req)
	case providers.KindVolume:
		return p.createVolume(ctx, req)
	case providers.KindJob:
		if req.Host == "" {
			return p.createOwnMachineJob(ctx, req)
		}
		host, ok := p.byID(providers.KindInstance, req.Host)
		if !ok {
			return providers.Object{}, providers.Errorf(providers.NotFound, "%s: instance %q is not known (it is not in state)", req.Address, req.Host)
		}
		vols, err := p.mountedVolumes(req.Spec)
		if err != nil {
			return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
		}
		attached, err := p.attach(ctx, vols, host.Attributes[AttrRegion], host.Attributes[AttrZone], host.ID)
		if err != nil {
			return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
		}
		if req, err = p.mountFor(ctx, req, host.ID, attached); err != nil {
			return providers.Object{}, err
		}
		o, err := p.ssh.Create(ctx, req)
		if err != nil {
			return o, err
		}
		if len(attached) > 0 {
			o.Attributes[AttrRegion] = host.Attributes[AttrRegion]
			setAttached(o.Attributes, attached)
		}
		p.remember(o)
		return o, nil
	}
	return providers.Object{}, providers.Errorf(providers.Unsupported, "the aws backend does not make %s objects", req.Kind)
}

// launchRequest builds the EC2 launch of an instance request.
func (p *Provider) launchRequest(req providers.CreateRequest) (LaunchRequest, error) {
	o := req.Offer
	if o == nil || o.InstanceType == "" || o.Region == "" {
		return LaunchRequest{}, fmt.Errorf("%s: no offer to launch", req.Address)
	}
	_, key, err := p.publicKey(req.Project)
	if err != nil {
		return LaunchRequest{}, err
	}
	lr := LaunchRequest{Token: req.Token, Address: req.Address, Region: o.Region, Zone: o.Zone, InstanceType: o.InstanceType,
		Arch: o.Arch, Spot: o.Spot, AuthorizedKey: key}
	if o.GPU != nil {
		lr.GPUVendor = o.GPU.Vendor
	}
	// What a fleet and a run (a job on a machine of its own) both say of
	// their machines.
	var f struct {
		Resources   *resources.Spec   `json:"resources"`
		MaxPrice    *float64          `json:"max_price"`
		Tags        map[string]string `json:"tags"`
		Reservation string            `json:"reservation"`
		Placement   string            `json:"placement"`
	}
	if err := json.Unmarshal(req.Spec, &f); err != nil {
		return LaunchRequest{}, fmt.Errorf("%s: reading its configuration: %w", req.Address, err)
	}
	if f.MaxPrice != nil && o.Spot {
		lr.MaxPrice = *f.MaxPrice
	}
	if f.Resources != nil && f.Resources.Disk != nil && f.Resources.Disk.Size.Min != nil && *f.Resources.Disk.Size.Min > 0 {
		lr.DiskGB = int((*f.Resources.Disk.Size.Min + 1023) / 1024)
	}
	lr.Tags = f.Tags
	if f.Placement == "cluster" {
		lr.PlacementGroup = "dstack-" + fleetName(req.Address)
		lr.EFA = EFACapable(o.InstanceType)
	}
	lr.Reservation = f.Reservation
	return lr, nil
}

// fleetName is the fleet of an instance address ("fleet.gpus[1]" → "gpus").
func fleetName(addr string) string {
	addr = strings.TrimPrefix(addr, "fleet.")
	if i := strings.IndexByte(addr, '['); i >= 0 {
		addr = addr[:i]
	}
	return addr
}

func (p *Provider) createInstance(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	lr, err := p.launchRequest(req)
	if err != nil {
		return providers.Object{}, err
	}
	progress := func(msg string) {
		if req.Progress != nil {
			req.Progress(msg)
		}
	}
	progress(fmt.Sprintf("launching a %s in %s", lr.InstanceType, cmp.Or(lr.Zone, lr.Region)))
	inst, err := p.cloud.Launch(ctx, lr)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	inst, err = p.waitRunning(ctx, inst, progress)
	if err != nil {
		p.terminateAfter(inst, err)
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	o, err := p.install(ctx, req, inst, progress)
	if err != nil {
		p.terminateAfter(inst, err)
		return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, inst.ID, err)
	}
	return o, nil
}

// terminateAfter terminates an instance whose creation failed, so that
// nothing of the request is left.
func (p *Provider) terminateAfter(inst Instance, cause error) {
	if inst.ID == "" || providers.CodeOf(cause) == "" && errors.Is(cause, context.Canceled) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = p.cloud.Terminate(ctx, inst.Region, inst.ID)
}

// waitRunning waits until EC2 says the instance runs and has the address
// dstack reaches it at.
func (p *Provider) waitRunning(ctx context.Context, inst Instance, progress func(string)) (Instance, error) {
	deadline := time.Now().Add(p.opts.BootTimeout)
	said := ""
	for {
		switch inst.State {
		case "running":
			if p.reachAddr(inst) != "" {
				return inst, nil
			}
		case "shutting-down", "terminated", "stopping", "stopped":
			if inst.Interrupted() || inst.Spot {
				// Spot capacity taken back before it ran.
				return inst, providers.Errorf(providers.NoCapacity, "%s ended while booting (%s)", inst.ID, cmp.Or(inst.StateReason, inst.State))
			}
			return inst, fmt.Errorf("%s ended while booting (%s)", inst.ID, cmp.Or(inst.StateReason, inst.State))
		}
		if msg := fmt.Sprintf("%s is %s", inst.ID, inst.State); msg != said {
			progress(msg)
			said = msg
		}
		if time.Now().After(deadline) {
			return inst, fmt.Errorf("%s did not run within %s (it is %s)", inst.ID, p.opts.BootTimeout, inst.State)
		}
		select {
		case <-ctx.Done():
			return inst, ctx.Err()
		case <-time.After(p.opts.PollInterval):
		}
		found, err := p.cloud.Instances(ctx, []string{inst.Token})
		if err != nil && providers.CodeOf(err) != providers.RateLimited {
			return inst, err
		}
		for _, f := range found {
			if f.ID == inst.ID {
				inst = f
			}
		}
	}
}

// agentFlags are the flags of the agent on inst: on a spot instance it
// watches the instance metadata service for the interruption notice and
// stops the jobs within their stop_duration (see package agentd), so
// that their runs' retry policies can place them again.
func agentFlags(inst Instance, imdsEndpoint string) []string {
	if !inst.Spot {
		return nil
	}
	if imdsEndpoint != "" {
		return []string{"-watch-interruptions", "-imds-endpoint", imdsEndpoint}
	}
	return []string{"-watch-interruptions"}
}

// reachAddr is where dstack reaches the instance: its public address, or
// its private one when it has none (public_ips: false).
func (p *Provider) reachAddr(inst Instance) string { return cmp.Or(inst.PublicIP, inst.PrivateIP) }

// install installs the agent on a running instance over SSH, retrying
// while its sshd does not answer yet (cloud-init still boots).
func (p *Provider) install(ctx context.Context, req providers.CreateRequest, inst Instance, progress func(string)) (providers.Object, error) {
	keyPath, _, err := p.publicKey(req.Project)
	if err != nil {
		return providers.Object{}, err
	}
	t := sshprov.Target{Host: p.reachAddr(inst), Port: 22, User: p.opts.SSHUser, IdentityFile: keyPath,
		AgentFlags: agentFlags(inst, p.opts.IMDSEndpoint)}
	if keys, err := p.consoleHostKeys(ctx, inst, progress); err != nil {
		return providers.Object{}, err
	} else if len(keys) > 0 {
		p.ssh.VouchHostKeys(t, keys, "the console output of "+inst.ID)
	} else {
		progress(fmt.Sprintf("warning: the console output of %s shows no SSH host keys after %s: trusting the key %s shows on first connection", inst.ID, p.opts.ConsoleWait, t.Host))
	}
	progress(fmt.Sprintf("installing the agent on %s (%s)", inst.ID, t.Host))
	deadline := time.Now().Add(p.opts.BootTimeout)
	for {
		o, err := p.ssh.Install(ctx, req, inst.ID, t)
		if err == nil {
			o = p.instanceObject(o, req, inst)
			p.remember(o)
			return o, nil
		}
		var hke *sshprov.HostKeyError
		if errors.As(err, &hke) || time.Now().After(deadline) || ctx.Err() != nil {
			return providers.Object{}, err
		}
		select {
		case <-ctx.Done():
			return providers.Object{}, ctx.Err()
		case <-time.After(p.opts.PollInterval):
		}
	}
}

// instanceObject turns the SSH provider's instance into the aws one: the
// offer launched (with its price), the instance's addresses and place.
func (p *Provider) instanceObject(o providers.Object, req providers.CreateRequest, inst Instance) providers.Object {
	off := *req.Offer
	off.Zone = cmp.Or(inst.Zone, off.Zone)
	o.Offer = &off
	o.Status = providers.StatusRunning
	o.Attributes[AttrRegion], o.Attributes[AttrZone] = inst.Region, inst.Zone
	o.Attributes[AttrPublicIP] = inst.PublicIP
	o.Attributes[providers.AttrIP] = cmp.Or(inst.PrivateIP, inst.PublicIP)
	o.Attributes[providers.AttrHostname] = inst.ID
	return o
}

// Recall implements providers.Recaller.
func (p *Provider) Recall(objs []providers.Object) {
	all := objs
	for _, o := range objs {
		if m, ok := ownMachine(o); ok {
			all = append(all[:len(all):len(all)], m) // how its machine is reached
		}
	}
	p.ssh.Recall(all)
	for _, o := range objs {
		if o.Token != "" {
			if o.Kind == providers.KindJob && o.Attributes[providers.AttrHostID] != "" {
				o.Host = o.Attributes[providers.AttrHostID]
			}
			p.remember(o)
		}
	}
}

// Describe implements providers.Provider.
func (p *Provider) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	out := map[string]providers.Object{}
	// Tokens of unknown kind (an intent never seen made) are looked for
	// among both instances and volumes.
	var jobs, insts, vols, unknown []string
	for _, tok := range tokens {
		o, ok := p.recalled(tok)
		switch {
		case ok && o.Kind == providers.KindJob:
			jobs = append(jobs, tok)
		case ok && o.Kind == providers.KindVolume:
			vols = append(vols, tok)
		case ok && o.Kind == providers.KindInstance:
			insts = append(insts, tok)
		default:
			unknown = append(unknown, tok)
		}
	}
	if len(insts)+len(unknown) > 0 {
		found, err := p.cloud.Instances(ctx, append(insts, unknown...))
		if err != nil {
			return nil, err
		}
		var running []string
		for _, inst := range found {
			if prev, ok := out[inst.Token]; ok && prev.Live() {
				continue // a live one over a terminated one of the same token
			}
			o := p.describeInstance(inst)
			out[inst.Token] = o
			if rec, ok := p.recalled(inst.Token); ok && rec.ID == inst.ID && o.Status == providers.StatusRunning {
				running = append(running, inst.Token)
			}
		}
		// A running instance whose agent is down (or that does not
		// answer) is unknown: no run is placed there. It is not failed:
		// the planner forgets a failed instance, and this one would run
		// on, and be billed, outside dstack's state.
		if len(running) > 0 {
			agents, err := p.ssh.Describe(ctx, running)
			if err != nil {
				return nil, err
			}
			for _, tok := range running {
				if a, ok := agents[tok]; ok && (a.Status == providers.StatusFailed || a.Status == providers.StatusUnknown) {
					o := out[tok]
					// The plan shows "instance ID of ADDRESS <reason>".
					o.Status = providers.StatusUnknown
					o.Reason = "is running on EC2 (and billed) but unusable: " + cmp.Or(a.Reason, "its agent does not answer") +
						"; no run is placed there until its agent answers, and destroy terminates it"
					out[tok] = o
				}
			}
		}
	}
	if len(vols)+len(unknown) > 0 {
		if err := p.describeVolumes(ctx, unknown, vols, out); err != nil {
			return nil, err
		}
	}
	if len(jobs) > 0 {
		got, err := p.ssh.Describe(ctx, jobs)
		if err != nil {
			return nil, err
		}
		hosts := map[string]providers.Object{} // instance token → as described
		for tok, o := range got {
			if rec, ok := p.recalled(tok); ok {
				for _, k := range []string{AttrAttached, AttrMounted, AttrRegion} {
					if v := rec.Attributes[k]; v != "" && o.Attributes[k] == "" {
						if o.Attributes == nil {
							o.Attributes = map[string]string{}
						}
						o.Attributes[k] = v
					}
				}
				if _, own := ownMachine(rec); own {
					o = onMachine(o, rec.Attributes)
					if o.Status == providers.StatusUnknown {
						// Its machine may be gone, and the job with it.
						found, err := p.cloud.Instances(ctx, []string{tok})
						if err == nil && (len(found) == 0 || !p.describeInstance(found[0]).Live()) {
							reason := "gone"
							if len(found) > 0 {
								reason = p.describeInstance(found[0]).Reason
							}
							o.Status, o.Reason = providers.StatusTerminated, "its machine ended: "+reason
						}
					}
					out[tok] = o
					continue
				}
			}
			// A job whose instance EC2 ended has ended with it.
			if host, ok := p.byID(providers.KindInstance, o.Host); ok && o.Status == providers.StatusUnknown {
				h, ok := out[host.Token]
				if !ok {
					if h, ok = hosts[host.Token]; !ok {
						h = host
						if found, err := p.cloud.Instances(ctx, []string{host.Token}); err == nil && len(found) > 0 {
							h = p.describeInstance(found[0])
						} else if err == nil {
							h.Status, h.Reason = providers.StatusTerminated, "gone"
						}
						hosts[host.Token] = h
					}
				}
				if !h.Live() {
					o.Status, o.Reason = providers.StatusTerminated, "its instance ended: "+h.Reason
				}
			}
			out[tok] = o
		}
	}
	return out, nil
}

// describeInstance is an instance as EC2 describes it, with what dstack
// recorded of it.
func (p *Provider) describeInstance(inst Instance) providers.Object {
	o, ok := p.recalled(inst.Token)
	if !ok || o.ID != inst.ID {
		o = providers.Object{Kind: providers.KindInstance, ID: inst.ID, Token: inst.Token, Address: inst.Address,
			Attributes: map[string]string{AttrRegion: inst.Region, AttrZone: inst.Zone, AttrPublicIP: inst.PublicIP,
				providers.AttrIP: cmp.Or(inst.PrivateIP, inst.PublicIP), providers.AttrHostname: inst.ID}}
	}
	o.Reason = ""
	switch inst.State {
	case "pending":
		o.Status = providers.StatusProvisioning
	case "running":
		o.Status = providers.StatusRunning
	case "shutting-down", "terminated":
		o.Status = providers.StatusTerminated
		o.Reason = "terminated"
		if inst.Interrupted() {
			o.Reason = "spot interruption"
		} else if inst.StateReason != "" {
			o.Reason = "terminated (" + inst.StateReason + ")"
		}
	default: // stopping, stopped
		// Not failed, which the planner forgets: a stopped instance
		// keeps its volumes (and their cost) until it is terminated.
		o.Status, o.Reason = providers.StatusUnknown, "the instance is "+inst.State+" (stopped outside dstack: start it, or destroy to terminate it)"
	}
	return o
}

// Delete implements providers.Provider.
func (p *Provider) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	switch kind {
	case providers.KindInstance:
		o, ok := p.byID(providers.KindInstance, id)
		region := o.Attributes[AttrRegion]
		if !ok || region == "" {
			return fmt.Errorf("instance %s is not known (it is not in state)", id)
		}
		return p.cloud.Terminate(ctx, region, id)
	case providers.KindVolume:
		return p.deleteVolume(ctx, id)
	case providers.KindJob:
		err := p.ssh.Delete(ctx, kind, id)
		if o, ok := p.recalled(id); ok && err == nil {
			if derr := p.detach(ctx, o); derr != nil {
				return derr
			}
		}
		if o, ok := p.recalled(id); ok {
			if m, own := ownMachine(o); own {
				// Its machine goes with it, and takes the job with it
				// where the agent could not be asked.
				return p.cloud.Terminate(ctx, m.Attributes[AttrRegion], m.ID)
			}
		}
		if err == nil {
			return nil
		}
		// A job whose instance EC2 ended is gone with it.
		if o, ok := p.recalled(id); ok {
			if host, ok := p.byID(providers.KindInstance, o.Host); ok {
				found, derr := p.cloud.Instances(ctx, []string{host.Token})
				if derr == nil && (len(found) == 0 || !p.describeInstance(found[0]).Live()) {
					return nil
				}
			}
		}
		return err
	}
	return fmt.Errorf("the aws backend has no %s objects", kind)
}

// Logs implements providers.JobControl.
func (p *Provider) Logs(ctx context.Context, id string, since int64, follow bool) (io.ReadCloser, error) {
	return p.ssh.Logs(ctx, id, since, follow)
}

// StopJob implements providers.JobControl.
func (p *Provider) StopJob(ctx context.Context, id string, abort bool) error {
	return p.ssh.StopJob(ctx, id, abort)
}

// Exec implements providers.Execer.
func (p *Provider) Exec(ctx context.Context, id string, command []string, tty bool, stdin io.Reader, stdout io.Writer) (int, error) {
	return p.ssh.Exec(ctx, id, command, tty, stdin, stdout)
}

// DialPort implements providers.PortDialer.
func (p *Provider) DialPort(ctx context.Context, jobID string, hostPort int) (net.Conn, error) {
	return p.ssh.DialPort(ctx, jobID, hostPort)
}
