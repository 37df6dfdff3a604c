package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
)

// set is a providers.Set with no backend for fleets of given hosts.
type set struct{ providers.Set }

func (set) HostsBackend() string { return "" }

// project is a configuration directory and a local state, as a team's,
// with the providers its applies and its loop use.
type project struct {
	t       testing.TB
	dir     string
	backend *local.Backend
	set     controller.Providers
	// secrets are the opened secrets the applies give the jobs.
	secrets map[string]string
}

func newProject(t testing.TB, ps providers.Set) *project {
	t.Helper()
	dir := t.TempDir()
	b, err := local.New(map[string]string{"path": filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	return &project{t: t, dir: dir, backend: b, set: set{ps}}
}

func simProject(t testing.TB) (*project, *sim.Cloud) {
	t.Helper()
	dir := t.TempDir()
	c, err := sim.Open(filepath.Join(dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return newProject(t, sim.Set{Cloud: c}), c
}

// config writes one configuration file and loads it.
func (p *project) config(src string) *lang.Config {
	p.t.Helper()
	cdir := filepath.Join(p.dir, "config")
	_ = os.RemoveAll(cdir)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, "main.dstack.yml"), []byte(src), 0o644); err != nil {
		p.t.Fatal(err)
	}
	cfg, diags := load.Path(cdir, load.Options{})
	if diags.HasErrors() {
		p.t.Fatalf("loading:\n%v", diags.Err())
	}
	return cfg
}

// plan is `dstack plan`: under the lock, refreshed.
func (p *project) plan(cfg *lang.Config) *planner.Plan {
	p.t.Helper()
	pl, release := p.lockedPlan(cfg)
	release()
	return pl
}

func (p *project) lockedPlan(cfg *lang.Config) (*planner.Plan, func()) {
	p.t.Helper()
	ctx := context.Background()
	lease, err := state.Hold(ctx, p.backend, state.DefaultWorkspace, state.LockInfo{Operation: "plan", Who: "test", PID: os.Getpid()},
		state.HoldOptions{Timeout: 2 * 60e9})
	if err != nil {
		p.t.Fatal(err)
	}
	release := func() { _ = lease.Release(ctx) }
	store := &planner.Store{Backend: p.backend, Workspace: state.DefaultWorkspace, LockID: lease.Info.ID}
	snap, _, err := planner.Recover(ctx, store, "test")
	if err != nil {
		release()
		p.t.Fatal(err)
	}
	prior, existed := state.New("test"), false
	if snap != nil {
		prior, existed = snap.State, true
	}
	drift, err := planner.Refresh(ctx, prior, p.set, planner.RefreshOptions{Holder: lease.Info.ID})
	if err != nil {
		release()
		p.t.Fatal(err)
	}
	offs, err := p.set.Offers(ctx)
	if err != nil {
		release()
		p.t.Fatal(err)
	}
	pl, err := planner.Make(planner.Input{Config: cfg, Prior: prior, StateExisted: existed, Workspace: state.DefaultWorkspace,
		ToolVersion: "test", Offers: offs, Drift: drift})
	if err != nil {
		release()
		p.t.Fatalf("plan: %v", err)
	}
	// The apply that follows holds the same lease.
	return pl, func() {
		release()
	}
}

// apply is `dstack apply -y`: plan and apply under one lock.
func (p *project) apply(cfg *lang.Config) *planner.Result {
	p.t.Helper()
	res, err := p.tryApply(cfg)
	if err != nil {
		p.t.Fatalf("apply: %v", err)
	}
	return res
}

func (p *project) tryApply(cfg *lang.Config) (*planner.Result, error) {
	ctx := context.Background()
	lease, err := state.Hold(ctx, p.backend, state.DefaultWorkspace, state.LockInfo{Operation: "apply", Who: "test", PID: os.Getpid()},
		state.HoldOptions{Timeout: 2 * 60e9})
	if err != nil {
		return nil, err
	}
	defer func() { _ = lease.Release(ctx) }()
	store := &planner.Store{Backend: p.backend, Workspace: state.DefaultWorkspace, LockID: lease.Info.ID}
	snap, _, err := planner.Recover(ctx, store, "test")
	if err != nil {
		return nil, err
	}
	prior, existed := state.New("test"), false
	if snap != nil {
		prior, existed = snap.State, true
		store.Version = snap.Version
	}
	drift, err := planner.Refresh(ctx, prior, p.set, planner.RefreshOptions{Holder: lease.Info.ID})
	if err != nil {
		return nil, err
	}
	offs, err := p.set.Offers(ctx)
	if err != nil {
		return nil, err
	}
	pl, err := planner.Make(planner.Input{Config: cfg, Prior: prior, StateExisted: existed, Workspace: state.DefaultWorkspace,
		ToolVersion: "test", Offers: offs, Drift: drift})
	if err != nil {
		return nil, err
	}
	if pl.Empty() {
		return &planner.Result{State: prior}, nil
	}
	return planner.Apply(ctx, pl, store, p.set, planner.ApplyOptions{ToolVersion: "test", Fence: lease, Secrets: p.secrets,
		Holder: planner.Holder{Lock: lease.Info.ID, PID: os.Getpid()}})
}

// state reads the stored state.
func (p *project) state() *state.State {
	p.t.Helper()
	snap, err := p.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		p.t.Fatal(err)
	}
	return snap.State
}

func (p *project) loop(o controller.Options) *controller.Loop {
	o.Backend, o.Workspace, o.Providers, o.ToolVersion = p.backend, state.DefaultWorkspace, p.set, "test"
	if o.Logf == nil {
		o.Logf = p.t.Logf
	}
	return controller.New(o)
}

// tick runs one tick, failing the test on an error.
func tick(t testing.TB, l *controller.Loop) controller.Report {
	t.Helper()
	rep, err := l.Tick(context.Background())
	if err != nil {
		t.Fatalf("tick: %v (report %+v)", err, rep)
	}
	return rep
}

// noDrift checks that `dstack plan` of cfg finds nothing to change.
func (p *project) noDrift(cfg *lang.Config) {
	p.t.Helper()
	pl := p.plan(cfg)
	if !pl.Empty() {
		var b strings.Builder
		for _, d := range pl.Drift {
			b.WriteString("drift: " + d.Message + "\n")
		}
		for _, c := range pl.Changes {
			b.WriteString(string(c.Action) + " " + c.Address + ": " + c.Reason + "\n")
		}
		p.t.Fatalf("plan after the loop is not empty:\n%s", b.String())
	}
}

func live(st *state.State, addr string) []*state.Instance {
	r := st.Resource(addr)
	if r == nil {
		return nil
	}
	var out []*state.Instance
	for _, in := range r.Instances {
		if !providers.Ended(in.Status) {
			out = append(out, in)
		}
	}
	return out
}
