// Package registry names the providers dstack can make things with and
// builds them. It is the only package that imports them all: the dstack
// CLI and the Terraform provider get their [providers.Set] from [Open],
// and a new provider is wired here, once, by adding it to known.
//
// Backends without a provider in this build (the clouds of the offline
// catalog) are planned from the catalog: their offers are listed, but
// nothing can be made there.
package registry

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/providers"
	awsprov "github.com/dstackai/dstack-go/providers/aws"
	k8sprov "github.com/dstackai/dstack-go/providers/kubernetes"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/sim"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
)

// Env is what providers are built from.
type Env struct {
	// Lookup reads an environment variable; nil reads none.
	Lookup func(string) (string, bool)
	// Home is the user's home directory (an SSH fleet trusts its
	// ~/.ssh/known_hosts).
	Home string
	// AgentDir is this machine's agent directory (the local backend).
	AgentDir string
	// AgentCommand runs this machine's agent (the local backend starts
	// it on first use): for the CLI, its own binary and "agent".
	AgentCommand []string
	// Backends are the backends configured, in order; nil configures
	// every one (the CLI, where a run's `backends` choose). A provider of
	// given hosts (SSH fleets) needs no configuring.
	Backends []string
	// SimDir, when set, is a simulated cloud (package sim) that serves
	// every backend instead.
	SimDir string
	// Hint ends the error for a backend without a provider: what the
	// caller can do instead.
	Hint string
	// BackendConfig are the backends' settings blocks, by backend name,
	// in dstack's shape (`regions`, `creds`, ...); a backend without one
	// uses its defaults and its cloud's standard credentials.
	BackendConfig map[string]map[string]any
}

func (e Env) lookup(name string) (string, bool) {
	if e.Lookup == nil {
		return "", false
	}
	return e.Lookup(name)
}

// entry is one provider.
type entry struct {
	// hosts: the provider serves fleets of hosts given by address
	// (ssh_config) rather than machines it makes from offers. It offers
	// nothing and needs no configuring.
	hosts bool
	new   func(Env) (providers.Provider, error)
}

// known lists the providers by backend name.
var known = map[string]entry{
	local.Backend: {new: func(e Env) (providers.Provider, error) {
		return agentproc.Provider(e.AgentDir, e.AgentCommand), nil
	}},
	sshprov.Backend: {hosts: true, new: func(e Env) (providers.Provider, error) {
		return sshprov.ForUser(e.Home, e.lookup)
	}},
	awsprov.Backend: {new: newAWS},
	k8sprov.Backend: {new: newKubernetes},
}

// newKubernetes is the kubernetes backend: the cluster of the backend
// block's kubeconfig (else $KUBECONFIG, else ~/.kube/config) through
// dstack-provider-kubernetes, started when a call first needs it. Without
// a kubernetes block it offers nothing, so that plans of users without a
// cluster never start the program.
func newKubernetes(e Env) (providers.Provider, error) {
	block, configured := e.BackendConfig[k8sprov.Backend]
	s, err := k8sprov.FromConfig(block, func(p string) string {
		if rest, ok := strings.CutPrefix(p, "~/"); ok && e.Home != "" {
			return filepath.Join(e.Home, rest)
		}
		return p
	})
	if err != nil {
		return nil, err
	}
	return k8sprov.New(k8sprov.Options{Cluster: k8sprov.ProcessCluster(s, e.Lookup), Region: s.Region(), Lookup: e.Lookup,
		Unconfigured: !configured && e.Backends == nil}), nil
}

// newAWS is the aws backend: EC2 through dstack-provider-aws, started
// when a call first needs EC2. Instances accept the SSH key of their
// project (the state's lineage), kept at SSH_KEY_DIR/PROJECT/id_ed25519
// (the backend's ssh_key_dir, default ~/.dstack/aws/projects; made on
// first use); $DSTACK_AWS_SSH_KEY names one key for every project
// instead.
func newAWS(e Env) (providers.Provider, error) {
	s, err := awsprov.FromConfig(e.BackendConfig[awsprov.Backend])
	if err != nil {
		return nil, err
	}
	key, _ := e.lookup("DSTACK_AWS_SSH_KEY")
	dir := s.SSHKeyDir
	if strings.HasPrefix(dir, "~/") && e.Home != "" {
		dir = filepath.Join(e.Home, dir[2:])
	}
	if dir == "" && e.Home != "" {
		dir = filepath.Join(e.Home, ".dstack", "aws", "projects")
	}
	bin, _ := e.lookup("DSTACK_AGENT_BINARY")
	// The account's offers are read (and cached under ~/.dstack/cache/aws)
	// only for a configured backend: without a block there may be no
	// account, and every plan would pay for finding that out.
	var cache *awsprov.OfferCache
	if _, ok := e.BackendConfig[awsprov.Backend]; ok && e.Home != "" {
		cache = &awsprov.OfferCache{Dir: filepath.Join(e.Home, ".dstack", "cache", "aws")}
	}
	// DSTACK_AWS_IMDS_ENDPOINT: the metadata service the agents of spot
	// instances watch, for instances of the fake EC2 (not on EC2).
	imds, _ := e.lookup("DSTACK_AWS_IMDS_ENDPOINT")
	return awsprov.New(awsprov.Options{Cloud: awsprov.ProcessCloud(s, e.Lookup, cache), KeyPath: key, KeyDir: dir, AgentBinary: bin,
		IMDSEndpoint: imds})
}

// Names returns the backends that have a provider in this build, sorted.
func Names() []string {
	out := make([]string, 0, len(known))
	for n := range known {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// HostsBackend is the backend that serves fleets of given hosts
// (ssh_config), which the planner puts their instances on.
func HostsBackend() string {
	for _, n := range Names() {
		if known[n].hosts {
			return n
		}
	}
	return ""
}

// New builds the named backend's provider.
func New(name string, env Env) (providers.Provider, error) {
	e, ok := known[name]
	if !ok {
		return nil, noProvider(name, env.Hint)
	}
	p, err := e.new(env)
	if err != nil {
		return nil, fmt.Errorf("configuring the %s backend: %w", name, err)
	}
	return p, nil
}

func noProvider(name, hint string) error {
	msg := fmt.Sprintf("backend %q has no provider in this build: plans for it come from the offline catalog, but nothing can be made or refreshed there", name)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return fmt.Errorf("%s", msg)
}

// Set is the providers of an Env. Each is built on first use.
type Set struct {
	env   Env
	built map[string]func() (providers.Provider, error)
	sim   *sim.Cloud
}

var _ providers.Set = (*Set)(nil)

// Open returns the providers env configures.
func Open(env Env) (*Set, error) {
	s := &Set{env: env, built: map[string]func() (providers.Provider, error){}}
	if env.SimDir != "" {
		c, err := sim.Open(env.SimDir)
		if err != nil {
			return nil, err
		}
		s.sim = c
		return s, nil
	}
	for name := range known {
		s.built[name] = sync.OnceValues(func() (providers.Provider, error) { return New(name, env) })
	}
	return s, nil
}

// HostsBackend is the backend that serves fleets of given hosts.
func (s *Set) HostsBackend() string { return HostsBackend() }

// configured reports whether backend was configured.
func (s *Set) configured(backend string) bool {
	return s.env.Backends == nil || slices.Contains(s.env.Backends, backend)
}

// For implements providers.Set.
func (s *Set) For(backend string) (providers.Provider, error) {
	if s.sim != nil {
		return s.sim, nil
	}
	e, ok := known[backend]
	switch {
	case ok && (e.hosts || s.configured(backend)):
		return s.built[backend]()
	case !s.configured(backend):
		return nil, fmt.Errorf("backend %q is not configured (configured: %s): add a backend block for it", backend, strings.Join(s.env.Backends, ", "))
	}
	return nil, noProvider(backend, s.env.Hint)
}

// Offers implements providers.Set: the live offers of the configured
// providers that make machines, and the catalog's of the configured
// backends that have no provider.
func (s *Set) Offers(ctx context.Context) ([]offers.Offer, error) {
	if s.sim != nil {
		return s.sim.Offers(ctx)
	}
	var out []offers.Offer
	for _, name := range Names() {
		if known[name].hosts || !s.configured(name) {
			continue
		}
		p, err := s.built[name]()
		if err != nil {
			return nil, err
		}
		mine, err := p.Offers(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the offers of the %s backend: %w", name, err)
		}
		out = append(out, mine...)
	}
	if s.env.Backends != nil && !slices.ContainsFunc(s.env.Backends, func(b string) bool { _, ok := known[b]; return !ok }) {
		return out, nil
	}
	all, err := offers.Catalog()
	if err != nil {
		return nil, fmt.Errorf("reading the offers catalog: %w", err)
	}
	for _, o := range all {
		if _, ok := known[o.Backend]; ok {
			continue // its provider's offers are live
		}
		if s.env.Backends == nil || slices.ContainsFunc(s.env.Backends, func(b string) bool { return strings.EqualFold(b, o.Backend) }) {
			out = append(out, o)
		}
	}
	return out, nil
}
