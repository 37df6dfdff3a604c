package planner_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/registry"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
)

// world is a configuration directory, a local state and a simulated
// cloud, as one user's project.
type world struct {
	t       testing.TB
	dir     string
	cloud   *sim.Cloud
	backend *local.Backend
	// parallelism is converge's; 1 makes the simulated cloud's IDs
	// repeatable.
	parallelism int
	// set, when not nil, stands between the planner and the cloud.
	set providers.Set
	// refresh is how plan refreshes.
	refresh planner.RefreshOptions
	// hostsBackend, when set, is the backend of fleets of given hosts
	// instead of the registry's; "-" is none.
	hostsBackend string
}

func (w *world) hosts() string {
	switch w.hostsBackend {
	case "":
		return registry.HostsBackend()
	case "-":
		return ""
	}
	return w.hostsBackend
}

// providers is what plan and apply reach the cloud through.
func (w *world) providers() providers.Set {
	if w.set != nil {
		return w.set
	}
	return sim.Set{Cloud: w.cloud}
}

func newWorld(t testing.TB, cfg *sim.Config) *world {
	t.Helper()
	dir := t.TempDir()
	if cfg != nil {
		if err := sim.WriteConfig(filepath.Join(dir, "sim"), *cfg); err != nil {
			t.Fatal(err)
		}
	}
	c, err := sim.Open(filepath.Join(dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	b, err := local.New(map[string]string{"path": filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, dir: dir, cloud: c, backend: b}
}

// config writes files (replacing the previous configuration) and loads
// them.
func (w *world) config(files map[string]string) *lang.Config {
	w.t.Helper()
	cdir := filepath.Join(w.dir, "config")
	_ = os.RemoveAll(cdir)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(cdir, name), []byte(src), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	cfg, diags := load.Path(cdir, load.Options{})
	if diags.HasErrors() {
		w.t.Fatalf("loading:\n%v", diags.Err())
	}
	return cfg
}

func (w *world) store() *planner.Store {
	return &planner.Store{Backend: w.backend, Workspace: state.DefaultWorkspace}
}

type planOpts struct {
	mode    planner.Mode
	replace []string
	targets []string
	rerun   bool
}

func (w *world) plan(cfg *lang.Config, o planOpts) (*planner.Plan, error) {
	w.t.Helper()
	ctx := context.Background()
	snap, _, err := planner.Recover(ctx, w.store(), "test")
	if err != nil {
		return nil, err
	}
	prior, existed := state.New("test"), false
	if snap != nil {
		prior, existed = snap.State.Clone(), true
	}
	set := w.providers()
	drift, err := planner.Refresh(ctx, prior, set, w.refresh)
	if err != nil {
		return nil, err
	}
	all, err := set.Offers(ctx)
	if err != nil {
		return nil, err
	}
	return planner.Make(planner.Input{Config: cfg, Prior: prior, StateExisted: existed, Workspace: state.DefaultWorkspace,
		ToolVersion: "test", Offers: all, HostsBackend: w.hosts(), Mode: o.mode, Replace: o.replace, Targets: o.targets, RerunFinished: o.rerun, Drift: drift})
}

func (w *world) mustPlan(cfg *lang.Config, o planOpts) *planner.Plan {
	w.t.Helper()
	p, err := w.plan(cfg, o)
	if err != nil {
		w.t.Fatalf("plan: %v", err)
	}
	return p
}

func (w *world) apply(p *planner.Plan, opts planner.ApplyOptions) *planner.Result {
	w.t.Helper()
	ctx := context.Background()
	snap, err := w.backend.Read(ctx, state.DefaultWorkspace)
	st := w.store()
	if err == nil {
		st.Version = snap.Version
	}
	res, err := planner.Apply(ctx, p, st, w.providers(), opts)
	if err != nil {
		w.t.Fatalf("apply: %v", err)
	}
	return res
}

// converge plans and applies cfg, then checks that a second plan has no
// changes and that the cloud holds exactly what the state records.
func (w *world) converge(cfg *lang.Config) *planner.Plan {
	w.t.Helper()
	p := w.mustPlan(cfg, planOpts{})
	if res := w.apply(p, planner.ApplyOptions{Parallelism: w.parallelism}); res.Err() != nil {
		w.t.Fatalf("apply: %v", res.Err())
	}
	again := w.mustPlan(cfg, planOpts{})
	if !again.Empty() {
		w.t.Fatalf("the plan after apply is not empty:\n%s", describe(again))
	}
	w.checkInventory()
	return p
}

func describe(p *planner.Plan) string {
	var b strings.Builder
	for _, d := range p.Drift {
		b.WriteString("drift: " + d.Message + "\n")
	}
	for _, c := range p.Changes {
		b.WriteString(string(c.Action) + " " + c.Address + ": " + c.Reason + "\n")
	}
	return b.String()
}

// checkInventory compares the cloud's live objects with the instances in
// state: same tokens, same IDs, no orphan, no duplicate.
func (w *world) checkInventory() {
	w.t.Helper()
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	var inState []string
	if err == nil {
		for _, r := range snap.State.Resources {
			for _, in := range r.Instances {
				if in.Attributes["external"] == true {
					continue
				}
				inState = append(inState, in.Token+" "+in.ProviderID)
			}
		}
	}
	live, err := w.cloud.Live()
	if err != nil {
		w.t.Fatal(err)
	}
	var inCloud []string
	for _, o := range live {
		inCloud = append(inCloud, o.Token+" "+o.ID)
	}
	// A finished task's jobs stay in state as its record after the cloud
	// let go of them (their instance was torn down).
	if snap != nil {
		for _, r := range snap.State.Resources {
			for _, in := range r.Instances {
				key := in.Token + " " + in.ProviderID
				if (in.Status == providers.StatusDone || in.Status == providers.StatusFailed) && !slices.Contains(inCloud, key) {
					inState = slices.DeleteFunc(inState, func(s string) bool { return s == key })
				}
			}
		}
	}
	slices.Sort(inState)
	slices.Sort(inCloud)
	if !slices.Equal(inState, inCloud) {
		w.t.Fatalf("the cloud and the state disagree:\nstate: %v\ncloud: %v", inState, inCloud)
	}
}

func (w *world) state() *state.State {
	w.t.Helper()
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		w.t.Fatal(err)
	}
	return snap.State
}

func liveObjects(t testing.TB, c *sim.Cloud) []providers.Object {
	live, err := c.Live()
	if err != nil {
		t.Fatal(err)
	}
	return live
}

func mustOffers(t testing.TB, w *world) []offers.Offer {
	all, err := sim.Set{Cloud: w.cloud}.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}
