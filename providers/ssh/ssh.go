// Package ssh is the provider of on-prem fleets: existing hosts reached
// over SSH (a fleet with ssh_config). Making an instance of such a fleet
// means connecting to the host (checking its host key), installing the
// host agent dstack was built with for the host's OS and architecture,
// starting it, and reading its inventory; removing it stops its jobs and
// the agent and deletes what dstack put there.
//
// Everything after that (the planner's calls to the agent, `dstack logs`,
// `dstack attach` and its port forwards) goes through one pooled SSH
// connection per host to the agent's loopback port: the agent is never
// reachable from the network.
//
// The provider finds a host from what the state recorded of its instance
// (the SSH target, the trusted host key), which the planner hands it with
// Recall before it asks about them.
package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Backend is the backend name of SSH fleets' instances.
const Backend = "ssh"

// Instance attributes the provider records.
const (
	attrTarget      = "ssh_target"    // the Target, as JSON
	attrHostKey     = "host_key"      // the host's key, authorized_keys format
	attrJumpHostKey = "jump_host_key" // the proxy jump's key
)

// Options configure the provider.
type Options struct {
	// KnownHosts are known_hosts files whose keys are trusted first
	// (missing files are skipped); typically ~/.ssh/known_hosts.
	KnownHosts []string
	// AgentBinary is the agent binary to upload to every host; empty:
	// see Binaries.
	AgentBinary string
	// StartTimeout bounds how long a new agent may take to answer.
	StartTimeout time.Duration
}

// Provider is the ssh backend.
type Provider struct {
	pool    *Pool
	bins    *Binaries
	timeout time.Duration

	mu      sync.Mutex
	hosts   map[string]*host            // instance ID (the hostname) → host
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
	pool, err := NewPool(opts.KnownHosts)
	if err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &Provider{pool: pool, bins: &Binaries{Override: opts.AgentBinary}, timeout: timeout,
		hosts: map[string]*host{}, objects: map[string]providers.Object{}}, nil
}

// ForUser returns the provider as a user's dstack sets it up: trusting
// home's ~/.ssh/known_hosts first, and uploading $DSTACK_AGENT_BINARY
// (as lookup finds it) when it is set.
func ForUser(home string, lookup func(string) (string, bool)) (*Provider, error) {
	var known []string
	if home != "" {
		known = append(known, filepath.Join(home, ".ssh", "known_hosts"))
	}
	bin, _ := lookup("DSTACK_AGENT_BINARY")
	return New(Options{KnownHosts: known, AgentBinary: bin})
}

// Close closes the SSH connections.
func (p *Provider) Close() error { return p.pool.Close() }

// Name implements providers.Provider.
func (p *Provider) Name() string { return Backend }

// Offers implements providers.Provider: an SSH fleet's hosts are not for
// sale; runs are placed on them as fleet instances.
func (p *Provider) Offers(context.Context) ([]offers.Offer, error) { return nil, nil }

// host is one SSH host and its agent.
type host struct {
	p      *Provider
	target Target

	mu     sync.Mutex
	ip     string // where other hosts reach it (its instance's "ip")
	addr   string // the agent's loopback address on the host
	token  string
	client *client.Client
	hc     *http.Client // reaches 127.0.0.1 ports on the host
}

func (p *Provider) host(id string, t *Target) *host {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[id]
	if h == nil {
		if t == nil {
			return nil
		}
		h = &host{p: p, target: *t}
		tr := &http.Transport{DialContext: h.dialPort, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute,
			DisableCompression: true}
		h.hc = &http.Client{Transport: tr}
		p.hosts[id] = h
	} else if t != nil {
		h.mu.Lock()
		h.target = *t
		h.mu.Unlock()
	}
	return h
}

// targetNow is where the host is reached.
func (h *host) targetNow() Target {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.target
}

// name is the host's name for messages.
func (h *host) name() string { return h.targetNow().Host }

// ssh returns the host's pooled connection.
func (h *host) ssh(ctx context.Context) (*ssh.Client, ssh.PublicKey, error) {
	return h.p.pool.Client(ctx, h.targetNow())
}

// dialPort opens a connection to addr on the host's side of the SSH
// connection ("127.0.0.1:8000" is the host's loopback), dialing SSH
// again once if the pooled connection has gone.
func (h *host) dialPort(ctx context.Context, _, addr string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, _, err := h.ssh(ctx)
		if err != nil {
			return nil, err
		}
		conn, err := dialVia(ctx, c, addr)
		if err == nil {
			return newBufferedConn(conn), nil
		}
		// A refused channel is the host's answer (nothing listens
		// there); anything else may be a connection that died, which is
		// dialed again once.
		var oc *ssh.OpenChannelError
		if errors.As(err, &oc) || attempt > 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("%s on %s: %w", addr, h.name(), err)
		}
		h.p.pool.Forget(h.targetNow())
	}
}

// dialAgent dials the agent wherever it listens now: an agent restarted
// by its supervisor listens on another port, which a fresh probe finds.
func (h *host) dialAgent(ctx context.Context, network, _ string) (net.Conn, error) {
	h.mu.Lock()
	addr := h.addr
	h.mu.Unlock()
	if addr != "" {
		if conn, err := h.dialPort(ctx, network, addr); err == nil {
			return conn, nil
		}
	}
	info, err := h.probe(ctx)
	if err != nil {
		return nil, err
	}
	if info.Addr == "" {
		return nil, errAgentDown
	}
	return h.dialPort(ctx, network, info.Addr)
}

var errAgentDown = errors.New("the agent is not running")

// probe reads the host's state and remembers where its agent is.
func (h *host) probe(ctx context.Context) (hostInfo, error) {
	c, _, err := h.ssh(ctx)
	if err != nil {
		return hostInfo{}, err
	}
	info, err := probeHost(ctx, c)
	if err != nil {
		h.p.pool.Forget(h.targetNow())
		return info, err
	}
	h.mu.Lock()
	h.addr = info.Addr
	if info.Token != "" && info.Token != h.token {
		h.token, h.client = info.Token, nil
	}
	h.mu.Unlock()
	return info, nil
}

// agent returns a client of the host's agent.
func (h *host) agent(ctx context.Context) (*client.Client, error) {
	h.mu.Lock()
	c := h.client
	token := h.token
	h.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if token == "" {
		info, err := h.probe(ctx)
		if err != nil {
			return nil, err
		}
		if info.Token == "" {
			return nil, errAgentDown
		}
		token = info.Token
	}
	tr := &http.Transport{DialContext: h.dialAgent, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute, DisableCompression: true}
	c, err := client.New("http://dstack-agent", token, &http.Client{Transport: tr})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil || h.token != token {
		h.client, h.token = c, token
	}
	return h.client, nil
}

// healthy reports whether the agent answers.
func (h *host) healthy(ctx context.Context) bool {
	a, err := h.agent(ctx)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = a.Health(ctx)
	return err == nil
}

// Create implements providers.Provider.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	switch req.Kind {
	case providers.KindInstance:
		return p.createInstance(ctx, req)
	case providers.KindJob:
		h := p.host(req.Host, nil)
		if h == nil {
			return providers.Object{}, providers.Errorf(providers.NotFound, "%s: host %q is not known (its instance is not in state)", req.Address, req.Host)
		}
		a, err := h.agent(ctx)
		if err != nil {
			return providers.Object{}, fmt.Errorf("%s: the agent on %s: %w", req.Address, req.Host, err)
		}
		o, err := local.StartJob(ctx, a, req, h.hc)
		if err != nil {
			return o, err
		}
		p.hostAttrs(&o, req.Host)
		p.remember(o)
		return o, nil
	}
	return providers.Object{}, fmt.Errorf("an SSH fleet cannot make a %s", req.Kind)
}

// hostAttrs sets a job's address attributes to its host's.
func (p *Provider) hostAttrs(o *providers.Object, hostID string) {
	o.Host = hostID
	if o.Attributes == nil {
		o.Attributes = map[string]string{}
	}
	// Recorded in state, so the job's host is known even after its
	// instance was made again (a repaired agent).
	o.Attributes[providers.AttrHostID] = hostID
	if h := p.host(hostID, nil); h != nil {
		h.mu.Lock()
		o.Attributes[providers.AttrIP] = h.ip
		h.mu.Unlock()
	}
}

func (p *Provider) remember(o providers.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.objects[o.Token] = o
	if h := p.hosts[o.ID]; h != nil && o.Kind == providers.KindInstance {
		h.mu.Lock()
		h.ip = o.Attributes[providers.AttrIP]
		h.mu.Unlock()
	}
}

// addressOf is the address of the instance with provider ID id, as state
// records it ("fleet.onprem[1]"), or "".
func (p *Provider) addressOf(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.objects {
		if o.Kind == providers.KindInstance && o.ID == id {
			return o.Address
		}
	}
	return ""
}

func (p *Provider) createInstance(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if req.Offer == nil || req.Offer.InstanceType == "" {
		return providers.Object{}, fmt.Errorf("%s: no host named", req.Address)
	}
	hostname := req.Offer.InstanceType
	spec, err := lang.DecodeSpec(req.Spec)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	f, ok := spec.(*lang.Fleet)
	if !ok {
		return providers.Object{}, fmt.Errorf("%s: an instance of a %s, want a fleet", req.Address, spec.Kind())
	}
	t, err := HostTarget(f.SSHConfig, hostname)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	return p.Install(ctx, req, hostname, t)
}

// Install makes the host at t the instance id of req: it installs and
// starts the agent there as for an SSH fleet's host, and returns the
// instance with the attributes Recall needs to reach it again (the
// target, the host key it trusted on first use). A cloud provider calls
// it once its machine has booted; the provider's job calls then reach
// the instance by id.
func (p *Provider) Install(ctx context.Context, req providers.CreateRequest, id string, t Target) (providers.Object, error) {
	hostname := t.Host
	h := p.host(id, &t)
	c, key, err := h.ssh(ctx)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	progress := func(msg string) {
		if req.Progress != nil {
			req.Progress(msg)
		}
	}
	info, err := h.probe(ctx)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, hostname, err)
	}
	bin, err := p.bins.Find(info.OS, info.Arch)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, hostname, err)
	}
	sum, err := p.bins.sum(bin)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	restart := false
	if info.AgentSHA != sum {
		progress(fmt.Sprintf("uploading the agent to %s", hostname))
		if err := upload(ctx, c, bin); err != nil {
			return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, hostname, err)
		}
		restart = true
	}
	if restart || info.Addr == "" || !h.healthy(ctx) {
		progress(fmt.Sprintf("starting the agent on %s", hostname))
		if err := startAgent(ctx, c, info, h.targetNow().AgentFlags); err != nil {
			return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, hostname, err)
		}
		if err := h.waitHealthy(ctx, p.timeout); err != nil {
			return providers.Object{}, fmt.Errorf("%s: %s: %w", req.Address, hostname, err)
		}
	}
	if info.Instance != req.Token {
		if err := writeInstance(ctx, c, req.Token); err != nil {
			return providers.Object{}, fmt.Errorf("%s: %s: recording the instance: %w", req.Address, hostname, err)
		}
	}
	a, err := h.agent(ctx)
	if err != nil {
		return providers.Object{}, err
	}
	inv, err := a.Inventory(ctx)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %s: reading the inventory: %w", req.Address, hostname, err)
	}
	o := instanceObject(req, t, inv, key)
	o.ID = id
	if t.Jump != nil {
		if _, jkey, err := p.pool.Client(ctx, *t.Jump); err == nil {
			o.Attributes[attrJumpHostKey] = authorizedKey(jkey)
		}
	}
	p.remember(o)
	return o, nil
}

func (h *host) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if info, err := h.probe(ctx); err == nil && info.Addr != "" && h.healthy(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent did not answer within %s (see ~/.dstack/agent/agent.log on the host)", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func instanceObject(req providers.CreateRequest, t Target, inv agent.Inventory, key ssh.PublicKey) providers.Object {
	off := local.Offer(inv)
	off.Backend, off.Region, off.InstanceType, off.PricePerHour = Backend, "on-prem", t.Host, 0
	tj, _ := json.Marshal(t)
	return providers.Object{Kind: providers.KindInstance, ID: t.Host, Token: req.Token, Address: req.Address,
		Status: providers.StatusRunning, Offer: &off, Attributes: map[string]string{
			providers.AttrHostname: t.Host, providers.AttrIP: internalIP(t, inv), attrTarget: string(tj), attrHostKey: authorizedKey(key),
		}}
}

// internalIP is the address other hosts reach the host at: internal_ip
// when set, else its address in the fleet's network, else the address
// dstack connects to.
func internalIP(t Target, inv agent.Inventory) string {
	if t.InternalIP != "" {
		return t.InternalIP
	}
	if pfx, err := netip.ParsePrefix(t.Network); err == nil {
		for _, a := range inv.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil && pfx.Contains(ip) {
				return a
			}
		}
	}
	if _, err := netip.ParseAddr(t.Host); err == nil {
		return t.Host
	}
	if len(inv.Addresses) > 0 {
		return inv.Addresses[0]
	}
	return t.Host
}

func authorizedKey(k ssh.PublicKey) string {
	if k == nil {
		return ""
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Recall implements providers.Recaller: the instances and jobs the state
// records, so that their hosts can be reached and their keys are
// enforced.
func (p *Provider) Recall(objs []providers.Object) {
	for _, o := range objs {
		if o.Kind == providers.KindInstance {
			var t Target
			if err := json.Unmarshal([]byte(o.Attributes[attrTarget]), &t); err != nil || t.Host == "" {
				continue
			}
			p.host(o.ID, &t)
			if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(o.Attributes[attrHostKey])); err == nil {
				p.pool.TrustKey(t.Addr(), k)
			}
			if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(o.Attributes[attrJumpHostKey])); err == nil && t.Jump != nil {
				p.pool.TrustKey(t.Jump.Addr(), k)
			}
		}
		if o.Kind == providers.KindJob && o.Attributes[providers.AttrHostID] != "" {
			o.Host = o.Attributes[providers.AttrHostID]
		}
		if o.Token != "" {
			p.remember(o)
		}
	}
}

// Describe implements providers.Provider.
func (p *Provider) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	out := map[string]providers.Object{}
	type seen struct {
		info    hostInfo
		err     error
		healthy bool
	}
	hosts := map[string]*seen{} // probed once per host
	for _, tok := range tokens {
		p.mu.Lock()
		o, ok := p.objects[tok]
		p.mu.Unlock()
		if !ok {
			continue
		}
		hostID := o.ID
		if o.Kind == providers.KindJob {
			hostID = o.Host
		}
		h := p.host(hostID, nil)
		if h == nil {
			continue
		}
		hs := hosts[hostID]
		if hs == nil {
			hs = &seen{}
			hs.info, hs.err = h.probe(ctx)
			var hke *HostKeyError
			if errors.As(hs.err, &hke) {
				return nil, fmt.Errorf("%s: %w", o.Address, hs.err)
			}
			hs.healthy = hs.err == nil && hs.info.Addr != "" && h.healthy(ctx)
			hosts[hostID] = hs
		}
		info, err := &hs.info, hs.err
		switch o.Kind {
		case providers.KindInstance:
			switch {
			case err != nil:
				// Down, or cut off: its jobs may well run on. The instance
				// stays (no repair is tried, no run is placed there) until
				// it answers again or is removed from the fleet.
				o.Status, o.Reason = providers.StatusUnknown, "does not answer: "+err.Error()
			case info.Instance != tok:
				continue // removed, or registered again as another instance
			case !hs.healthy:
				o.Status, o.Reason = providers.StatusFailed, "its agent is not running"
			default:
				o.Status, o.Reason = providers.StatusRunning, ""
			}
			out[tok] = o
		case providers.KindJob:
			if !hs.healthy {
				if providers.Ended(o.Status) {
					out[tok] = o // it ended, as recorded
					continue
				}
				if removed(info, err) {
					// Its host answers without dstack on it: its instance
					// was deleted, which removed the agent and every job.
					o.Status, o.Reason = providers.StatusTerminated, "its host was removed from the fleet"
					out[tok] = o
					continue
				}
				// The host or its agent is down: the job's fate is not
				// known until the agent is back (it re-attaches to its
				// jobs), so it is neither gone nor ended.
				o.Status, o.Reason = providers.StatusUnknown, "its host's agent does not answer"
				out[tok] = o
				continue
			}
			a, err := h.agent(ctx)
			if err != nil {
				return nil, err
			}
			j, err := a.Get(ctx, tok)
			if errors.Is(err, client.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("asking the agent on %s about job %s: %w", hostID, tok, err)
			}
			jo := local.JobObject(o.Address, hostID, j)
			p.hostAttrs(&jo, hostID)
			out[tok] = jo
		}
	}
	return out, nil
}

// Delete implements providers.Provider.
func (p *Provider) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	switch kind {
	case providers.KindInstance:
		h := p.host(id, nil)
		if h == nil {
			return fmt.Errorf("host %q is not known (its instance is not in state)", id)
		}
		c, _, err := h.ssh(ctx)
		if err != nil {
			err = fmt.Errorf("removing the agent from %s: %w", id, err)
			if addr := p.addressOf(id); addr != "" {
				err = fmt.Errorf("%w; if the host is gone for good, `dstack state rm '%s'` forgets it", err, addr)
			}
			return err
		}
		if !h.healthy(ctx) {
			// A dead agent's jobs live on (host processes, containers):
			// start it again, so that it re-attaches them and removes them.
			if info, err := h.probe(ctx); err == nil && info.AgentSHA != "" {
				if err := startAgent(ctx, c, info, h.targetNow().AgentFlags); err == nil {
					_ = h.waitHealthy(ctx, p.timeout)
				}
			}
		}
		if h.healthy(ctx) {
			// Jobs first: the agent stops and removes its containers
			// and processes.
			a, err := h.agent(ctx)
			if err != nil {
				return err
			}
			jobs, err := a.List(ctx, "")
			if err != nil {
				return fmt.Errorf("listing the jobs on %s: %w", id, err)
			}
			for _, j := range jobs {
				if err := a.Delete(ctx, j.Spec.ID); err != nil && !errors.Is(err, client.ErrNotFound) {
					return fmt.Errorf("removing job %s from %s: %w", j.Spec.ID, id, err)
				}
			}
		}
		if err := removeAgent(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		h.mu.Lock()
		h.addr, h.token, h.client = "", "", nil
		h.mu.Unlock()
		return nil
	case providers.KindJob:
		h, err := p.jobHost(id)
		if err != nil {
			// Its host is no instance any more: removing a host removes
			// its agent and every job with it (a finished task's record
			// outlives it).
			return nil
		}
		a, err := h.agent(ctx)
		if err != nil {
			if info, perr := h.probe(ctx); removed(&info, perr) {
				return nil // its host's instance was deleted, and the job with it
			}
			return fmt.Errorf("removing job %s: the agent on %s: %w", id, h.name(), err)
		}
		if err := a.Delete(ctx, id); err != nil && !errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("removing job %s from %s: %w", id, h.name(), err)
		}
		return nil
	}
	return fmt.Errorf("an SSH fleet has no %s objects", kind)
}

// removed reports whether a probe of a host that answered (err is nil)
// found dstack removed from it: no agent installed, no instance
// registered.
func removed(info *hostInfo, err error) bool {
	return err == nil && info.AgentSHA == "" && info.Instance == ""
}

func (p *Provider) jobHost(id string) (*host, error) {
	p.mu.Lock()
	o, ok := p.objects[id]
	p.mu.Unlock()
	if !ok || o.Host == "" {
		return nil, fmt.Errorf("job %s: its host is not known", id)
	}
	h := p.host(o.Host, nil)
	if h == nil {
		return nil, fmt.Errorf("job %s: host %q is not known", id, o.Host)
	}
	return h, nil
}

func (p *Provider) jobAgent(ctx context.Context, id string) (*client.Client, error) {
	h, err := p.jobHost(id)
	if err != nil {
		return nil, err
	}
	return h.agent(ctx)
}

// AgentClient returns a client of the agent on the instance with ID id
// (its hostname), reached through the host's pooled SSH connection.
func (p *Provider) AgentClient(ctx context.Context, id string) (*client.Client, error) {
	h := p.host(id, nil)
	if h == nil {
		return nil, fmt.Errorf("host %q is not known (its instance is not in state)", id)
	}
	return h.agent(ctx)
}

// Logs implements providers.JobControl.
func (p *Provider) Logs(ctx context.Context, id string, since int64, follow bool) (io.ReadCloser, error) {
	a, err := p.jobAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	return a.Logs(ctx, id, since, follow)
}

// StopJob implements providers.JobControl.
func (p *Provider) StopJob(ctx context.Context, id string, abort bool) error {
	a, err := p.jobAgent(ctx, id)
	if err != nil {
		return err
	}
	_, err = a.Stop(ctx, id, agent.StopRequest{Abort: abort})
	var ce *client.Error
	if errors.Is(err, client.ErrNotFound) || (errors.As(err, &ce) && ce.StatusCode == http.StatusConflict) {
		return nil
	}
	return err
}

// Exec implements providers.Execer.
func (p *Provider) Exec(ctx context.Context, id string, command []string, tty bool, stdin io.Reader, stdout io.Writer) (int, error) {
	a, err := p.jobAgent(ctx, id)
	if err != nil {
		return 0, err
	}
	return a.Exec(ctx, id, agent.ExecRequest{Command: command, TTY: tty}, stdin, stdout)
}

// DialPort implements providers.PortDialer: a connection to a job's
// published port, through its host's SSH connection.
func (p *Provider) DialPort(ctx context.Context, jobID string, hostPort int) (net.Conn, error) {
	h, err := p.jobHost(jobID)
	if err != nil {
		return nil, err
	}
	return h.dialPort(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)))
}
