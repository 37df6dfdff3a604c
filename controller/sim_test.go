package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// clock is a settable clock for the loop's delays.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLoopRetriesInterruptedTask: a task whose retry policy lists
// interruption is run again by the loop, with no apply, when the cloud
// interrupts its machine; one without the policy is left as it ended.
// Afterwards `dstack plan` finds nothing to change.
func TestLoopRetriesInterruptedTask(t *testing.T) {
	for _, tc := range []struct {
		name, retry string
		rerun       bool
	}{
		{"retry on interruption", "retry:\n  on_events: [interruption]\n  duration: 1h\n", true},
		{"no retry", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, cloud := simProject(t)
			cfg := p.config("type: task\nname: train\ncommands: [train]\n" + tc.retry)
			p.apply(cfg)
			first := live(p.state(), "task.train")
			if len(first) != 1 {
				t.Fatalf("after apply: %d live jobs, want 1", len(first))
			}
			if err := cloud.Interrupt(first[0].ProviderID, "spot interruption"); err != nil {
				t.Fatal(err)
			}
			l := p.loop(controller.Options{})
			rep := tick(t, l)
			jobs := live(p.state(), "task.train")
			if !tc.rerun {
				if len(jobs) != 0 || len(rep.Changes) != 0 {
					t.Fatalf("without retry the loop ran the task again: jobs %d, changes %v", len(jobs), rep.Changes)
				}
				return
			}
			if len(jobs) != 1 || jobs[0].ProviderID == first[0].ProviderID {
				t.Fatalf("the loop did not run the task again: live jobs %v; report %+v", jobs, rep)
			}
			if !strings.Contains(strings.Join(rep.Changes, "\n"), "task.train: the task's job was interrupted and retry on interruption allows another attempt") {
				t.Errorf("changes: %v", rep.Changes)
			}
			objs, err := cloud.Describe(context.Background(), []string{jobs[0].Token})
			if err != nil || objs[jobs[0].Token].Status != providers.StatusRunning {
				t.Fatalf("the new job in the cloud: %+v, %v", objs, err)
			}
			p.noDrift(cfg)
			if rep := tick(t, l); len(rep.Changes) != 0 {
				t.Errorf("a second tick changed %v", rep.Changes)
			}
		})
	}
}

// TestLoopReleasesIdleFleetInstance: an instance of a fleet that runs
// nothing for longer than the fleet's idle_duration is torn down by the
// loop, down to the fleet's minimum; the instance a task runs on stays.
func TestLoopReleasesIdleFleetInstance(t *testing.T) {
	p, cloud := simProject(t)
	cfg := p.config(`type: fleet
name: pool
nodes:
  min: 1
  target: 3
  max: 3
idle_duration: 2m
---
type: task
name: busy
fleets: [pool]
commands: [train]
`)
	p.apply(cfg)
	st := p.state()
	if n := len(st.Resource("fleet.pool").Instances); n != 3 {
		t.Fatalf("fleet has %d instances, want 3", n)
	}
	host, _ := live(st, "task.busy")[0].Attributes["host"].(string)
	clk := &clock{t: time.Now()}
	l := p.loop(controller.Options{Now: clk.now})
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("first tick changed %v; idle instances are only noted", rep.Changes)
	}
	clk.add(time.Minute)
	if rep := tick(t, l); len(rep.Changes) != 0 {
		t.Fatalf("tick before idle_duration changed %v", rep.Changes)
	}
	clk.add(61 * time.Second)
	rep := tick(t, l)
	if len(rep.Changes) != 1 || !strings.Contains(rep.Changes[0], "fleet.pool: control loop: instance") || !strings.Contains(rep.Changes[0], "idle_duration 2m0s") {
		t.Fatalf("changes %v", rep.Changes)
	}
	ins := p.state().Resource("fleet.pool").Instances
	// Both idle instances go: the busy one makes the minimum of one.
	var kept []string
	for _, in := range ins {
		kept = append(kept, in.Token)
	}
	if len(ins) != 1 || ins[0].Token != host {
		t.Fatalf("instances left %v, want only the busy one %s", kept, host)
	}
	liveObjs, err := cloud.Live()
	if err != nil {
		t.Fatal(err)
	}
	if len(liveObjs) != 2 { // the busy instance and the task's job
		t.Fatalf("the cloud has %d live objects, want 2: %+v", len(liveObjs), liveObjs)
	}
	p.noDrift(cfg)
}

// rates is the gateway's stats API as a real HTTP server, answering
// GET /api/stats in the gateway's shape with a rate the test sets.
type rates struct {
	srv   *httptest.Server
	mu    sync.Mutex
	rps   map[string]float64
	token string
}

func newRates(t testing.TB) *rates {
	r := &rates{rps: map[string]float64{}, token: "admin-secret"}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/api/stats" || req.Header.Get("Authorization") != "Bearer "+r.token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		type win struct {
			Requests float64 `json:"requests"`
		}
		var svcs []map[string]any
		for name, rps := range r.rps {
			svcs = append(svcs, map[string]any{"project": "main", "name": name, "rps": rps, "queued": 0,
				"windows": map[string]win{"30": {rps * 30}, "60": {rps * 60}, "300": {rps * 300}}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"services": svcs})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rates) set(name string, rps float64) {
	r.mu.Lock()
	r.rps[name] = rps
	r.mu.Unlock()
}

func (r *rates) source() controller.RateSource {
	return &controller.GatewayRates{URL: r.srv.URL, Token: r.token}
}

// TestLoopAutoscales: a service scales on the request rate the gateway
// reports, within its replica range, after scale_up_delay and
// scale_down_delay, and down to zero; `dstack plan` agrees each time.
func TestLoopAutoscales(t *testing.T) {
	p, _ := simProject(t)
	cfg := p.config(`type: service
name: web
port: 8000
commands: [serve]
replicas: 0..3
scaling:
  metric: rps
  target: 10
  scale_up_delay: 30s
  scale_down_delay: 2m
`)
	p.apply(cfg)
	if n := len(live(p.state(), "service.web")); n != 0 {
		t.Fatalf("%d replicas after apply, want 0 (min)", n)
	}
	r := newRates(t)
	clk := &clock{t: time.Now()}
	var published []int // the replicas of each state handed to the gateway
	l := p.loop(controller.Options{Now: clk.now, Rates: r.source(), Publish: func(_ context.Context, st *state.State) error {
		published = append(published, len(live(st, "service.web")))
		return nil
	}})
	replicas := func() int { return len(live(p.state(), "service.web")) }
	step := func(rps float64, advance time.Duration, want int) {
		t.Helper()
		r.set("web", rps)
		clk.add(advance)
		rep := tick(t, l)
		if got := replicas(); got != want {
			t.Fatalf("rps %v after %s: %d replicas, want %d (report %+v)", rps, advance, got, want, rep)
		}
		p.noDrift(cfg)
	}
	step(5, 0, 1)                         // from zero at once
	step(25, 10*time.Second, 1)           // within scale_up_delay
	step(25, 25*time.Second, 3)           // after it
	step(100, 40*time.Second, 3)          // the range's max
	step(5, 30*time.Second, 3)            // within scale_down_delay
	step(5, 2*time.Minute, 1)             // after it
	step(0, 2*time.Minute+time.Second, 0) // to zero
	// Handed to the gateway after each tick that scaled: 1, 3, 1, 0.
	if fmt.Sprint(published) != "[1 3 1 0]" {
		t.Errorf("published replica counts %v, want [1 3 1 0]", published)
	}
	if got := l.Rates()["service.web"]; got != 0 {
		t.Errorf("last rate read %v, want 0", got)
	}
	hist := l.History()
	if !strings.Contains(fmt.Sprint(hist), "rps 25 over 1m0s, target 10 per replica: 1 → 3 replicas") {
		t.Errorf("no tick says why it scaled to 3: %v", hist)
	}
}
