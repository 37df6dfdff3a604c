package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backends"
)

// memBackend is the state backend apply records into while it carries
// out one resource's change: Terraform, not dstack, keeps the state, so
// the result goes back to Terraform (the resource's private state) once
// apply returns. It implements the whole state.Backend contract for one
// workspace, compare-and-swap included.
type memBackend struct {
	mu      sync.Mutex
	st      *state.State
	version int
}

var _ state.Backend = (*memBackend)(nil)

func (m *memBackend) Read(_ context.Context, _ string) (*state.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st == nil {
		return nil, state.ErrNotFound
	}
	return &state.Snapshot{State: m.st.Clone(), Version: m.ver()}, nil
}

func (m *memBackend) ver() state.Version {
	if m.version == 0 {
		return ""
	}
	return state.Version(fmt.Sprint(m.version))
}

func (m *memBackend) Write(_ context.Context, ws string, s *state.State, prev state.Version, _ string) (state.Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev != m.ver() {
		return "", &state.ConflictError{Workspace: ws, Expected: prev, Actual: m.ver()}
	}
	m.st = s.Clone()
	m.version++
	return m.ver(), nil
}

func (m *memBackend) Lock(_ context.Context, _ string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	l := state.PrepareLock(info, time.Now(), ttl)
	return &l, nil
}

func (m *memBackend) Renew(context.Context, string, string, time.Duration) error { return nil }
func (m *memBackend) Unlock(context.Context, string, string) error               { return nil }
func (m *memBackend) ForceUnlock(context.Context, string, string) error          { return nil }
func (m *memBackend) LockInfo(context.Context, string) (*state.LockInfo, error)  { return nil, nil }
func (m *memBackend) Workspaces(context.Context) ([]string, error)               { return []string{"terraform"}, nil }
func (m *memBackend) DeleteWorkspace(context.Context, string) error              { return nil }

// private is what a resource keeps in Terraform's private state: its
// dstack state record (instances with their idempotency tokens, provider
// IDs and secrets), which Terraform stores but never shows.
type private struct {
	// Resource is nil before anything was made.
	Resource *state.Resource `json:"resource,omitempty"`
	// Hosts are the fleets a run was placed on when it was planned, for
	// an apply in which Terraform does not visit those fleets.
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

// fleets remembers the fleets this provider process has seen (read,
// planned, made or imported), so that runs naming them are placed on
// their instances as `dstack apply` places them. Terraform visits a
// fleet before a run that refers to it (dstack_fleet.x.name), so the
// fleet is known by the time the run is planned or applied.
type fleets struct {
	mu sync.Mutex
	m  map[string]*state.Resource
}

func (f *fleets) put(r *state.Resource) {
	if r == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*state.Resource{}
	}
	f.m[r.Address] = r
}

func (f *fleets) remove(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, addr)
}

func (f *fleets) get(addr string) *state.Resource {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[addr]
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
