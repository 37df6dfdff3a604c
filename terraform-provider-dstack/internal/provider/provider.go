// Package provider is the dstack Terraform provider: resources
// dstack_fleet, dstack_task, dstack_service, dstack_dev_environment,
// dstack_volume and dstack_gateway, and data sources dstack_offers and
// dstack_fleet.
//
// Where to start: New builds the provider; schema.go derives each
// resource's schema from the lang model; values.go turns Terraform
// values into the model's node tree (so a configuration goes through
// the decoder and validation of YAML and HCL) and back; resource.go
// plans with planner.Make and applies with planner.Apply, the engine of
// `dstack apply`. The protocol itself is tfplugin's business.
package provider

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/agent/sshd"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/registry"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backends"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// TypeName is the Terraform resource type of a kind: dstack_fleet,
// dstack_dev_environment, ...
func TypeName(k lang.Kind) string {
	return "dstack_" + strings.ReplaceAll(string(k), "-", "_")
}

// Options configure the provider.
type Options struct {
	// Version is the provider's version, recorded in dstack records.
	Version string
	// AgentCommand runs this machine's host agent, for the local
	// backend: normally this binary and "agent".
	AgentCommand []string
	// Log receives apply's progress (Terraform keeps a plugin's stderr
	// in its log); nil discards it.
	Log io.Writer
	// Environ looks up environment variables; nil: the process's.
	Environ func(string) (string, bool)
	// Home is the home directory credential files are looked for in;
	// empty: the user's.
	Home string
}

// dstack is the configured provider, shared by its resources.
type dstack struct {
	opts     Options
	version  string
	mu       sync.Mutex
	settings *settings
	set      *registry.Set
	store    *store
	// pending are the resources planned in this process (a Terraform
	// plan is one process), by address; nil: being destroyed.
	pending map[string]*lang.Resource
}

// New returns the provider.
func New(opts Options) *tfplugin.Provider {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	d := &dstack{opts: opts, version: opts.Version}
	p := &tfplugin.Provider{Config: configSchema, Configure: d.configure,
		Resources: map[string]tfplugin.Resource{}, DataSources: map[string]tfplugin.DataSource{}}
	for _, k := range lang.Kinds {
		p.Resources[TypeName(k)] = &resource{kind: k, schema: resourceSchema(k), p: d}
	}
	p.DataSources["dstack_offers"] = &offersData{p: d}
	p.DataSources["dstack_fleet"] = &fleetData{p: d}
	return p
}

func (d *dstack) environ() environ {
	env := osEnviron()
	if d.opts.Environ != nil {
		env.lookup = d.opts.Environ
	}
	if d.opts.Home != "" {
		env.home = d.opts.Home
	}
	return env
}

func (d *dstack) configure(_ context.Context, cfg map[string]any) tfplugin.Diagnostics {
	env := d.environ()
	s, diags := resolve(cfg, env)
	if diags.HasErrors() {
		return diags
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	set, err := newProviderSet(s, env, d.opts.AgentCommand)
	if err != nil {
		diags.Errorf(nil, "Cannot set up the providers", "%v", err)
		return diags
	}
	b, err := backends.New(s.storeBackend, s.storeConfig)
	if err != nil {
		diags.Errorf(tfplugin.Path{"store_backend"}, "Cannot open the provider's store", "%v", err)
		return diags
	}
	d.settings, d.set = s, set
	d.store = &store{backend: b, workspace: s.storeWorkspace, version: d.version}
	return diags
}

// setPending remembers res (nil: being destroyed) as planned in this
// process, for the plans of the resources Terraform visits after it.
func (d *dstack) setPending(addr string, res *lang.Resource) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		d.pending = map[string]*lang.Resource{}
	}
	d.pending[addr] = res
}

// pendingBut returns the resources planned in this process, but addr.
func (d *dstack) pendingBut(addr string) map[string]*lang.Resource {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]*lang.Resource{}
	for a, r := range d.pending {
		if a != addr {
			out[a] = r
		}
	}
	return out
}

// ready returns the configured provider set and store.
func (d *dstack) ready() (*registry.Set, *store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.set == nil || d.store == nil {
		return nil, nil, fmt.Errorf("the provider is not configured")
	}
	return d.set, d.store, nil
}

// makePlan plans rp against st, the store's state, as `dstack plan
// -target` plans it (see configFor). st is not changed.
func (d *dstack) makePlan(ctx context.Context, st *state.State, rp runPlan, mode planner.Mode) (*planner.Plan, error) {
	set, sto, err := d.ready()
	if err != nil {
		return nil, err
	}
	cfg, targets := configFor(st, rp)
	if mode == planner.Destroy {
		cfg, targets = lang.NewConfig(), []string{rp.addr}
	}
	in := planner.Input{Config: cfg, Prior: st, StateExisted: true, Workspace: sto.workspace, ToolVersion: d.version,
		HostsBackend: set.HostsBackend(), Mode: mode, Targets: targets,
		// Terraform destroys what references a resource first, itself.
		TargetsAlone: mode == planner.Destroy}
	if mode != planner.Destroy {
		if in.Offers, err = set.Offers(ctx); err != nil {
			return nil, fmt.Errorf("listing offers: %w", err)
		}
	}
	p, err := planner.Make(in)
	if err != nil {
		return nil, err
	}
	if mode != planner.Destroy {
		if err := d.canMake(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// canMake checks that every object the plan makes is on a backend with a
// provider: a cloud planned from the offline catalog alone would plan
// "to add" and fail only at apply.
func (d *dstack) canMake(p *planner.Plan) error {
	for _, s := range p.Steps {
		if s.Op != planner.OpCreate || s.Backend == "" {
			continue
		}
		if _, err := d.set.For(s.Backend); err != nil {
			return fmt.Errorf("%s[%d]: %w", s.Address, s.Index, err)
		}
	}
	return nil
}

// apply carries out a plan into the store held by ss and returns the
// record at addr afterwards (nil once it is gone), with the steps'
// errors.
func (d *dstack) apply(ctx context.Context, p *planner.Plan, ss *session, addr string) (*state.Resource, error) {
	set, _, err := d.ready()
	if err != nil {
		return nil, err
	}
	events := func(e planner.Event) {
		if e.Type == planner.EventStepStart || e.Type == planner.EventStepDone || e.Type == planner.EventStepFailed || e.Type == planner.EventProgress {
			fmt.Fprintf(d.opts.Log, "dstack: %s %s %s[%d] %s\n", e.Type, e.Op, e.Address, e.Index, e.Message)
		}
	}
	host, _ := os.Hostname()
	opts := planner.ApplyOptions{Events: events, ToolVersion: d.version, Fence: ss.lease,
		Holder: planner.Holder{Lock: ss.lease.Info.ID, Host: host, PID: os.Getpid()}}
	// Terraform runs its providers in the root module's directory: what a
	// run with `dstack: true` gets.
	if wd, err := os.Getwd(); err == nil {
		opts.ConfigDir = wd
	}
	// Dev environments let in the user's dstack key, which `dstack
	// attach` then writes the SSH entry with.
	if home, err := os.UserHomeDir(); err == nil && slices.ContainsFunc(p.Changes, func(c *planner.Change) bool { return c.Kind == lang.KindDevEnvironment }) {
		if _, key, err := sshd.UserKey(filepath.Join(home, ".dstack", "ssh")); err == nil {
			opts.SSHKeys = []string{key}
		}
	}
	res, err := planner.Apply(ctx, p, ss.ps, set, opts)
	if err != nil {
		return ss.st.Resource(addr), err
	}
	return res.State.Resource(addr), res.Err()
}
