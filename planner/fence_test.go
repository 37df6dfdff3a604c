package planner_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
)

// lapsingFence is a lease that lapses when told to.
type lapsingFence struct {
	mu     sync.Mutex
	lapsed bool
}

func (f *lapsingFence) lapse() { f.mu.Lock(); f.lapsed = true; f.mu.Unlock() }

func (f *lapsingFence) Valid() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lapsed {
		return &state.LeaseLapsedError{ID: "lock-a", Since: time.Now()}
	}
	return nil
}

func (f *lapsingFence) Until() time.Time { return time.Now().Add(time.Minute) }

// countingSet counts the Create calls that reach the cloud, and runs
// after() once each returns.
type countingSet struct {
	sim.Set
	creates atomic.Int32
	after   func()
}

func (s *countingSet) For(b string) (providers.Provider, error) {
	p, err := s.Set.For(b)
	if err != nil {
		return nil, err
	}
	return countingProvider{p, s}, nil
}

type countingProvider struct {
	providers.Provider
	s *countingSet
}

func (p countingProvider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	p.s.creates.Add(1)
	o, err := p.Provider.Create(ctx, req)
	p.s.after()
	return o, err
}

const fencedConfig = `type: volume
name: v
backend: aws
region: us-east-1
size: 10GB
---
type: fleet
name: f
nodes: 4
resources:
  gpu: A100:8
`

// TestFenceLapsedLeaseStartsNothing: once the lease lapses (here, right
// after the first create), apply starts no other provider call, says
// why, and leaves the intents of what it did not make; the next holder
// keeps them pending while the writer may still run, drops them once it
// is gone, and converges with nothing orphaned.
func TestFenceLapsedLeaseStartsNothing(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": fencedConfig})
	fence := &lapsingFence{}
	cs := &countingSet{Set: sim.Set{Cloud: w.cloud}, after: fence.lapse}
	w.set = cs
	p := w.mustPlan(cfg, planOpts{})
	holder := planner.Holder{Lock: "lock-a", Host: "host-a", PID: 4242}
	res := w.apply(p, planner.ApplyOptions{Parallelism: 1, Fence: fence, Holder: holder})
	if n := cs.creates.Load(); n != 1 {
		t.Fatalf("%d creates reached the cloud; want 1: none may start once the lease lapsed", n)
	}
	var fe *planner.FencedError
	var lapsed *state.LeaseLapsedError
	if !errors.As(res.Fenced, &fe) || !errors.As(res.Fenced, &lapsed) {
		t.Fatalf("Fenced = %v, want a *FencedError for the lapsed lease", res.Fenced)
	}
	if res.Err() == nil || !strings.Contains(res.Err().Error(), "stopped starting work") {
		t.Fatalf("Err = %v, want it to say apply stopped starting work", res.Err())
	}
	// The next holder: while the writer may still run, its unmade
	// intents stay, pending, and nothing takes their place.
	ctx := context.Background()
	st := w.state().Clone()
	alive := func(string, int) bool { return false }
	drift, err := planner.Refresh(ctx, st, w.set, planner.RefreshOptions{Holder: "lock-b", WriterGone: alive})
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, d := range drift {
		if strings.Contains(d.Message, "may still be created by an apply that lost its state lock") {
			pending++
		}
	}
	if pending != 4 {
		t.Fatalf("%d intents reported pending, want 4 (the one made is adopted):\n%v", pending, drift)
	}
	n := 0
	for _, r := range st.Resources {
		n += len(r.Instances)
	}
	if n != 5 {
		t.Fatalf("the refreshed state holds %d instances, want all 5 (one made, four pending)", n)
	}
	// Past the writer's lease plus the grace for calls in flight, or
	// once the writer is gone, they are dropped and the rest is made.
	st = w.state().Clone()
	later := func() time.Time { return time.Now().Add(time.Minute + planner.DefaultCallGrace + time.Second) }
	drift, err = planner.Refresh(ctx, st, w.set, planner.RefreshOptions{Holder: "lock-b", WriterGone: alive, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if dropped := countDrift(drift, "was never created"); dropped != 4 {
		t.Fatalf("%d intents dropped past the grace, want 4:\n%v", dropped, drift)
	}
	gone := func(host string, pid int) bool { return host == "host-a" && pid == 4242 }
	st = w.state().Clone()
	drift, err = planner.Refresh(ctx, st, w.set, planner.RefreshOptions{Holder: "lock-b", WriterGone: gone})
	if err != nil {
		t.Fatal(err)
	}
	if dropped := countDrift(drift, "was never created"); dropped != 4 {
		t.Fatalf("%d intents dropped once their writer is gone, want 4:\n%v", dropped, drift)
	}
	w.set = sim.Set{Cloud: w.cloud}
	w.refresh = planner.RefreshOptions{Holder: "lock-b", WriterGone: gone}
	w.converge(cfg)
}

func countDrift(drift []planner.Drift, substr string) int {
	n := 0
	for _, d := range drift {
		if strings.Contains(d.Message, substr) {
			n++
		}
	}
	return n
}

// TestJournalThatCannotBeReplayedIsSetAside: a journal with no begin
// record (what a stalled holder's appends left before appends needed the
// lock) no longer jams every later command: it is set aside beside the
// state, the command goes on from the last state written, and the
// objects it recorded are adopted by the refresh.
func TestJournalThatCannotBeReplayedIsSetAside(t *testing.T) {
	w := newWorld(t, nil)
	cfg := w.config(map[string]string{"main.dstack.yml": fencedConfig})
	w.converge(cfg)
	// An object made by an apply whose journal lost its begin record.
	ctx := context.Background()
	p, err := sim.Set{Cloud: w.cloud}.For("aws")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-orphan", Address: "volume.extra[0]",
		Spec: []byte(`{"type":"volume","name":"extra","backend":"aws","region":"us-east-1","size":"10GB"}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"op":"put-instance","address":"volume.extra","instance":{"index":0,"provider":"aws","token":"tok-orphan","provider_id":"` + obj.ID + `","status":"running","attributes":{"kind":"volume"}}}`
	if err := w.backend.AppendJournal(ctx, state.DefaultWorkspace, "", [][]byte{[]byte(rec)}); err != nil {
		t.Fatal(err)
	}
	snap, got, err := planner.Recover(ctx, w.store(), "test")
	if err != nil {
		t.Fatalf("Recover: %v (a journal that cannot be replayed must not jam the command)", err)
	}
	if got.SetAside == "" || !strings.Contains(got.Problem, "begin record") {
		t.Fatalf("Recover = %+v, want the journal set aside for its missing begin record", got)
	}
	if _, err := os.Stat(got.SetAside); err != nil {
		t.Fatalf("the journal set aside is not kept: %v", err)
	}
	if raw, err := w.backend.ReadJournal(ctx, state.DefaultWorkspace); err != nil || len(raw) != 0 {
		t.Fatalf("a journal is still in the way: %d records, %v", len(raw), err)
	}
	if r := snap.State.Resource("volume.extra"); r == nil || len(r.Instances) != 1 || r.Instances[0].Token != "tok-orphan" {
		t.Fatalf("the object the journal recorded is not in the state to be adopted: %+v", r)
	}
	// The next plan adopts it and, not being configured, tears it down.
	p2 := w.mustPlan(cfg, planOpts{})
	if countDrift(p2.Drift, "adopting it") != 1 {
		t.Fatalf("the plan did not adopt the object:\n%s", describe(p2))
	}
	if res := w.apply(p2, planner.ApplyOptions{}); res.Err() != nil {
		t.Fatal(res.Err())
	}
	w.checkInventory()
}
