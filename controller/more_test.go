package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/secrets"
)

// TestLoopStartsScheduledTask: a task with a schedule has no job until
// one of its cron times comes; the loop starts it then, and again at the
// next time once it finished.
func TestLoopStartsScheduledTask(t *testing.T) {
	p, cloud := simProject(t)
	cfg := p.config("type: task\nname: nightly\ncommands: [eval]\nschedule:\n  cron: \"0 3 * * *\"\n")
	p.apply(cfg)
	if n := len(p.state().Resource("task.nightly").Instances); n != 0 {
		t.Fatalf("%d jobs after apply, want none before the schedule", n)
	}
	clk := &clock{t: time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)}
	l := p.loop(controller.Options{Now: clk.now})
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("tick at 02:00 changed %v", rep.Changes)
	}
	clk.add(61 * time.Minute)
	rep := tick(t, l)
	jobs := live(p.state(), "task.nightly")
	if len(jobs) != 1 || len(rep.Changes) != 1 {
		t.Fatalf("at 03:01: jobs %d, changes %v", len(jobs), rep.Changes)
	}
	if want := `task.nightly: control loop: its schedule "0 3 * * *" came at 2026-12-08T03:00:00Z`; rep.Changes[0] != want {
		t.Errorf("change %q, want %q", rep.Changes[0], want)
	}
	p.noDrift(cfg)
	clk.add(time.Hour)
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("a running scheduled task was started again: %v", rep.Changes)
	}
	// It ends (the machine goes; no retry): the next time starts it again.
	if err := cloud.Interrupt(jobs[0].ProviderID, "preempted"); err != nil {
		t.Fatal(err)
	}
	tick(t, l)
	if n := len(live(p.state(), "task.nightly")); n != 0 {
		t.Fatalf("%d live jobs after it ended, before the next time", n)
	}
	clk.add(24 * time.Hour)
	if rep := tick(t, l); len(live(p.state(), "task.nightly")) != 1 {
		t.Fatalf("the next day's time did not start it: %+v", rep)
	}
}

// TestLoopAndApplyConcurrently: ticks of the loop and applies of changed
// configurations run at the same time against one state; each waits for
// the other's lock, and at the end the state and the cloud agree: every
// live object is in the state once, and nothing the state records is
// missing.
func TestLoopAndApplyConcurrently(t *testing.T) {
	p, cloud := simProject(t)
	svc := func(n int, cmd string) string {
		return fmt.Sprintf("type: service\nname: web\nport: 8000\ncommands: [%s]\nreplicas: %d\n---\ntype: task\nname: job\ncommands: [run]\nretry:\n  on_events: [interruption]\n", cmd, n)
	}
	p.apply(p.config(svc(2, "serve")))
	l := p.loop(controller.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var tickErrs []error
	ticks := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := l.Tick(ctx); err != nil && ctx.Err() == nil {
				tickErrs = append(tickErrs, err)
			}
			ticks++
			// The loop ticks every Interval; a tight loop would take
			// the lock back before the apply's backoff asks again.
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var last string
	for i := range 12 {
		last = svc(1+i%3, fmt.Sprintf("serve-%d", i))
		if _, err := p.tryApply(p.config(last)); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		// Interrupt the task's job now and then: the loop re-runs it.
		if i%4 == 0 {
			if js := live(p.state(), "task.job"); len(js) > 0 {
				_ = cloud.Interrupt(js[0].ProviderID, "spot interruption")
			}
		}
	}
	cancel()
	wg.Wait()
	if len(tickErrs) > 0 {
		t.Fatalf("ticks failed: %v", tickErrs)
	}
	if ticks < 2 {
		t.Fatalf("only %d ticks ran", ticks)
	}
	tick(t, l) // the last interruption, if any
	st := p.state()
	var inState []string
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			if in.Status == "running" {
				inState = append(inState, in.ProviderID)
			}
		}
	}
	objs, err := cloud.Live()
	if err != nil {
		t.Fatal(err)
	}
	var inCloud []string
	for _, o := range objs {
		inCloud = append(inCloud, o.ID)
	}
	slices.Sort(inState)
	slices.Sort(inCloud)
	if !slices.Equal(inState, inCloud) {
		t.Fatalf("state and cloud disagree:\nstate %v\ncloud %v", inState, inCloud)
	}
	p.noDrift(p.config(last))
	t.Logf("%d ticks beside 12 applies; serial %d", ticks, st.Serial)
}

// TestAPI: the loop's API answers only with its token; it lists runs,
// reports its ticks, and applies a saved plan made against the current
// state (a stale one is refused).
func TestAPI(t *testing.T) {
	p, _ := simProject(t)
	cfg := p.config("type: task\nname: train\ncommands: [train]\n")
	p.apply(cfg)
	l := p.loop(controller.Options{})
	tick(t, l)
	srv := httptest.NewServer(l.Handler("s3cret"))
	defer srv.Close()
	do := func(method, path, token string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, tok := range []string{"", "wrong"} {
		if code, _ := do("GET", "/api/runs", tok, nil); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	code, body := do("GET", "/api/runs", "s3cret", nil)
	var runs struct {
		Runs []controller.RunInfo `json:"runs"`
	}
	if err := json.Unmarshal(body, &runs); err != nil || code != 200 || len(runs.Runs) != 1 || runs.Runs[0].Name != "train" ||
		len(runs.Runs[0].Jobs) != 1 || runs.Runs[0].Jobs[0].Status != "running" {
		t.Fatalf("runs: %d %s", code, body)
	}
	if code, body := do("GET", "/api/metrics", "s3cret", nil); code != 200 || !bytes.Contains(body, []byte(`"ticks": 1`)) {
		t.Fatalf("metrics: %d %s", code, body)
	}
	// A saved plan (plan -out) that adds a second task.
	next := p.config("type: task\nname: train\ncommands: [train]\n---\ntype: task\nname: eval\ncommands: [eval]\n")
	pl := p.plan(next)
	file := filepath.Join(t.TempDir(), "plan.bin")
	if err := planner.Save(file, pl); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	code, body = do("POST", "/api/apply", "s3cret", saved)
	if code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	if n := len(live(p.state(), "task.eval")); n != 1 {
		t.Fatalf("the saved plan was not applied: %d jobs of task.eval; %s", n, body)
	}
	p.noDrift(next)
	// The same plan again: the state moved on since.
	code, body = do("POST", "/api/apply", "s3cret", saved)
	if code != http.StatusConflict || !bytes.Contains(body, []byte("stale")) {
		t.Fatalf("stale plan: %d %s", code, body)
	}
}

// stopper is the simulated cloud whose provider reports some jobs as
// stopped on purpose (as an agent reports a job stopped by dstack stop
// or max_duration), which the simulated cloud itself never does.
type stopper struct {
	providers.Provider
	mu      sync.Mutex
	stopped map[string]bool
}

func (s *stopper) stop(token string) { s.mu.Lock(); s.stopped[token] = true; s.mu.Unlock() }

func (s *stopper) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	objs, err := s.Provider.Describe(ctx, tokens)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, o := range objs {
		if s.stopped[t] {
			o.Status, o.Reason = providers.StatusStopped, "on request"
			objs[t] = o
		}
	}
	return objs, err
}

type stopperSet struct{ s *stopper }

func (ss stopperSet) For(string) (providers.Provider, error) { return ss.s, nil }
func (ss stopperSet) Offers(ctx context.Context) ([]offers.Offer, error) {
	return ss.s.Offers(ctx)
}

// TestLoopLeavesStoppedRunAlone: a service whose replica was stopped on
// purpose is not made again by the loop, tick after tick and across a
// restart of the loop, though the loop writes the state for other
// resources meanwhile; once applied again, the loop keeps it again.
func TestLoopLeavesStoppedRunAlone(t *testing.T) {
	c, err := sim.Open(filepath.Join(t.TempDir(), "sim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	st := &stopper{Provider: c, stopped: map[string]bool{}}
	p := newProject(t, stopperSet{st})
	cfg := p.config("type: service\nname: web\nport: 8000\ncommands: [serve]\nreplicas: 2\n---\n" +
		"type: task\nname: job\ncommands: [run]\nretry:\n  on_events: [interruption]\n")
	p.apply(cfg)
	web := live(p.state(), "service.web")
	st.stop(web[1].Token)
	job := live(p.state(), "task.job")[0]
	if err := c.Interrupt(job.ProviderID, "spot interruption"); err != nil {
		t.Fatal(err)
	}
	l := p.loop(controller.Options{})
	rep := tick(t, l)
	if len(rep.Changes) != 1 || !strings.HasPrefix(rep.Changes[0], "task.job:") {
		t.Fatalf("changes %v, want only the task's re-run", rep.Changes)
	}
	if !strings.Contains(rep.Skipped["service.web"], "stopped on purpose (on request)") {
		t.Fatalf("skipped %v", rep.Skipped)
	}
	ins := p.state().Resource("service.web").Instances
	if len(ins) != 2 || ins[1].Status != providers.StatusStopped || ins[1].Token != web[1].Token {
		t.Fatalf("service.web in state after the tick: %+v", ins)
	}
	// A new loop (a restart) leaves it alone too, and writes nothing.
	serial := p.state().Serial
	rep = tick(t, p.loop(controller.Options{}))
	if len(rep.Changes) != 0 || len(rep.Drift) != 0 || p.state().Serial != serial {
		t.Fatalf("a restarted loop acted: %+v (serial %d → %d)", rep, serial, p.state().Serial)
	}
	// Applied again: the replica is made again, and the loop keeps it.
	p.apply(cfg)
	if n := len(live(p.state(), "service.web")); n != 2 {
		t.Fatalf("after apply: %d replicas", n)
	}
	if rep := tick(t, l); len(rep.Changes) != 0 || len(rep.Skipped) != 0 {
		t.Fatalf("after apply the loop did %+v", rep)
	}
}

// TestLoopSensitiveValuesFromFiles: the state holds a registry password
// masked, so from the state alone the loop leaves the service alone;
// given the configuration files it was applied from, unchanged, it makes
// a lost replica again; a file edited since (not applied) is not used.
func TestLoopSensitiveValuesFromFiles(t *testing.T) {
	p, cloud := simProject(t)
	src := "type: service\nname: web\nport: 8000\ncommands: [serve]\nreplicas: 2\nimage: registry.example.com/web:1\n" +
		"registry_auth:\n  username: ci\n  password: hunter2\n"
	cfg := p.config(src)
	p.apply(cfg)
	lose := func() {
		t.Helper()
		js := live(p.state(), "service.web")
		if err := cloud.Interrupt(js[len(js)-1].ProviderID, "machine failure"); err != nil {
			t.Fatal(err)
		}
	}
	lose()
	rep := tick(t, p.loop(controller.Options{}))
	if len(rep.Changes) != 0 || !strings.Contains(rep.Skipped["service.web"], "sensitive values") {
		t.Fatalf("without the files: %+v", rep)
	}
	files := func() (*lang.Config, error) { return p.config(src), nil }
	rep = tick(t, p.loop(controller.Options{Config: files}))
	if len(rep.Changes) != 1 || len(live(p.state(), "service.web")) != 2 {
		t.Fatalf("with the files: %+v, %d replicas", rep, len(live(p.state(), "service.web")))
	}
	p.noDrift(cfg)
	// Edited, not applied: not the configuration the state records.
	lose()
	edited := strings.Replace(src, "hunter2", "hunter3", 1)
	rep = tick(t, p.loop(controller.Options{Config: func() (*lang.Config, error) { return p.config(edited), nil }}))
	if len(rep.Changes) != 0 || rep.Skipped["service.web"] == "" {
		t.Fatalf("with edited files: %+v", rep)
	}
}

// TestLoopBacksOffDyingReplicas: a replica that dies again and again is
// made again at once three times, then only after a wait that doubles;
// meanwhile the run is left alone, its dead job still recorded.
func TestLoopBacksOffDyingReplicas(t *testing.T) {
	p, cloud := simProject(t)
	cfg := p.config("type: service\nname: web\nport: 8000\ncommands: [serve]\n")
	p.apply(cfg)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now})
	die := func() {
		t.Helper()
		js := live(p.state(), "service.web")
		if len(js) != 1 {
			t.Fatalf("%d replicas", len(js))
		}
		if err := cloud.Interrupt(js[0].ProviderID, "crashed"); err != nil {
			t.Fatal(err)
		}
	}
	remade := func(want bool) {
		t.Helper()
		before := live(p.state(), "service.web")[0].Token
		rep := tick(t, l)
		js := live(p.state(), "service.web")
		got := len(js) == 1 && js[0].Token != before
		if got != want {
			t.Fatalf("remade %v, want %v: %+v", got, want, rep)
		}
	}
	for range 3 {
		die()
		clk.add(time.Second)
		remade(true)
	}
	die()
	clk.add(time.Second)
	remade(false)
	rep := tick(t, l)
	if !strings.Contains(rep.Skipped["service.web"], "its replicas died 3 times in a row; the next attempt in 29s") || len(rep.Drift) != 0 {
		t.Fatalf("while waiting: %+v", rep)
	}
	clk.add(30 * time.Second)
	remade(true)
	p.noDrift(cfg)
	// The fourth death waits twice as long.
	die()
	clk.add(59 * time.Second)
	remade(false)
	clk.add(2 * time.Second)
	remade(true)
}

// creates is the simulated cloud, noting the configuration each job is
// made from.
type creates struct {
	providers.Provider
	mu    sync.Mutex
	specs []string
}

func (c *creates) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	c.mu.Lock()
	c.specs = append(c.specs, string(req.Spec))
	c.mu.Unlock()
	return c.Provider.Create(ctx, req)
}

func (c *creates) last() string { c.mu.Lock(); defer c.mu.Unlock(); return c.specs[len(c.specs)-1] }

type createsSet struct{ c *creates }

func (s createsSet) For(string) (providers.Provider, error) { return s.c, nil }
func (s createsSet) Offers(ctx context.Context) ([]offers.Offer, error) {
	return s.c.Offers(ctx)
}

// TestLoopOpensSecrets: a task whose env references a secret is re-run
// by the loop with the secret opened for its job (the state keeps the
// reference, sealed value apart); a loop given no key says so and makes
// nothing.
func TestLoopOpensSecrets(t *testing.T) {
	c, err := sim.Open(filepath.Join(t.TempDir(), "sim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rec := &creates{Provider: c}
	p := newProject(t, createsSet{rec})
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	// The team's secret, sealed in the state (as dstack secret set does).
	st := state.New("test")
	if err := secrets.Set(st, key, "HF_TOKEN", "hf_s3cr3t"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.backend.Write(context.Background(), state.DefaultWorkspace, st, "", ""); err != nil {
		t.Fatal(err)
	}
	p.secrets = map[string]string{"HF_TOKEN": "hf_s3cr3t"}
	cfg := p.config("type: task\nname: train\ncommands: [train]\nenv:\n  - HF_TOKEN=${{ secrets.HF_TOKEN }}\nretry:\n  on_events: [interruption]\n")
	p.apply(cfg)
	job := live(p.state(), "task.train")[0]
	if err := c.Interrupt(job.ProviderID, "spot interruption"); err != nil {
		t.Fatal(err)
	}
	made := len(rec.specs)
	_, err = p.loop(controller.Options{}).Tick(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the runs reference secrets (HF_TOKEN), and this server was given no key") || len(rec.specs) != made {
		t.Fatalf("without a key: %v, %d jobs made", err, len(rec.specs)-made)
	}
	var events []string
	l := p.loop(controller.Options{
		OpenSecrets: func(st *state.State, names []string) (map[string]string, error) { return secrets.Open(st, key, names) },
		Events:      func(e planner.Event) { events = append(events, e.Message) },
	})
	if rep := tick(t, l); len(rep.Changes) != 1 {
		t.Fatalf("with the key: %+v", rep)
	}
	if !strings.Contains(rec.last(), `"HF_TOKEN":"hf_s3cr3t"`) {
		t.Fatalf("the job was made from %s", rec.last())
	}
	if strings.Contains(strings.Join(events, "\n"), "hf_s3cr3t") {
		t.Fatal("an event shows the secret's value")
	}
	if strings.Contains(fmt.Sprint(p.state().Resource("task.train").Attributes), "hf_s3cr3t") {
		t.Fatal("the state holds the secret's value")
	}
	p.noDrift(cfg)
}
