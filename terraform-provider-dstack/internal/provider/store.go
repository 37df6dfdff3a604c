package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/state"
)

// lockTimeout is how long an apply waits for the store's lock that
// another Terraform run holds.
const lockTimeout = 5 * time.Minute

// store is the provider's dstack state: every fleet, run, volume and
// gateway the provider manages, with their records, as `dstack apply`
// keeps them (see docs/design.md, "The Terraform provider's store").
// Plans read it; applies, reads and imports change it under its lock.
type store struct {
	backend   state.Backend
	workspace string
	version   string
	// mu lets one change at a time through within this process; the
	// lease keeps other processes out.
	mu sync.Mutex
}

// snapshot is the stored state (an empty one when nothing was stored)
// and its version.
func (s *store) snapshot(ctx context.Context) (*state.State, state.Version, error) {
	snap, err := s.backend.Read(ctx, s.workspace)
	if errors.Is(err, state.ErrNotFound) {
		return state.New(s.version), "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the provider's store (workspace %q): %w", s.workspace, err)
	}
	return snap.State, snap.Version, nil
}

// session is the store held by one change: the lease, the state as
// stored (journal recovered) and where apply records.
type session struct {
	st    *state.State
	ps    *planner.Store
	lease *state.Lease
}

// write stores st, as changed by the caller outside planner.Apply.
func (ss *session) write(ctx context.Context, st *state.State) error {
	st.Serial++
	v, err := ss.ps.Backend.Write(ctx, ss.ps.Workspace, st, ss.ps.Version, ss.ps.LockID)
	if err != nil {
		return fmt.Errorf("writing the provider's store: %w", err)
	}
	ss.ps.Version = v
	return nil
}

// hold takes the store's lock for op, recovers the journal an
// interrupted apply left behind, and calls fn with the stored state.
func (s *store) hold(ctx context.Context, op string, fn func(*session) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	host, _ := os.Hostname()
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	info := state.LockInfo{Operation: op, Who: who + "@" + host, Version: s.version, Path: s.workspace, Host: host, PID: os.Getpid()}
	lease, err := state.Hold(ctx, s.backend, s.workspace, info, state.HoldOptions{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("locking the provider's store (workspace %q): %w", s.workspace, err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	ps := &planner.Store{Backend: s.backend, Workspace: s.workspace, LockID: lease.Info.ID}
	snap, _, err := planner.Recover(ctx, ps, s.version)
	if err != nil {
		return fmt.Errorf("recovering the provider's store: %w", err)
	}
	st := state.New(s.version)
	if snap != nil {
		st, ps.Version = snap.State, snap.Version
	}
	return fn(&session{st: st, ps: ps, lease: lease})
}

// runPlan is what one resource is planned against: the configuration
// `dstack plan` would see for everything the provider manages.
type runPlan struct {
	// res is the resource's configuration; nil when it is destroyed.
	res *lang.Resource
	// addr is its address.
	addr string
	// pending are other resources planned in this process and not yet
	// in the store as configured (their configuration, or nil for a
	// resource being destroyed).
	pending map[string]*lang.Resource
}

// configFor builds the configuration and targets for planning rp
// against st: every stored resource's recorded configuration, with the
// pending ones' and rp's own in their place. Only rp and the pending
// resources are targets; the others are there so that their runs count
// on the hosts they take.
func configFor(st *state.State, rp runPlan) (*lang.Config, []string) {
	cfg := lang.NewConfig()
	targets := map[string]bool{rp.addr: true}
	for a := range rp.pending {
		targets[a] = true
	}
	for _, r := range st.Resources {
		if targets[r.Address] {
			continue
		}
		a, err := lang.ParseAddress(r.Address)
		if err != nil {
			continue
		}
		spec, err := recordedSpec(r)
		if err != nil {
			continue // an interrupted record: its plan says so when targeted
		}
		cfg.Add(&lang.Resource{Address: a, Spec: spec})
	}
	for _, res := range rp.pending {
		if res != nil {
			cfg.Add(res)
		}
	}
	if rp.res != nil {
		cfg.Add(rp.res)
	}
	out := make([]string, 0, len(targets))
	for a := range targets {
		out = append(out, a)
	}
	sort.Strings(out)
	return cfg, out
}
