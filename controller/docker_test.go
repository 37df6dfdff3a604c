package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// localSet is the local backend alone: this machine's Docker through an
// agent the test runs.
type localSet struct{ p *local.Provider }

func (s localSet) For(string) (providers.Provider, error) { return s.p, nil }
func (s localSet) Offers(ctx context.Context) ([]offers.Offer, error) {
	return s.p.Offers(ctx)
}

// dockerProject is a project on the local backend, with an agent running
// in the test process on its own directory.
func dockerProject(t testing.TB, run string) *project {
	t.Helper()
	dockertest.Image(t)
	dockertest.RemoveContainers(t, "ai.dstack.run-name="+run)
	t.Cleanup(func() { dockertest.RemoveContainers(t, "ai.dstack.run-name="+run) })
	dir := t.TempDir()
	agentDir := filepath.Join(dir, "agent")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentd.Run(ctx, []string{"-listen", "127.0.0.1:0", "-data-dir", agentDir}, io.Discard) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, ok := agentproc.Probe(ctx, agentDir); ok {
			p := local.New(local.Options{Dir: filepath.Join(dir, "local"), ReadyTimeout: time.Minute,
				Agent: func(context.Context) (local.Agent, error) { return c, nil }})
			return newProject(t, localSet{p})
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const scaledService = `type: service
name: %s
image: dstack-test/busybox:latest
port: 8080
replicas: 1..3
scaling:
  metric: rps
  target: 10
  scale_up_delay: 30s
  scale_down_delay: 1m
probes:
  - type: http
    url: /index.html
    interval: 1s
commands:
  - mkdir -p /www && echo "replica $DSTACK_NODE_RANK" > /www/index.html
  - echo serving from the container
  - exec httpd -f -p 8080 -h /www
`

// serving counts the replicas whose published port answers.
func serving(t testing.TB, st *state.State, addr string) int {
	t.Helper()
	n := 0
	for _, in := range live(st, addr) {
		ports, _ := in.Attributes[providers.AttrPorts].(string)
		host, _, _ := strings.Cut(ports, ":")
		resp, err := http.Get("http://127.0.0.1:" + host + "/index.html")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			n++
		}
	}
	return n
}

// TestDockerAutoscale: on the local backend, a service's replicas
// (containers) grow from 1 to 3 when the gateway's stats (a real HTTP
// server here) report a load step, and return to 1 after the load
// stops, each after its delay; `dstack plan` agrees at each step.
func TestDockerAutoscale(t *testing.T) {
	p := dockerProject(t, "scaled")
	cfg := p.config(fmt.Sprintf(scaledService, "scaled"))
	p.apply(cfg)
	r := newRates(t)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now, Rates: r.source()})
	step := func(rps float64, advance time.Duration, want int) {
		t.Helper()
		r.set("scaled", rps)
		clk.add(advance)
		rep := tick(t, l)
		st := p.state()
		if got := len(live(st, "service.scaled")); got != want {
			t.Fatalf("rps %v: %d replicas, want %d (%+v)", rps, got, want, rep)
		}
		if got := serving(t, st, "service.scaled"); got != want {
			t.Fatalf("rps %v: %d replicas serve, want %d", rps, got, want)
		}
		p.noDrift(cfg)
	}
	step(0, 0, 1)
	// The API: the run's output and its job's use, from the agent.
	srv := httptest.NewServer(l.Handler("tok"))
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	if out := get("/api/runs/scaled/logs"); !strings.Contains(out, "serving from the container") {
		t.Errorf("logs: %q", out)
	}
	var m struct {
		Jobs []controller.JobMetrics `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(get("/api/runs/scaled/metrics")), &m); err != nil || len(m.Jobs) != 1 || m.Jobs[0].Error != "" || m.Jobs[0].Index != 0 {
		t.Errorf("metrics: %+v, %v", m, err)
	}
	step(25, 10*time.Second, 1) // within scale_up_delay
	step(25, 30*time.Second, 3)
	step(2, 30*time.Second, 3) // within scale_down_delay
	step(2, time.Minute, 1)
	p.apply(p.config("type: task\nname: none\nimage: dstack-test/busybox:latest\ncommands: [true]\n"))
	if n := len(live(p.state(), "service.scaled")); n != 0 {
		t.Fatalf("%d replicas after the service was removed", n)
	}
}

// BenchmarkScaleUp measures the time from a load step (the gateway's
// rate jumps from one replica's worth to two's) to the new replica
// serving: one tick of the loop (lock, refresh, plan, a container made
// and probed, state written), then its first answer.
func BenchmarkScaleUp(b *testing.B) {
	p := dockerProject(b, "bench-scaled")
	cfg := p.config(fmt.Sprintf(scaledService, "bench-scaled"))
	p.apply(cfg)
	r := newRates(b)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now, Rates: r.source(), Logf: func(string, ...any) {}})
	var total time.Duration
	n := 0
	for b.Loop() {
		n++
		b.StopTimer()
		r.set("bench-scaled", 5)
		clk.add(2 * time.Minute)
		tick(b, l) // back to 1
		clk.add(2 * time.Minute)
		b.StartTimer()
		start := time.Now()
		r.set("bench-scaled", 15)
		tick(b, l)
		for serving(b, p.state(), "service.bench-scaled") < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(n), "s/scale-up")
}

// gpuHost is the local backend on a machine whose jobs report GPUs: this
// machine has none, so their utilization is what the test sets; every
// other call, stopping the job included, is the local backend's own.
type gpuHost struct {
	*local.Provider
	mu   sync.Mutex
	util float64
}

func (g *gpuHost) set(u float64) { g.mu.Lock(); g.util = u; g.mu.Unlock() }

func (g *gpuHost) JobMetrics(ctx context.Context, id string) (providers.Metrics, error) {
	m, err := g.Provider.JobMetrics(ctx, id)
	if err != nil {
		return m, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m.GPUs = []providers.GPUMetrics{{UUID: "GPU-test-0", UtilizationPercent: g.util, MemoryUsedMB: 1024}}
	return m, nil
}

type gpuSet struct{ g *gpuHost }

func (s gpuSet) For(string) (providers.Provider, error) { return s.g, nil }
func (s gpuSet) Offers(ctx context.Context) ([]offers.Offer, error) {
	return s.g.Offers(ctx)
}

// TestDockerUtilizationPolicy: a task whose GPUs stay under its
// utilization_policy's minimum for the time window is stopped by the
// loop (its container stops); above it, or within the window, it runs on.
func TestDockerUtilizationPolicy(t *testing.T) {
	p := dockerProject(t, "idlegpu")
	lp := p.set.(set).Set.(localSet).p
	g := &gpuHost{Provider: lp}
	p.set = set{gpuSet{g}}
	cfg := p.config(`type: task
name: idlegpu
image: dstack-test/busybox:latest
commands: ["sleep 600"]
stop_duration: 1s
utilization_policy:
  min_gpu_utilization: 10
  time_window: 1m
`)
	p.apply(cfg)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now})
	step := func(util float64, advance time.Duration, stopped bool) {
		t.Helper()
		g.set(util)
		clk.add(advance)
		rep := tick(t, l)
		if got := len(rep.Changes) == 1 && strings.Contains(rep.Changes[0], "stops job 0: its GPUs stayed under 10% utilization for 1m0s (utilization_policy)"); got != stopped {
			t.Fatalf("GPU at %v%% after %s: changes %v, want stopped %v", util, advance, rep.Changes, stopped)
		}
	}
	step(50, 0, false)
	step(5, 30*time.Second, false)  // under since now
	step(50, 45*time.Second, false) // back above: the window starts again
	step(5, 10*time.Second, false)
	step(5, 59*time.Second, false)
	step(5, 2*time.Second, true)
	c := dockertest.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := c.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "ai.dstack.run-name=idlegpu"))})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d containers of the task still run", len(list))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("after the stop the loop did %v", rep.Changes)
	}
	jobs := l.State().Resource("task.idlegpu").Instances
	if len(jobs) != 1 || jobs[0].Status != providers.StatusStopped {
		t.Fatalf("the task's job after the stop: %d jobs, status %q", len(jobs), jobs[0].Status)
	}
	p.noDrift(cfg)
}

// TestDockerAutoscaleThroughGateway: the real gateway (in this process,
// on loopback) routes to the service's replicas and counts its requests;
// a bounded burst of requests through it makes the loop grow the service
// from 1 to 3 replicas, which the loop publishes to the gateway, and
// once the gateway's window has no requests left, back to 1. Every
// request of the burst is answered.
func TestDockerAutoscaleThroughGateway(t *testing.T) {
	p := dockerProject(t, "gwscaled")
	cfg := p.config(`type: service
name: gwscaled
image: dstack-test/busybox:latest
port: 8080
auth: false
replicas: 1..3
scaling:
  metric: rps
  target: 1
  window: 30s
  scale_up_delay: 0s
  scale_down_delay: 0s
probes:
  - type: http
    url: /index.html
    interval: 1s
commands:
  - mkdir -p /www && echo "hello" > /www/index.html
  - exec httpd -f -p 8080 -h /www
`)
	p.apply(cfg)
	gw := gateway.New(gateway.Options{})
	pub := httptest.NewServer(gw)
	defer pub.Close()
	admin := httptest.NewServer(gw.AdminHandler("admin-token"))
	defer admin.Close()
	publish := func(_ context.Context, st *state.State) error {
		tbl, _, err := gatewayproc.Routes(st)
		if err != nil {
			return err
		}
		return gw.SetTable(tbl)
	}
	if err := publish(context.Background(), p.state()); err != nil {
		t.Fatal(err)
	}
	replicas := func() int {
		for _, s := range gw.Table().Services {
			if s.Name == "gwscaled" {
				return len(s.Replicas)
			}
		}
		return 0
	}
	if n := replicas(); n != 1 {
		t.Fatalf("the gateway routes to %d replicas, want 1", n)
	}
	l := p.loop(controller.Options{Rates: &controller.GatewayRates{URL: admin.URL, Token: "admin-token"}, Publish: publish})
	if resp, err := http.Get(pub.URL + "/proxy/services/main/gwscaled/index.html"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("through the gateway: %s %s (table %+v)", resp.Status, b, gw.Table())
		}
	}
	// A bounded burst on loopback: 150 requests, 5 at a time, is 5 rps
	// over the 30 s window, 5 replicas' worth at 1 rps each: 3 (the max).
	url := pub.URL + "/proxy/services/main/gwscaled/index.html"
	var failed int
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 5)
	for range 150 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := http.Get(url)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			if !ok {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of 150 requests through the gateway failed", failed)
	}
	rep := tick(t, l)
	if n := len(live(p.state(), "service.gwscaled")); n != 3 || replicas() != 3 {
		t.Fatalf("after the burst: %d replicas, the gateway routes to %d; %+v", n, replicas(), rep)
	}
	p.noDrift(cfg)
	// Each replica answers through the gateway.
	for i := range 6 {
		resp, err := http.Get(url)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d after scaling: %v", i, err)
		}
		resp.Body.Close()
	}
	// The load has stopped: once the window holds no request, back to 1.
	deadline := time.Now().Add(45 * time.Second)
	for replicas() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d replicas after the load stopped", replicas())
		}
		time.Sleep(2 * time.Second)
		tick(t, l)
	}
	if n := len(live(p.state(), "service.gwscaled")); n != 1 {
		t.Fatalf("%d replicas in the state", n)
	}
	p.noDrift(cfg)
}
