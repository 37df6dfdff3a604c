// Package local makes this machine a fleet of one: the `local` backend,
// the default when no other is configured. Its instance is the machine
// itself; its jobs run through the host agent: containers of the run's
// image, or of dstack's base image when it names none, and host processes
// when the run asks for them with runtime: host.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Backend is the backend name.
const Backend = "local"

// Agent is what the provider needs of the host agent's client.
type Agent interface {
	Inventory(ctx context.Context) (agent.Inventory, error)
	Submit(ctx context.Context, spec agent.JobSpec) (job agent.Job, created bool, err error)
	Get(ctx context.Context, id string) (agent.Job, error)
	Delete(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, req agent.StopRequest) (agent.Job, error)
	Logs(ctx context.Context, id string, since int64, follow bool) (*client.LogStream, error)
	WaitFor(ctx context.Context, id string, done func(agent.Job) bool) (agent.Job, error)
	Exec(ctx context.Context, id string, req agent.ExecRequest, stdin io.Reader, stdout io.Writer) (int, error)
}

// Options configure the provider.
type Options struct {
	// Agent returns the local agent, starting it if need be; it is called
	// only when a job is made, looked at or removed.
	Agent func(ctx context.Context) (Agent, error)
	// Inventory describes this machine (the offer); nil asks the agent.
	Inventory func(ctx context.Context) (agent.Inventory, error)
	// Dir keeps the objects that live only in dstack's books: the machine
	// registered as an instance, and volumes.
	Dir string
	// ReadyTimeout bounds how long a service replica may take to pass its
	// probes (DefaultReadyTimeout when zero).
	ReadyTimeout time.Duration
}

// Provider is the local backend.
type Provider struct {
	opts  Options
	dir   string
	mu    sync.Mutex
	inv   *agent.Inventory
	agent Agent
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.JobControl = (*Provider)(nil)
	_ providers.Execer     = (*Provider)(nil)
)

// Logs implements providers.JobControl.
func (p *Provider) Logs(ctx context.Context, id string, since int64, follow bool) (io.ReadCloser, error) {
	a, err := p.getAgent(ctx)
	if err != nil {
		return nil, err
	}
	return a.Logs(ctx, id, since, follow)
}

// Exec implements providers.Execer.
func (p *Provider) Exec(ctx context.Context, id string, command []string, tty bool, stdin io.Reader, stdout io.Writer) (int, error) {
	a, err := p.getAgent(ctx)
	if err != nil {
		return 0, err
	}
	return a.Exec(ctx, id, agent.ExecRequest{Command: command, TTY: tty}, stdin, stdout)
}

// StopJob implements providers.JobControl.
func (p *Provider) StopJob(ctx context.Context, id string, abort bool) error {
	a, err := p.getAgent(ctx)
	if err != nil {
		return err
	}
	_, err = a.Stop(ctx, id, agent.StopRequest{Abort: abort})
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	var ce *client.Error
	if errors.As(err, &ce) && ce.StatusCode == 409 {
		return nil // not running any more
	}
	return err
}

// New returns the local provider.
func New(opts Options) *Provider { return &Provider{opts: opts, dir: opts.Dir} }

func (p *Provider) getAgent(ctx context.Context) (Agent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.agent != nil {
		return p.agent, nil
	}
	a, err := p.opts.Agent(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting the local agent: %w", err)
	}
	p.agent = a
	return a, nil
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Backend }

func (p *Provider) inventory(ctx context.Context) (agent.Inventory, error) {
	p.mu.Lock()
	inv := p.inv
	p.mu.Unlock()
	if inv != nil {
		return *inv, nil
	}
	get := p.opts.Inventory
	if get == nil {
		get = func(ctx context.Context) (agent.Inventory, error) {
			a, err := p.getAgent(ctx)
			if err != nil {
				return agent.Inventory{}, err
			}
			return a.Inventory(ctx)
		}
	}
	got, err := get(ctx)
	if err != nil {
		return agent.Inventory{}, fmt.Errorf("reading this machine's inventory: %w", err)
	}
	p.mu.Lock()
	p.inv = &got
	p.mu.Unlock()
	return got, nil
}

// Offer describes this machine as an offer at no cost.
func Offer(inv agent.Inventory) offers.Offer {
	o := offers.Offer{Backend: Backend, Region: "local", InstanceType: inv.Hostname, CPUs: inv.CPUs,
		Arch: arch(inv.Arch), Memory: resources.Memory(inv.MemoryMB), Disk: resources.Memory(inv.DiskMB),
		Availability: offers.Available}
	if len(inv.GPUs) > 0 {
		g := inv.GPUs[0]
		o.GPU = &offers.GPU{Vendor: g.Vendor, Name: gpuName(g.Name), MemoryMB: resources.Memory(g.MemoryMB), Count: len(inv.GPUs)}
	}
	return o
}

func arch(goarch string) string {
	if goarch == "arm64" {
		return "arm"
	}
	return "x86"
}

// gpuModel is compiled on first use: compiled at package
// initialisation it cost every dstack command about 0.2 ms of start-up.
var gpuModel = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(H100|H200|B200|GB200|A100|A10G|A10|L40S|L40|L4|T4|V100|RTX\s?\w+|MI300X|MI250X?)\b`)
})

// gpuName turns "NVIDIA H100 80GB HBM3" into the name resources specs
// use ("H100").
func gpuName(full string) string {
	if m := gpuModel().FindString(full); m != "" {
		return strings.ToUpper(strings.ReplaceAll(m, " ", ""))
	}
	return full
}

// Offers implements providers.Provider: this machine.
func (p *Provider) Offers(ctx context.Context) ([]offers.Offer, error) {
	inv, err := p.inventory(ctx)
	if err != nil {
		return nil, err
	}
	return []offers.Offer{Offer(inv)}, nil
}

func (p *Provider) recordPath(token string) string {
	return filepath.Join(p.dir, "objects", token+".json")
}

func (p *Provider) readRecord(token string) (*providers.Object, error) {
	data, err := os.ReadFile(p.recordPath(token))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o providers.Object
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("local object %s is damaged: %w", token, err)
	}
	return &o, nil
}

func (p *Provider) writeRecord(o providers.Object) error {
	if err := os.MkdirAll(filepath.Join(p.dir, "objects"), 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return renameio.WriteFile(p.recordPath(o.Token), data, 0o600)
}

// validToken says whether t is 1 to 128 of A-Z, a-z, 0-9, _ and -. (A
// regular expression for it, {1,128} expanded, cost every command 0.1 ms
// of start-up to compile.)
func validToken(t string) bool {
	if len(t) == 0 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Create implements providers.Provider.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if !validToken(req.Token) {
		return providers.Object{}, fmt.Errorf("local: invalid token %q", req.Token)
	}
	switch req.Kind {
	case providers.KindInstance, providers.KindVolume, providers.KindGateway:
		if o, err := p.readRecord(req.Token); err != nil || o != nil {
			if o != nil {
				return *o, nil
			}
			return providers.Object{}, err
		}
		o := providers.Object{Kind: req.Kind, Token: req.Token, Address: req.Address, Status: providers.StatusRunning}
		if req.Kind == providers.KindInstance {
			inv, err := p.inventory(ctx)
			if err != nil {
				return providers.Object{}, err
			}
			off := Offer(inv)
			// The ID names the record, not just the machine: every
			// fleet on this machine registers it anew, and deleting one
			// fleet's instance must leave the others' records alone.
			o.ID, o.Offer = instanceID(inv.Hostname, req.Token), &off
			o.Attributes = map[string]string{providers.AttrIP: "127.0.0.1", providers.AttrHostname: inv.Hostname}
		} else if req.Kind == providers.KindGateway {
			// This machine's gateway is the dstack-gateway process the
			// CLI starts after apply; the record carries the address.
			o.ID = "local-" + req.Token
			o.Attributes = map[string]string{providers.AttrIP: "127.0.0.1"}
		} else {
			o.ID = volumeName(req.Address)
		}
		return o, p.writeRecord(o)
	case providers.KindJob:
		a, err := p.getAgent(ctx)
		if err != nil {
			return providers.Object{}, err
		}
		return startJob(ctx, a, req, nil, p.opts.ReadyTimeout)
	}
	return providers.Object{}, fmt.Errorf("the local backend cannot make a %s; use a cloud backend", req.Kind)
}

// StartJob submits the job req asks for to an agent and waits until it
// runs (showing an image pull's progress) and, for a service replica,
// answers its probes. hc reaches the job's published ports on the
// agent's host as 127.0.0.1:PORT (nil: directly, for this machine).
func StartJob(ctx context.Context, a Agent, req providers.CreateRequest, hc *http.Client) (providers.Object, error) {
	return startJob(ctx, a, req, hc, 0)
}

func startJob(ctx context.Context, a Agent, req providers.CreateRequest, hc *http.Client, readyTimeout time.Duration) (providers.Object, error) {
	run, err := decodeRun(req)
	if err != nil {
		return providers.Object{}, err
	}
	spec, err := jobSpec(req, run)
	if err != nil {
		return providers.Object{}, err
	}
	if err := deliver(ctx, a, req, run.cfg, &spec); err != nil {
		return providers.Object{}, err
	}
	job, _, err := a.Submit(ctx, spec)
	if err != nil {
		return providers.Object{}, classify(fmt.Errorf("submitting %s to the agent: %w", req.Address, noDocker(err, spec)))
	}
	// Apply waits for the job to start: pulling and creating happen
	// here, and a job that cannot start is an error of this step.
	last := ""
	job, err = a.WaitFor(ctx, job.Spec.ID, func(j agent.Job) bool {
		if msg := string(j.State) + ": " + j.Reason; req.Progress != nil && j.Reason != "" && msg != last &&
			(j.State == agent.StatePulling || j.State == agent.StateCreating) {
			last = msg
			req.Progress(j.Reason)
		}
		return j.State == agent.StateRunning || j.State.Finished()
	})
	if err != nil {
		return providers.Object{}, fmt.Errorf("waiting for %s to start: %w", req.Address, err)
	}
	if job.State == agent.StateFailed && job.StartedAt.IsZero() {
		return providers.Object{}, fmt.Errorf("%s did not start: %s", req.Address, job.Reason)
	}
	if err := probe(ctx, a, hc, req, run, job, readyTimeout); err != nil {
		if ctx.Err() != nil {
			// Cancelled: the job stays, recorded by its token, for the
			// next refresh to find.
			return providers.Object{}, err
		}
		return providers.Object{}, giveUp(ctx, a, job.Spec.ID, err)
	}
	return JobObject(req.Address, req.Host, job), nil
}

// volumeName is the Docker volume that backs a dstack volume: "volume.data[0]" → "dstack-data".
func volumeName(address string) string {
	name := strings.TrimPrefix(address, "volume.")
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	return "dstack-" + name
}

// JobObject describes an agent's job as a provider object.
func JobObject(address, host string, j agent.Job) providers.Object {
	o := providers.Object{Kind: providers.KindJob, ID: j.Spec.ID, Token: j.Spec.ID, Address: address, Host: host, Reason: j.Reason}
	switch j.State {
	case agent.StateDone:
		o.Status = providers.StatusDone
	case agent.StateFailed:
		o.Status = providers.StatusFailed
	case agent.StateStopped:
		// A task is not run again by itself (apply -replace does that),
		// a service's replica is replaced. The status says "stopped"; the
		// reason says why ("on request: exit code 0").
		o.Status = providers.StatusStopped
		o.Reason = strings.TrimPrefix(o.Reason, "stopped ")
	case agent.StateRunning:
		o.Status = providers.StatusRunning
	default:
		o.Status = providers.StatusProvisioning
	}
	o.Attributes = map[string]string{providers.AttrIP: "127.0.0.1", providers.AttrRuntime: j.Runtime}
	var ports []string
	for _, pb := range j.Ports {
		ports = append(ports, fmt.Sprintf("%d:%d", pb.Host, pb.Container))
	}
	if len(ports) > 0 {
		o.Attributes[providers.AttrPorts] = strings.Join(ports, ",")
	}
	if j.ExitCode != nil {
		o.Attributes[providers.AttrExitCode] = strconv.Itoa(*j.ExitCode)
	}
	if j.Termination != "" {
		o.Attributes[providers.AttrTermination] = string(j.Termination)
	}
	if !j.FinishedAt.IsZero() {
		o.Attributes[providers.AttrFinishedAt] = j.FinishedAt.UTC().Format(time.RFC3339)
	}
	return o
}

// Describe implements providers.Provider.
func (p *Provider) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	out := map[string]providers.Object{}
	for _, t := range tokens {
		if !validToken(t) {
			continue
		}
		o, err := p.readRecord(t)
		if err != nil {
			return nil, err
		}
		if o != nil {
			out[t] = *o
			continue
		}
		a, err := p.getAgent(ctx)
		if err != nil {
			return nil, err
		}
		j, err := a.Get(ctx, t)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, classify(fmt.Errorf("asking the local agent about job %s: %w", t, err))
		}
		out[t] = JobObject(j.Spec.Labels["dstack.address"], "", j)
	}
	return out, nil
}

// classify gives an agent's errors the codes of the provider contract: a
// token the agent rejects is Auth, a job asking for more GPUs than are
// free, or sent to a machine being interrupted, is NoCapacity.
func classify(err error) error {
	var ce *client.Error
	switch {
	case err == nil || providers.CodeOf(err) != "":
		return err
	case errors.Is(err, client.ErrUnauthorized):
		return &providers.Error{Code: providers.Auth, Err: err}
	case errors.Is(err, agent.ErrNoGPUs),
		errors.As(err, &ce) && ce.StatusCode == http.StatusConflict && strings.Contains(ce.Message, agent.ErrNoGPUs.Error()):
		return &providers.Error{Code: providers.NoCapacity, Err: err}
	case errors.Is(err, agent.ErrInterrupted),
		errors.As(err, &ce) && ce.StatusCode == http.StatusServiceUnavailable && strings.Contains(ce.Message, agent.ErrInterrupted.Error()):
		// The machine got an interruption notice: it takes no more
		// jobs, and the planner places the job on another offer.
		return &providers.Error{Code: providers.NoCapacity, Err: err}
	}
	return err
}

func isNotFound(err error) bool {
	return errors.Is(err, client.ErrNotFound) || errors.Is(err, agent.ErrNotFound)
}

// Delete implements providers.Provider.
func (p *Provider) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	switch kind {
	case providers.KindJob:
		a, err := p.getAgent(ctx)
		if err != nil {
			return err
		}
		if err := a.Delete(ctx, id); err != nil && !isNotFound(err) {
			return classify(fmt.Errorf("removing job %s from the local agent: %w", id, err))
		}
		return nil
	case providers.KindInstance, providers.KindVolume, providers.KindGateway:
		return p.deleteRecord(kind, id)
	}
	return fmt.Errorf("the local backend has no %s objects", kind)
}

// instanceID is the ID of the instance a fleet registers on this
// machine with token: unique to the record, as Delete needs.
func instanceID(hostname, token string) string { return "local-" + hostname + "-" + token }

// deleteRecord removes the record of the instance or volume with ID id.
// An instance's ID names its record alone. Older versions gave every
// instance on the machine the ID "local-HOSTNAME", and every volume of a
// name shares its ID ("dstack-NAME", across configurations too): an ID
// that several records share does not say whose record to remove, so
// none is (a record left behind answers only for a token no state holds
// any more) rather than another fleet's or volume's.
func (p *Provider) deleteRecord(kind providers.ObjectKind, id string) error {
	entries, err := os.ReadDir(filepath.Join(p.dir, "objects"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing the local objects: %w", err)
	}
	var match []string
	for _, e := range entries {
		token, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validToken(token) {
			continue
		}
		if o, err := p.readRecord(token); err == nil && o != nil && o.ID == id && o.Kind == kind {
			match = append(match, token)
		}
	}
	if len(match) != 1 {
		return nil
	}
	if err := os.Remove(p.recordPath(match[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the local %s %s: %w", kind, id, err)
	}
	return nil
}

// run is a job's run, read into lang's model, with the parts every kind
// of run shares picked out.
type run struct {
	spec     lang.Spec
	name     string
	cfg      *lang.RunConfig
	profile  *lang.Profile
	commands []string
	ports    []lang.Port
}

func decodeRun(req providers.CreateRequest) (run, error) {
	spec, err := lang.DecodeSpec(req.Spec)
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	switch s := spec.(type) {
	case *lang.Task:
		return run{spec: s, name: s.Name, cfg: &s.RunConfig, profile: &s.Profile, commands: s.Commands, ports: s.Ports}, nil
	case *lang.Service:
		return run{spec: s, name: s.Name, cfg: &s.RunConfig, profile: &s.Profile, commands: s.Commands}, nil
	case *lang.DevEnvironment:
		return run{spec: s, name: s.Name, cfg: &s.RunConfig, profile: &s.Profile, ports: s.Ports}, nil
	}
	return run{}, fmt.Errorf("%s: a job of a %s; only tasks, services and dev environments run jobs", req.Address, spec.Kind())
}

// jobSpec turns a create request for a job into what the agent runs:
// the run's commands by its shell, its image (none: dstack's base image;
// runtime: host: a host process),
// env (with dstack's DSTACK_* variables and the planner's), ports,
// volumes (dstack volumes as Docker volumes "dstack-NAME", instance
// volumes as bind mounts).
func jobSpec(req providers.CreateRequest, r run) (agent.JobSpec, error) {
	c := r.cfg
	spec := agent.JobSpec{ID: req.Token, RunName: r.name, Image: c.Image, Commands: r.commands, Shell: c.Shell,
		WorkingDir: c.WorkingDir, User: c.User, Privileged: c.Privileged,
		Labels: map[string]string{"dstack.address": req.Address, "dstack.run": r.name}}
	if c.Entrypoint != "" {
		spec.Entrypoint = strings.Fields(c.Entrypoint)
	}
	env, err := c.Env.Resolve(os.LookupEnv)
	if err != nil {
		return agent.JobSpec{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	spec.Env = env
	for k, v := range req.Env {
		spec.Env[k] = v
	}
	spec.Env["DSTACK_RUN_NAME"] = r.name
	// The GPUs the planner gave the job (whole blocks on a split host):
	// the agent picks which of the host's.
	if n, err := strconv.Atoi(req.Env["DSTACK_GPUS_PER_NODE"]); err == nil && n > 0 {
		spec.GPUCount = n
	}
	if d, ok := r.spec.(*lang.DevEnvironment); ok {
		// A dev environment runs its init commands, then waits for its
		// users until it is stopped or idle too long. The wait ends on
		// SIGTERM at once: a shell that is PID 1 of a container ignores
		// the signal without a trap, which made every stop last the
		// whole grace period.
		spec.Commands = append(slices.Clone(d.Init), "trap 'exit 0' TERM INT; while true; do sleep 3600 & wait $!; done")
		if d.InactivityDuration != nil && *d.InactivityDuration > 0 {
			spec.InactivitySeconds = int(*d.InactivityDuration)
		}
	}
	if p := r.profile; p.MaxDuration != nil && *p.MaxDuration > 0 {
		spec.MaxDurationSeconds = int(*p.MaxDuration)
	}
	if p := r.profile; p.StopDuration != nil && *p.StopDuration > 0 {
		spec.StopGraceSeconds = int(*p.StopDuration)
	}
	if c.RegistryAuth != nil {
		spec.RegistryAuth = &agent.RegistryAuth{Username: c.RegistryAuth.Username, Password: c.RegistryAuth.Password}
	}
	if c.Resources != nil && c.Resources.SharedMemory != nil {
		spec.ShmSizeMB = int(*c.Resources.SharedMemory)
	}
	// A port's local side is where `dstack attach` listens on the user's
	// machine; on the host the agent publishes the job's port wherever it
	// can (Docker: any free port; a host process: its own).
	for _, pt := range r.ports {
		spec.Ports = append(spec.Ports, agent.PortBinding{Container: pt.ContainerPort})
	}
	if s, ok := r.spec.(*lang.Service); ok && s.Port != nil {
		spec.Ports = append(spec.Ports, agent.PortBinding{Container: s.Port.ContainerPort})
		// A service's command may read its port from $PORT: in a
		// container it is the configured one; on the host runtime,
		// where replicas share the machine, the agent may give another.
		if _, ok := spec.Env["PORT"]; !ok {
			spec.Env["PORT"] = strconv.Itoa(s.Port.ContainerPort)
		}
	}
	for _, v := range c.Volumes {
		switch {
		case v.InstancePath != "":
			spec.Volumes = append(spec.Volumes, agent.Mount{HostPath: v.InstancePath, Path: v.Path})
		case len(v.Name) > 0:
			spec.Volumes = append(spec.Volumes, agent.Mount{Name: "dstack-" + v.Name[0], Path: v.Path})
		}
	}
	// The default image first: docker: true, dstack: true and a dev
	// environment's SSH server depend on whether the job has an image.
	defaultImage(&spec, c)
	if err := runExtras(&spec, req, r); err != nil {
		return agent.JobSpec{}, err
	}
	containerWorkingDir(&spec)
	return spec, nil
}

// probe waits until a service replica answers its HTTP probes, each as
// dstack defines its fields: a request may take the probe's timeout
// (10s), the next starts interval (15s) after one ends, and ready_after
// (1) passes in a row make it ready. Every attempt that does not pass is
// reported through req.Progress. A replica that exits first, does not
// become ready within limit (DefaultReadyTimeout when zero), or whose
// wait req.Stop ends, fails the step.
func probe(ctx context.Context, a Agent, hc *http.Client, req providers.CreateRequest, r run, job agent.Job, limit time.Duration) error {
	s, ok := r.spec.(*lang.Service)
	if !ok || len(s.Probes) == 0 || s.Port == nil {
		return nil
	}
	hostPort := 0
	for _, pb := range job.Ports {
		if pb.Container == s.Port.ContainerPort {
			hostPort = pb.Host
		}
	}
	if hostPort == 0 {
		return fmt.Errorf("the service's port %d is not published", s.Port.ContainerPort)
	}
	if limit <= 0 {
		limit = DefaultReadyTimeout
	}
	w := &prober{a: a, hc: hc, id: job.Spec.ID, port: hostPort, progress: req.Progress, stop: req.Stop,
		deadline: time.Now().Add(limit), limit: limit}
	if w.hc == nil {
		w.hc = http.DefaultClient
	}
	for i, p := range s.Probes {
		if err := w.run(ctx, i, p); err != nil {
			return fmt.Errorf("probe %d (%s): %w", i, probeName(p), err)
		}
	}
	return nil
}

// DefaultReadyTimeout bounds how long a service replica may take to pass
// its probes: long enough for a large model to load.
const DefaultReadyTimeout = 10 * time.Minute

// Probe defaults, as dstack documents them.
const (
	defaultProbeTimeout  = 10 * time.Second
	defaultProbeInterval = 15 * time.Second
)

func probeName(p lang.Probe) string {
	return strings.ToUpper(cmpOr(p.Method, "get")) + " " + cmpOr(p.URL, "/")
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// prober waits for one replica's probes.
type prober struct {
	a        Agent
	hc       *http.Client
	id       string
	port     int
	progress func(string)
	stop     <-chan struct{}
	deadline time.Time
	limit    time.Duration
}

// errStopped: the wait was ended by CreateRequest.Stop.
var errStopped = errors.New("stopped waiting for the replica to become ready (interrupted)")

func (w *prober) run(ctx context.Context, i int, p lang.Probe) error {
	interval, timeout := defaultProbeInterval, defaultProbeTimeout
	if p.Interval != nil && *p.Interval > 0 {
		interval = time.Duration(*p.Interval) * time.Second
	}
	if p.Timeout != nil && *p.Timeout > 0 {
		timeout = time.Duration(*p.Timeout) * time.Second
	}
	need := max(p.ReadyAfter, 1)
	url := fmt.Sprintf("http://127.0.0.1:%d%s", w.port, cmpOr(p.URL, "/"))
	hc := &http.Client{Transport: w.hc.Transport, Timeout: timeout}
	passes, last := 0, ""
	for {
		if err := w.attempt(ctx, hc, url, p); err != nil {
			passes, last = 0, err.Error()
		} else if passes++; passes >= need {
			return nil
		}
		if j, err := w.a.Get(ctx, w.id); err == nil && j.State.Finished() {
			return fmt.Errorf("the replica ended (%s) before it was ready", cmpOr(j.Reason, string(j.State)))
		}
		left := time.Until(w.deadline)
		if left < interval {
			return fmt.Errorf("not ready after %s (last: %s)", w.limit, cmpOr(last, "passed"))
		}
		if w.progress != nil {
			msg := fmt.Sprintf("waiting for probe %d (%s): %d of %d passes", i, probeName(p), passes, need)
			if passes == 0 {
				msg += ", last: " + last
			}
			w.progress(fmt.Sprintf("%s; next in %s, giving up in %s", msg, interval, left.Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.stop:
			return errStopped
		case <-time.After(interval):
		}
	}
}

// attempt sends the probe's request once: nil when it passed (a 2xx or
// 3xx answer within the probe's timeout).
func (w *prober) attempt(ctx context.Context, hc *http.Client, url string, p lang.Probe) error {
	var body io.Reader
	if p.Body != "" {
		body = strings.NewReader(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(cmpOr(p.Method, "get")), url, body)
	if err != nil {
		return err
	}
	for _, h := range p.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return errors.New(resp.Status)
	}
	return nil
}

// giveUp removes a replica that did not become ready, so nothing is left
// running that the state does not know of, and says why as a NotReady
// error that quotes the end of its output.
func giveUp(ctx context.Context, a Agent, id string, why error) error {
	ctx = context.WithoutCancel(ctx)
	tail := logTail(ctx, a, id, 5)
	if err := a.Delete(ctx, id); err != nil && !isNotFound(err) {
		return fmt.Errorf("%w; removing the replica failed too: %v", why, err)
	}
	msg := why.Error() + "; the replica was stopped and removed"
	if tail != "" {
		msg += ". Its output ended with:\n" + tail
	}
	return providers.Errorf(providers.NotReady, "%s", msg)
}

// logTail is the last n lines of a job's output, indented ("" when it
// has none, or the agent cannot tell).
func logTail(ctx context.Context, a Agent, id string, n int) string {
	rc, err := a.Logs(ctx, id, 0, false)
	if err != nil {
		return ""
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil && len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	lines = lines[max(0, len(lines)-n):]
	return "    " + strings.Join(lines, "\n    ")
}
