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
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/registry"
	"github.com/dstackai/dstack-go/state"
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
	fleets   fleets
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
	d.settings, d.set = s, set
	return diags
}

// hostsFor returns the fleets a run names, with their instances, for
// placement: those this process has seen, else those known when the run
// was planned (known). ready is false when a named fleet has no
// instances yet (it is made in the same apply).
func (d *dstack) hostsFor(res *lang.Resource, known []*state.Resource) (hosts []*state.Resource, ready bool) {
	var names []string
	switch s := res.Spec.(type) {
	case *lang.Task:
		names = s.Fleets
	case *lang.Service:
		names = s.Fleets
	case *lang.DevEnvironment:
		names = s.Fleets
	}
	ready = true
	for _, name := range names {
		addr := "fleet." + name
		h := d.fleets.get(addr)
		if h == nil {
			for _, k := range known {
				if k.Address == addr {
					h = k
				}
			}
		}
		if h == nil || len(h.Instances) == 0 {
			ready = false
			continue
		}
		hosts = append(hosts, cloneResource(h))
	}
	return hosts, ready
}

// makePlan plans one resource against its record, with the fleets its
// runs may be placed on in the prior state beside it.
func (d *dstack) makePlan(ctx context.Context, res *lang.Resource, prior *state.Resource, hosts []*state.Resource, mode planner.Mode) (*planner.Plan, error) {
	if d.set == nil {
		return nil, fmt.Errorf("the provider is not configured")
	}
	st := state.New(d.version)
	var addr string
	if prior != nil {
		st.Put(cloneResource(prior))
		addr = prior.Address
	}
	for _, h := range hosts {
		if st.Resource(h.Address) == nil {
			st.Put(cloneResource(h))
		}
	}
	cfg := lang.NewConfig()
	if res != nil {
		cfg.Add(res)
		addr = res.Address.String()
	}
	in := planner.Input{Config: cfg, Prior: st, StateExisted: true, Workspace: "terraform", ToolVersion: d.version,
		HostsBackend: d.set.HostsBackend(), Mode: mode, Targets: []string{addr}}
	if mode != planner.Destroy {
		var err error
		if in.Offers, err = d.set.Offers(ctx); err != nil {
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

// apply carries out a plan into a fresh in-memory store and returns the
// resource's record afterwards (nil once it is gone), with the steps'
// errors.
func (d *dstack) apply(ctx context.Context, p *planner.Plan, prior *state.Resource, _ []*state.Resource) (*state.Resource, error) {
	addr := ""
	if len(p.Targets) > 0 {
		addr = p.Targets[0]
	}
	store := &planner.Store{Backend: &memBackend{}, Workspace: "terraform"}
	events := func(e planner.Event) {
		if e.Type == planner.EventStepStart || e.Type == planner.EventStepDone || e.Type == planner.EventStepFailed || e.Type == planner.EventProgress {
			fmt.Fprintf(d.opts.Log, "dstack: %s %s %s[%d] %s\n", e.Type, e.Op, e.Address, e.Index, e.Message)
		}
	}
	res, err := planner.Apply(ctx, p, store, d.set, planner.ApplyOptions{Events: events, ToolVersion: d.version})
	if err != nil {
		return prior, err
	}
	return res.State.Resource(addr), res.Err()
}
