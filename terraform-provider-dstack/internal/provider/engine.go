package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backends"
)

// private is what a resource keeps in Terraform's private state: a copy
// of its record in the provider's store (instances with their
// idempotency tokens, provider IDs and secrets), which Terraform stores
// but never shows. The store is the source of truth; the copy adopts a
// resource the store lacks (one made before the store existed).
type private struct {
	// Resource is nil before anything was made.
	Resource *state.Resource `json:"resource,omitempty"`
	// Hosts were the fleets a run was placed on when it was planned;
	// read from older states and no longer written (the store has them).
	Hosts []*state.Resource `json:"hosts,omitempty"`
}

func readPrivate(b []byte) (*private, error) {
	p := &private{}
	if len(b) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("reading the resource's private state: %w", err)
	}
	return p, nil
}

func (p *private) bytes() []byte {
	if p == nil || (p.Resource == nil && len(p.Hosts) == 0) {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("provider: encoding private state: %v", err))
	}
	return b
}

// dstackState reads the resource at addr from the dstack CLI's state.
func (s *settings) dstackState(ctx context.Context, addr string) (*state.Resource, error) {
	b, err := backends.New(s.stateBackend, s.stateConfig)
	if err != nil {
		return nil, err
	}
	snap, err := b.Read(ctx, s.workspace)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("the dstack state (%s backend, workspace %q) is empty", s.stateBackend, s.workspace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the dstack state: %w", err)
	}
	r := snap.State.Resource(addr)
	if r == nil {
		return nil, fmt.Errorf("the dstack state (%s backend, workspace %q) has no %s", s.stateBackend, s.workspace, addr)
	}
	return r, nil
}

// moveFromCLI moves the record at addr out of the dstack CLI's state
// (state_backend, state_config, workspace): under that state's lock, and
// its interrupted apply recovered, keep is called with the record (it
// stores it in the provider's store), and then the state is written
// back without it, compare-and-swap against the version read. A record
// other resources of the CLI's state depend on is refused: moving it
// would leave them pointing at what the CLI no longer manages.
func (s *settings) moveFromCLI(ctx context.Context, addr, version string, keep func(*state.Resource) error) error {
	b, err := backends.New(s.stateBackend, s.stateConfig)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("the dstack state (%s backend, workspace %q)", s.stateBackend, s.workspace)
	host, _ := os.Hostname()
	info := state.LockInfo{Operation: "terraform import " + addr, Who: "terraform-provider-dstack@" + host, Version: version, Path: s.workspace, Host: host, PID: os.Getpid()}
	lease, err := state.Hold(ctx, b, s.workspace, info, state.HoldOptions{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("locking %s: %w", where, err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	ps := &planner.Store{Backend: b, Workspace: s.workspace, LockID: lease.Info.ID}
	snap, _, err := planner.Recover(ctx, ps, version)
	if err != nil {
		return fmt.Errorf("reading %s: %w", where, err)
	}
	if snap == nil {
		return fmt.Errorf("%s is empty", where)
	}
	st := snap.State
	rec := st.Resource(addr)
	if rec == nil {
		return fmt.Errorf("%s has no %s", where, addr)
	}
	for _, r := range st.Resources {
		if slices.Contains(r.DependsOn, addr) {
			return fmt.Errorf("%s in %s depends on %s: destroy it or import it first", r.Address, where, addr)
		}
	}
	if err := keep(cloneResource(rec)); err != nil {
		return err
	}
	st.Remove(addr)
	st.Serial++
	if _, err := b.Write(ctx, s.workspace, st, snap.Version, lease.Info.ID); err != nil {
		return fmt.Errorf("removing %s from %s (the provider's store has it now; run dstack state rm %s so that only Terraform manages it): %w", addr, where, addr, err)
	}
	return nil
}

// cloneResource deep-copies a record through its JSON encoding, as
// state.State.Clone does.
func cloneResource(r *state.Resource) *state.Resource {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("provider: cloning %s: %v", r.Address, err))
	}
	var out state.Resource
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("provider: cloning %s: %v", r.Address, err))
	}
	return &out
}
