package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
