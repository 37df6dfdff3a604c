package providertest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/providertest"
	"github.com/dstackai/dstack-go/providers/sim"
)

// recorder is a testing.TB that records failures instead of failing, so
// that a test can run the suite's checks and look at what they found.
type recorder struct {
	testing.TB // not set: the methods the checks call are below
	mu         sync.Mutex
	failures   []string
	cleanups   []func()
}

func (r *recorder) Helper()             {}
func (r *recorder) Name() string        { return "recorder" }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures) > 0
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// check runs a check of the suite against a recorder and returns what it
// reported.
func check(f func(testing.TB, providertest.Harness), h providertest.Harness) []string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r, h)
	}()
	<-done
	for _, c := range slices.Backward(r.cleanups) {
		c()
	}
	return r.failures
}

// forgetful is a provider that breaks idempotency by token: each Create
// makes a new object, whatever the token.
type forgetful struct {
	*sim.Cloud
	n atomic.Int64
}

func (f *forgetful) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	token := req.Token
	req.Token = fmt.Sprintf("%s-%d", token, f.n.Add(1))
	o, err := f.Cloud.Create(ctx, req)
	o.Token = token
	return o, err
}

// untyped is a provider whose errors lose their codes.
type untyped struct{ *sim.Cloud }

func (u untyped) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	o, err := u.Cloud.Create(ctx, req)
	if err != nil {
		return o, errors.New(err.Error())
	}
	return o, nil
}

func harness(t *testing.T, p providers.Provider, c *sim.Cloud) providertest.Harness {
	all, err := offers.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	return providertest.Harness{
		Provider: p,
		Kinds:    []providers.ObjectKind{providers.KindInstance},
		Request: func(providers.ObjectKind, map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			return providers.CreateRequest{Address: "fleet.f[0]", Offer: &all[0]}
		},
		Errors: map[providers.Code]func(context.Context) error{
			providers.NotFound: func(ctx context.Context) error {
				_, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.t[0]", Host: "i-gone"})
				return err
			},
		},
	}
}

func openSim(t *testing.T) *sim.Cloud {
	c, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSuiteCatchesBrokenIdempotency: the lifecycle check passes the
// simulated cloud and fails a wrapper of it that makes a new object on
// every Create.
func TestSuiteCatchesBrokenIdempotency(t *testing.T) {
	c := openSim(t)
	if got := check(providertest.CheckLifecycle, harness(t, c, c)); len(got) > 0 {
		t.Fatalf("the simulated cloud fails the lifecycle check:\n%s", strings.Join(got, "\n"))
	}
	broken := &forgetful{Cloud: openSim(t)}
	got := check(providertest.CheckLifecycle, harness(t, broken, broken.Cloud))
	if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "Create is not idempotent by token") }) {
		t.Fatalf("the suite did not catch a provider that makes an object per Create; it reported:\n%s", strings.Join(got, "\n"))
	}
	live, err := broken.Live()
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Errorf("the check left %d objects behind: %+v", len(live), live)
	}
}

// TestSuiteCatchesUntypedErrors: an error that lost its code fails the
// errors check, naming the code.
func TestSuiteCatchesUntypedErrors(t *testing.T) {
	c := openSim(t)
	if got := check(providertest.CheckErrors, harness(t, c, c)); len(got) > 0 {
		t.Fatalf("the simulated cloud fails the errors check:\n%s", strings.Join(got, "\n"))
	}
	u := untyped{openSim(t)}
	got := check(providertest.CheckErrors, harness(t, u, u.Cloud))
	if len(got) != 1 || !strings.Contains(got[0], "not-found: the error has no code") {
		t.Fatalf("the suite reported %q, want the not-found error without a code", got)
	}
}

// TestSuiteCatchesBadOffers: offers without resources, with a negative
// price, or listed twice fail the offers check.
func TestSuiteCatchesBadOffers(t *testing.T) {
	c := openSim(t)
	good, err := c.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := check(providertest.CheckOffers, providertest.Harness{Provider: c}); len(got) > 0 {
		t.Fatalf("the catalog fails the offers check:\n%s", strings.Join(got, "\n"))
	}
	bad := []offers.Offer{good[0], good[0], good[1], good[2]}
	bad[2].PricePerHour = -1
	bad[3].CPUs, bad[3].Memory = 0, 0
	got := check(providertest.CheckOffers, providertest.Harness{Provider: fixedOffers{c, bad}})
	want := []string{"listed twice", "price -1 per hour", "0 CPUs", "memory 0 MB"}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("the offers check did not report %q; it reported:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

type fixedOffers struct {
	*sim.Cloud
	list []offers.Offer
}

func (f fixedOffers) Offers(context.Context) ([]offers.Offer, error) { return f.list, nil }
