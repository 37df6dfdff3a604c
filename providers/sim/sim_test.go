package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/sim"
)

// open opens a cloud on dir, closed when the test ends.
func open(t testing.TB, dir string) *sim.Cloud {
	t.Helper()
	c, err := sim.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// openWith writes cfg to a new directory and opens a cloud on it.
func openWith(t testing.TB, cfg sim.Config) (*sim.Cloud, string) {
	t.Helper()
	dir := t.TempDir()
	if err := sim.WriteConfig(dir, cfg); err != nil {
		t.Fatal(err)
	}
	return open(t, dir), dir
}

// catalog returns two distinct on-demand offers of the catalog.
func catalog(t testing.TB) (offers.Offer, offers.Offer) {
	t.Helper()
	all, err := offers.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	var out []offers.Offer
	for _, o := range all {
		if !o.Spot {
			out = append(out, o)
		}
	}
	if len(out) < 2 {
		t.Fatal("catalog has fewer than two on-demand offers")
	}
	return out[0], out[1]
}

func key(o offers.Offer) string { return o.Backend + "/" + o.Region + "/" + o.InstanceType }

func instance(token, address string, o offers.Offer) providers.CreateRequest {
	return providers.CreateRequest{Kind: providers.KindInstance, Token: token, Address: address, Offer: &o}
}

func job(token, host, typ string) providers.CreateRequest {
	return providers.CreateRequest{
		Kind: providers.KindJob, Token: token, Address: "task.train", Host: host,
		Spec: json.RawMessage(fmt.Sprintf(`{"type":%q}`, typ)),
	}
}

func mustCreate(t testing.TB, c *sim.Cloud, req providers.CreateRequest) providers.Object {
	t.Helper()
	o, err := c.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Token, err)
	}
	return o
}

func describe(t testing.TB, c *sim.Cloud, tokens ...string) map[string]providers.Object {
	t.Helper()
	got, err := c.Describe(context.Background(), tokens)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	return got
}

func wantCode(t testing.TB, err error, code providers.Code) {
	t.Helper()
	if got := providers.CodeOf(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestCreateIsIdempotentByToken(t *testing.T) {
	c := open(t, t.TempDir())
	o1, _ := catalog(t)
	a := mustCreate(t, c, instance("tok/1", "fleet.gpu[0]", o1))
	if !strings.HasPrefix(a.ID, "i-") || len(a.ID) != len("i-")+16 {
		t.Errorf("ID %q, want i- and 16 hex digits", a.ID)
	}
	if a.Status != providers.StatusRunning || a.Attributes["ip"] == "" || a.Offer == nil || *a.Offer != o1 {
		t.Errorf("made %+v, want running, with an ip and the offer", a)
	}
	b := mustCreate(t, c, instance("tok/1", "fleet.gpu[0]", o1))
	if b.ID != a.ID {
		t.Fatalf("second create made %s, want the first's %s", b.ID, a.ID)
	}
	all, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d objects, want 1: %+v", len(all), all)
	}

	// Once terminated, the token makes a new object; the old one stays.
	if err := c.Delete(context.Background(), providers.KindInstance, a.ID); err != nil {
		t.Fatal(err)
	}
	n := mustCreate(t, c, instance("tok/1", "fleet.gpu[0]", o1))
	if n.ID == a.ID {
		t.Fatalf("create after delete returned the terminated %s", a.ID)
	}
	all, err = c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d objects, want the terminated and the new: %+v", len(all), all)
	}
	if got := describe(t, c, "tok/1")["tok/1"]; got.ID != n.ID || got.Status != providers.StatusRunning {
		t.Errorf("describe: %+v, want the new %s running", got, n.ID)
	}
	// The old ID is still known, and terminated.
	if err := c.Interrupt(a.ID, "x"); err != nil {
		t.Errorf("interrupt of the replaced %s: %v", a.ID, err)
	}
}

func TestIDsAndAttributes(t *testing.T) {
	c := open(t, t.TempDir())
	o1, _ := catalog(t)
	ctx := context.Background()
	host := mustCreate(t, c, instance("h", "fleet.f[0]", o1))
	for _, tc := range []struct {
		req    providers.CreateRequest
		prefix string
		attrs  []string
	}{
		{providers.CreateRequest{Kind: providers.KindVolume, Token: "v", Address: "volume.data"}, "vol-", nil},
		{providers.CreateRequest{Kind: providers.KindGateway, Token: "g", Address: "gateway.gw"}, "gw-", []string{"ip", "hostname"}},
		{job("j1", host.ID, "task"), "job-", []string{"ip"}},
		{providers.CreateRequest{Kind: providers.KindJob, Token: "j2", Address: "task.t", Offer: &o1}, "i-", []string{"ip"}},
	} {
		o, err := c.Create(ctx, tc.req)
		if err != nil {
			t.Fatalf("create %s: %v", tc.req.Token, err)
		}
		if !strings.HasPrefix(o.ID, tc.prefix) {
			t.Errorf("%s: ID %q, want prefix %q", tc.req.Token, o.ID, tc.prefix)
		}
		if len(o.Attributes) != len(tc.attrs) {
			t.Errorf("%s: attributes %v, want %v", tc.req.Token, o.Attributes, tc.attrs)
		}
		for _, a := range tc.attrs {
			if o.Attributes[a] == "" {
				t.Errorf("%s: no attribute %q in %v", tc.req.Token, a, o.Attributes)
			}
		}
	}
	if got := describe(t, c, "j1")["j1"]; got.Attributes["ip"] != host.Attributes["ip"] || got.Host != host.ID {
		t.Errorf("job on host: %+v, want host %s and its ip %s", got, host.ID, host.Attributes["ip"])
	}
	for _, req := range []providers.CreateRequest{
		{Kind: providers.KindInstance, Token: "no-offer"},
		{Kind: providers.KindJob, Token: "no-host-no-offer"},
		{Kind: "bucket", Token: "b"},
		{Kind: providers.KindVolume},
	} {
		if _, err := c.Create(ctx, req); err == nil {
			t.Errorf("create %+v: no error", req)
		}
	}
	_, err := c.Create(ctx, job("j3", "i-0000000000000000", "task"))
	wantCode(t, err, providers.NotFound)
}

func TestTwoCloudsShareTheDirectory(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	o1, _ := catalog(t)
	made := mustCreate(t, a, instance("t1", "fleet.f[0]", o1))
	if got, ok := describe(t, b, "t1")["t1"]; !ok || got.ID != made.ID {
		t.Fatalf("b describes %+v (found %v), want %s", got, ok, made.ID)
	}
	if again := mustCreate(t, b, instance("t1", "fleet.f[0]", o1)); again.ID != made.ID {
		t.Fatalf("b's create made %s, want a's %s", again.ID, made.ID)
	}
	if err := b.Delete(context.Background(), providers.KindInstance, made.ID); err != nil {
		t.Fatal(err)
	}
	got := describe(t, a, "t1", "never")
	if got["t1"].Status != providers.StatusTerminated || got["t1"].Reason != "deleted" {
		t.Errorf("a describes %+v, want terminated, deleted", got["t1"])
	}
	if _, ok := got["never"]; ok {
		t.Error("a token never used is described")
	}
	live, err := a.Live()
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Errorf("live after delete: %+v", live)
	}
}

func TestCapacity(t *testing.T) {
	o1, o2 := catalog(t)
	spot := o1
	spot.Spot = true
	c, dir := openWith(t, sim.Config{Capacity: map[string]int{key(o1): 1, key(o1) + "+spot": 0, "*": 2}})
	other := open(t, dir)
	ctx := context.Background()

	first := mustCreate(t, c, instance("a", "fleet.f[0]", o1))
	_, err := other.Create(ctx, instance("b", "fleet.f[1]", o1))
	wantCode(t, err, providers.NoCapacity)
	_, err = c.Create(ctx, instance("s", "fleet.f[1]", spot))
	wantCode(t, err, providers.NoCapacity)
	// A job on its own machine counts too; "*" is 2 for o2.
	mustCreate(t, c, instance("c", "fleet.g[0]", o2))
	mustCreate(t, other, providers.CreateRequest{Kind: providers.KindJob, Token: "d", Offer: &o2})
	_, err = c.Create(ctx, instance("e", "fleet.g[1]", o2))
	wantCode(t, err, providers.NoCapacity)
	// A job on a host takes no capacity.
	mustCreate(t, c, job("on-host", first.ID, "service"))

	availability := func(cl *sim.Cloud) map[string]string {
		all, err := cl.Offers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, o := range all {
			m[fmt.Sprintf("%s+%v", key(o), o.Spot)] = o.Availability
		}
		return m
	}
	av := availability(other)
	for k, want := range map[string]string{
		key(o1) + "+false": offers.NoCapacity,
		key(o1) + "+true":  offers.NoCapacity,
		key(o2) + "+false": offers.NoCapacity,
	} {
		if av[k] != want {
			t.Errorf("availability of %s: %q, want %q", k, av[k], want)
		}
	}
	available := 0
	for _, a := range av {
		if a == offers.Available {
			available++
		}
	}
	if available != len(av)-3 {
		t.Errorf("%d offers available, want all but 3 of %d", available, len(av))
	}

	// Deleting frees the machine, in every process.
	if err := other.Delete(ctx, providers.KindInstance, first.ID); err != nil {
		t.Fatal(err)
	}
	if av := availability(c); av[key(o1)+"+false"] != offers.Available {
		t.Errorf("after delete, %s is %q", key(o1), av[key(o1)+"+false"])
	}
	mustCreate(t, c, instance("b", "fleet.f[1]", o1))
}

func TestCapacityUnderConcurrency(t *testing.T) {
	o1, _ := catalog(t)
	const limit = 7
	c, dir := openWith(t, sim.Config{Capacity: map[string]int{key(o1): limit}})
	clouds := []*sim.Cloud{c, open(t, dir), open(t, dir)}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		made    int
		refused int
	)
	for g := range 12 {
		wg.Go(func() {
			for i := range 5 {
				cl := clouds[(g+i)%len(clouds)]
				_, err := cl.Create(context.Background(), instance(fmt.Sprintf("g%d-%d", g, i), "fleet.f", o1))
				mu.Lock()
				switch providers.CodeOf(err) {
				case "":
					if err != nil {
						t.Error(err)
					}
					made++
				case providers.NoCapacity:
					refused++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if made != limit || refused != 12*5-limit {
		t.Errorf("made %d, refused %d; want %d and %d", made, refused, limit, 12*5-limit)
	}
	live, err := c.Live()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range live {
		if seen[o.ID] {
			t.Errorf("ID %s made twice", o.ID)
		}
		seen[o.ID] = true
	}
	if len(live) != limit {
		t.Errorf("%d live, want %d", len(live), limit)
	}
}

func TestFailureFiresTimesAcrossClouds(t *testing.T) {
	o1, _ := catalog(t)
	a, dir := openWith(t, sim.Config{Failures: []sim.Failure{
		{Op: sim.OpCreate, Kind: providers.KindInstance, Address: "fleet.gpu*", Code: providers.Quota, Times: 1},
	}})
	b := open(t, dir)
	ctx := context.Background()
	mustCreate(t, a, instance("cpu", "fleet.cpu[0]", o1))
	_, err := b.Create(ctx, instance("gpu0", "fleet.gpu[0]", o1))
	wantCode(t, err, providers.Quota)
	if got := describe(t, b, "gpu0"); len(got) != 0 {
		t.Errorf("a failed create made %+v", got)
	}
	mustCreate(t, a, instance("gpu1", "fleet.gpu[1]", o1))
	mustCreate(t, b, instance("gpu0", "fleet.gpu[0]", o1))
	// A cloud opened later sees the count too.
	mustCreate(t, open(t, dir), instance("gpu2", "fleet.gpu[2]", o1))
}

func TestFailureOps(t *testing.T) {
	o1, _ := catalog(t)
	c, _ := openWith(t, sim.Config{Failures: []sim.Failure{
		{Op: sim.OpDelete, Kind: providers.KindInstance, Code: providers.Auth, Times: 1},
		{Op: sim.OpDescribe, Address: "fleet.x*", Code: providers.RateLimited, Times: 1},
		{Op: sim.OpCreate, Kind: providers.KindVolume, Code: providers.NoCapacity, Probability: 0.5, Times: 3},
	}})
	ctx := context.Background()
	in := mustCreate(t, c, instance("x", "fleet.x[0]", o1))
	wantCode(t, c.Delete(ctx, providers.KindInstance, in.ID), providers.Auth)
	if err := c.Delete(ctx, providers.KindInstance, in.ID); err != nil {
		t.Fatal(err)
	}
	describe(t, c, "never") // matches no address
	_, err := c.Describe(ctx, []string{"x"})
	wantCode(t, err, providers.RateLimited)
	if d := providers.RetryAfter(err); d != sim.RetryAfter {
		t.Errorf("retry after %v, want %v", d, sim.RetryAfter)
	}
	describe(t, c, "x")
	failed := 0
	for i := range 40 {
		_, err := c.Create(ctx, providers.CreateRequest{Kind: providers.KindVolume, Token: fmt.Sprint("v", i)})
		if err != nil {
			wantCode(t, err, providers.NoCapacity)
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d volumes failed, want 3 (probability 0.5, times 3)", failed)
	}
}

var errCrashed = errors.New("crashed")

func TestCrashAfterCreate(t *testing.T) {
	o1, _ := catalog(t)
	c, dir := openWith(t, sim.Config{Failures: []sim.Failure{{Op: sim.OpCreate, Code: sim.CodeCrash, Times: 1}}})
	crashes := 0
	c.Crash = func() {
		crashes++
		panic(errCrashed)
	}
	func() {
		defer func() {
			if r := recover(); r != errCrashed {
				t.Errorf("create recovered %v, want the crash", r)
			}
		}()
		o, err := c.Create(context.Background(), instance("t", "fleet.f[0]", o1))
		t.Errorf("create returned %+v, %v after the crash", o, err)
	}()
	if crashes != 1 {
		t.Fatalf("crash hook called %d times, want 1", crashes)
	}
	// The object was made: another process adopts it by token.
	other := open(t, dir)
	found := describe(t, other, "t")["t"]
	if found.ID == "" || found.Status != providers.StatusRunning {
		t.Fatalf("after the crash: %+v, want the object running", found)
	}
	if again := mustCreate(t, other, instance("t", "fleet.f[0]", o1)); again.ID != found.ID {
		t.Errorf("create after the crash made %s, want %s", again.ID, found.ID)
	}
	if crashes != 1 {
		t.Errorf("crash hook called %d times, want 1", crashes)
	}
}

// TestCrashKillsTheProcess runs itself in a child process whose create
// crashes with the default hook.
func TestCrashKillsTheProcess(t *testing.T) {
	o1, _ := catalog(t)
	if dir := os.Getenv("SIM_CRASH_DIR"); dir != "" {
		c := open(t, dir)
		o, err := c.Create(context.Background(), instance("t", "fleet.f[0]", o1))
		fmt.Printf("create returned %+v, %v\n", o, err)
		os.Exit(3)
	}
	_, dir := openWith(t, sim.Config{Failures: []sim.Failure{{Op: sim.OpCreate, Code: sim.CodeCrash, Times: 1}}})
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKillsTheProcess$")
	cmd.Env = append(os.Environ(), "SIM_CRASH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL; output:\n%s", err, out)
	}
	c := open(t, dir)
	if o := describe(t, c, "t")["t"]; o.Status != providers.StatusRunning {
		t.Errorf("after the crash: %+v, want the instance running", o)
	}
	mustCreate(t, c, instance("u", "fleet.f[1]", o1)) // the crash fired its one time
}

func TestCrashHookThatReturns(t *testing.T) {
	o1, _ := catalog(t)
	c, _ := openWith(t, sim.Config{Failures: []sim.Failure{{Op: sim.OpCreate, Code: sim.CodeCrash}}})
	called := false
	c.Crash = func() { called = true }
	if _, err := c.Create(context.Background(), instance("t", "fleet.f[0]", o1)); err == nil || !called {
		t.Fatalf("create with a returning crash hook: err %v, hook called %v; want an error after the call", err, called)
	}
	// Idempotency comes first: the retry adopts the object and does not crash.
	called = false
	if o := mustCreate(t, c, instance("t", "fleet.f[0]", o1)); o.ID == "" || called {
		t.Errorf("retry: %+v, hook called %v", o, called)
	}
}

func TestRateLimit(t *testing.T) {
	c, _ := openWith(t, sim.Config{RateLimit: 1})
	ctx := context.Background()
	if _, err := c.Offers(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Describe(ctx, []string{"x"})
	wantCode(t, err, providers.RateLimited)
	if d := providers.RetryAfter(err); d <= 0 || d > time.Second {
		t.Errorf("retry after %v, want up to 1s", d)
	}
}

func TestLatency(t *testing.T) {
	c, _ := openWith(t, sim.Config{Latency: sim.Duration(30 * time.Millisecond)})
	start := time.Now()
	describe(t, c, "a", "b", "c")
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("describe took %v, want at least the latency", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := c.Offers(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("offers past the deadline: %v", err)
	}
}

func TestInterrupt(t *testing.T) {
	o1, _ := catalog(t)
	c := open(t, t.TempDir())
	host := mustCreate(t, c, instance("h", "fleet.f[0]", o1))
	mustCreate(t, c, job("j1", host.ID, "task"))
	mustCreate(t, c, job("j2", host.ID, "service"))
	own := mustCreate(t, c, providers.CreateRequest{Kind: providers.KindJob, Token: "j3", Offer: &o1})
	if err := c.Interrupt(host.ID, "spot interruption"); err != nil {
		t.Fatal(err)
	}
	got := describe(t, c, "h", "j1", "j2", "j3")
	for _, tok := range []string{"h", "j1", "j2"} {
		if o := got[tok]; o.Status != providers.StatusTerminated || o.Reason != "spot interruption" {
			t.Errorf("%s: %s (%s), want terminated by the spot interruption", tok, o.Status, o.Reason)
		}
	}
	if o := got["j3"]; o.Status != providers.StatusRunning {
		t.Errorf("a job on its own machine: %s, want running", o.Status)
	}
	if err := c.Interrupt(own.ID, "preempted"); err != nil {
		t.Fatal(err)
	}
	if err := c.Interrupt(own.ID, "again"); err != nil {
		t.Errorf("interrupt of a terminated object: %v", err)
	}
	if o := describe(t, c, "j3")["j3"]; o.Reason != "preempted" {
		t.Errorf("reason %q, want the first interruption's", o.Reason)
	}
	wantCode(t, c.Interrupt("i-ffffffffffffffff", "x"), providers.NotFound)
	_, err := c.Create(context.Background(), job("j4", host.ID, "task"))
	wantCode(t, err, providers.NotFound)
}

func TestDeleteInstanceTerminatesItsJobs(t *testing.T) {
	o1, _ := catalog(t)
	c := open(t, t.TempDir())
	ctx := context.Background()
	host := mustCreate(t, c, instance("h", "fleet.f[0]", o1))
	j := mustCreate(t, c, job("j", host.ID, "service"))
	if err := c.Delete(ctx, providers.KindJob, host.ID); err == nil {
		t.Error("delete of an instance as a job: no error")
	}
	for range 2 {
		if err := c.Delete(ctx, providers.KindInstance, host.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, providers.KindJob, j.ID); err != nil {
		t.Errorf("delete of a terminated job: %v", err)
	}
	if err := c.Delete(ctx, providers.KindVolume, "vol-0123456789abcdef"); err != nil {
		t.Errorf("delete of an unknown ID: %v", err)
	}
	got := describe(t, c, "h", "j")
	if o := got["h"]; o.Status != providers.StatusTerminated || o.Reason != "deleted" {
		t.Errorf("host: %s (%s)", o.Status, o.Reason)
	}
	if o := got["j"]; o.Status != providers.StatusTerminated || o.Reason != "host instance terminated" {
		t.Errorf("job: %s (%s), want terminated with its host", o.Status, o.Reason)
	}
}

func TestJobDuration(t *testing.T) {
	o1, _ := catalog(t)
	zero, short := sim.Duration(0), sim.Duration(150*time.Millisecond)
	for _, tc := range []struct {
		name       string
		duration   *sim.Duration
		now, later string // the task's status at once and after 200ms
	}{
		{"unset", nil, providers.StatusRunning, providers.StatusRunning},
		{"zero", &zero, providers.StatusDone, providers.StatusDone},
		{"150ms", &short, providers.StatusRunning, providers.StatusDone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := openWith(t, sim.Config{JobDuration: tc.duration})
			host := mustCreate(t, c, instance("h", "fleet.f[0]", o1))
			mustCreate(t, c, job("task", host.ID, "task"))
			mustCreate(t, c, job("svc", host.ID, "service"))
			mustCreate(t, c, providers.CreateRequest{Kind: providers.KindJob, Token: "own", Offer: &o1, Spec: json.RawMessage(`{"type":"task"}`)})
			got := describe(t, c, "task", "svc", "own")
			if got["task"].Status != tc.now || got["own"].Status != tc.now {
				t.Errorf("at once: task %s, own-machine task %s; want %s", got["task"].Status, got["own"].Status, tc.now)
			}
			time.Sleep(200 * time.Millisecond)
			got = describe(t, c, "task", "svc")
			if got["task"].Status != tc.later {
				t.Errorf("later: task %s, want %s", got["task"].Status, tc.later)
			}
			if got["svc"].Status != providers.StatusRunning {
				t.Errorf("service %s, want running", got["svc"].Status)
			}
		})
	}
}

func TestObjectsSortedByToken(t *testing.T) {
	o1, _ := catalog(t)
	c := open(t, t.TempDir())
	for _, tok := range []string{"b", "c", "a", ".hidden", "x/y", strings.Repeat("long", 100)} {
		mustCreate(t, c, instance(tok, "fleet.f", o1))
	}
	all, err := c.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, o := range all {
		tokens = append(tokens, o.Token)
	}
	want := []string{".hidden", "a", "b", "c", strings.Repeat("long", 100), "x/y"}
	if fmt.Sprint(tokens) != fmt.Sprint(want) {
		t.Errorf("tokens %q, want %q", tokens, want)
	}
}

func TestSet(t *testing.T) {
	c := open(t, t.TempDir())
	s := sim.Set{Cloud: c}
	for _, b := range []string{"aws", "gcp", "runpod"} {
		p, err := s.For(b)
		if err != nil || p != providers.Provider(c) {
			t.Errorf("For(%q) = %v, %v; want the cloud", b, p, err)
		}
	}
	all, err := s.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	backends := map[string]bool{}
	for _, o := range all {
		backends[o.Backend] = true
		if o.Availability != offers.Available {
			t.Errorf("%s: %s, want available", key(o), o.Availability)
		}
	}
	if len(backends) < 2 {
		t.Errorf("offers of %d backends, want every backend of the catalog", len(backends))
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []sim.Config{
		{Latency: -1},
		{RateLimit: -1},
		{Capacity: map[string]int{"aws/p5": 1}},
		{Capacity: map[string]int{"*": -1}},
		{Failures: []sim.Failure{{Op: "list", Code: providers.Quota}}},
		{Failures: []sim.Failure{{Op: sim.OpCreate, Code: providers.NotFound}}},
		{Failures: []sim.Failure{{Op: sim.OpCreate, Code: providers.Quota, Address: "["}}},
		{Failures: []sim.Failure{{Op: sim.OpCreate, Code: providers.Quota, Probability: 2}}},
	}
	for _, cfg := range bad {
		if err := sim.WriteConfig(t.TempDir(), cfg); err == nil {
			t.Errorf("WriteConfig(%+v): no error", cfg)
		}
	}
	for _, text := range []string{`{"latency": "soon"}`, `{"job_duration": ""}`, `{"capacty": {}}`} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "sim.json"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if c, err := sim.Open(dir); err == nil {
			c.Close()
			t.Errorf("Open with %s: no error", text)
		}
	}
	// The documented example reads.
	dir := t.TempDir()
	example := `{
	  "latency": "20ms",
	  "capacity": {"*": 100, "aws/us-east-1/p5.48xlarge": 2, "aws/us-east-1/p5.48xlarge+spot": 0},
	  "failures": [
	    {"op": "create", "kind": "instance", "address": "fleet.gpu*", "code": "no-capacity", "times": 1},
	    {"op": "describe", "code": "rate-limited", "probability": 0.1}
	  ],
	  "rate_limit": 50,
	  "job_duration": "2s",
	  "seed": 1
	}`
	if err := os.WriteFile(filepath.Join(dir, "sim.json"), []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	open(t, dir)
}

func TestTornLogLine(t *testing.T) {
	o1, _ := catalog(t)
	dir := t.TempDir()
	a := open(t, dir)
	made := mustCreate(t, a, instance("a", "fleet.f[0]", o1))
	// A process killed in the middle of its write leaves part of a line.
	name := filepath.Join(dir, "objects.log")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"kind":"instance","id":"i-torn","token":"torn","addr`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b := open(t, dir)
	if got := describe(t, b, "a", "torn"); len(got) != 1 || got["a"].ID != made.ID {
		t.Fatalf("with a torn line: %+v, want only %s", got, made.ID)
	}
	// The next write cuts it off; a process that read up to it reads on.
	second := mustCreate(t, b, instance("b", "fleet.f[1]", o1))
	if err := a.Delete(context.Background(), providers.KindInstance, second.ID); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("objects.log: %q, want 3 whole lines", data)
	}
	for _, l := range lines[:3] {
		var o providers.Object
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.ID == "i-torn" {
			t.Errorf("line %q: %v", l, err)
		}
	}
	all, err := open(t, dir).Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != made.ID || all[0].Status != providers.StatusRunning ||
		all[1].ID != second.ID || all[1].Status != providers.StatusTerminated {
		t.Errorf("objects: %+v, want %s running and %s terminated", all, made.ID, second.ID)
	}
}

func TestOlderLayoutIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := sim.Open(dir); err == nil {
		c.Close()
		t.Fatal("open of an older sim's directory: no error")
	}
}

func TestObjectsAreCopies(t *testing.T) {
	o1, _ := catalog(t)
	c := open(t, t.TempDir())
	made := mustCreate(t, c, instance("h", "fleet.f[0]", o1))
	ip := made.Attributes["ip"]
	made.Attributes["ip"] = "made"
	got := describe(t, c, "h")["h"]
	if got.Attributes["ip"] != ip {
		t.Fatalf("ip %q after changing Create's object, want %q", got.Attributes["ip"], ip)
	}
	got.Attributes["ip"] = "described"
	got.Offer.InstanceType = "described"
	if got.Offer.GPU != nil {
		got.Offer.GPU.Count = -1
	}
	again := describe(t, c, "h")["h"]
	if again.Attributes["ip"] != ip || again.Offer.InstanceType != o1.InstanceType ||
		again.Offer.GPU != nil && again.Offer.GPU.Count != o1.GPU.Count {
		t.Errorf("described %+v (offer %+v) after changing an earlier one's, want ip %q and the offer %+v", again, *again.Offer, ip, o1)
	}
}

// BenchmarkCreate creates instances with no latency, as the planner's
// benchmarks do.
func BenchmarkCreate(b *testing.B) {
	o1, _ := catalog(b)
	c := open(b, b.TempDir())
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Create(ctx, instance(fmt.Sprint("tok-", i), "fleet.f", o1)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDescribe describes 100 objects per call among 10,000.
func BenchmarkDescribe(b *testing.B) {
	o1, _ := catalog(b)
	c := open(b, b.TempDir())
	ctx := context.Background()
	var tokens []string
	for i := range 10000 {
		tokens = append(tokens, fmt.Sprint("tok-", i))
		if _, err := c.Create(ctx, instance(tokens[i], "fleet.f", o1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := i % 100 * 100
		if _, err := c.Describe(ctx, tokens[start:start+100]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDescribe10000 describes 10,000 objects, in calls of 500
// tokens, as the planner refreshes a large state; an op is all 10,000.
func BenchmarkDescribe10000(b *testing.B) {
	o1, _ := catalog(b)
	c := open(b, b.TempDir())
	ctx := context.Background()
	tokens := make([]string, 10000)
	for i := range tokens {
		tokens[i] = fmt.Sprint("tok-", i)
		if _, err := c.Create(ctx, instance(tokens[i], "fleet.f", o1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for start := 0; start < len(tokens); start += 500 {
			got, err := c.Describe(ctx, tokens[start:start+500])
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != 500 {
				b.Fatalf("described %d objects, want 500", len(got))
			}
		}
	}
}

// BenchmarkOpen10000 opens a cloud of 10,000 objects and describes one:
// the cost of a new process reading the whole log.
func BenchmarkOpen10000(b *testing.B) {
	o1, _ := catalog(b)
	dir := b.TempDir()
	c := open(b, dir)
	ctx := context.Background()
	for i := range 10000 {
		if _, err := c.Create(ctx, instance(fmt.Sprint("tok-", i), "fleet.f", o1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := sim.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if got := describe(b, c, "tok-0"); len(got) != 1 {
			b.Fatalf("described %+v, want tok-0", got)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
