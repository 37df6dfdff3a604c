// Package providertest is the conformance suite every provider runs
// against the real thing it drives (the simulated cloud, this machine's
// agent, SSH hosts), checking the contract of [providers.Provider]:
//
//   - offers are well-formed: a backend, region and instance type each,
//     no two alike, resources set, prices at least zero;
//   - Create is idempotent by token: a second Create with a token returns
//     the object the first one made, and makes no second;
//   - Describe reports the objects of the tokens it knows, under those
//     tokens, and omits tokens it never saw;
//   - Delete of an object that is gone is not an error, and Describe then
//     reports it terminated or not at all;
//   - errors carry their typed codes ([providers.Code]), each one the
//     contract defines.
//
// A provider's test calls [Run] with a [Harness].
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Harness is what a provider's test hands the suite.
type Harness struct {
	// Provider is the provider under test.
	Provider providers.Provider
	// Kinds are the kinds of objects it makes, in an order where each
	// may need those before it (an instance before a job on it).
	Kinds []providers.ObjectKind
	// Request returns a request for an object of kind (the suite sets
	// its Token). made holds the last object made of each kind before
	// it: a job's request names made[KindInstance].ID as its Host.
	Request func(kind providers.ObjectKind, made map[providers.ObjectKind]providers.Object) providers.CreateRequest
	// Errors provoke the provider's typed errors: each returns the error
	// of a call that must fail with the code it is keyed by. A provider
	// lists every code it can return.
	Errors map[providers.Code]func(ctx context.Context) error
	// Timeout bounds each call (a minute when zero).
	Timeout time.Duration
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("Offers", func(t *testing.T) { CheckOffers(t, h) })
	t.Run("Lifecycle", func(t *testing.T) { CheckLifecycle(t, h) })
	t.Run("Errors", func(t *testing.T) { CheckErrors(t, h) })
}

func (h Harness) ctx(t testing.TB) context.Context {
	d := h.Timeout
	if d == 0 {
		d = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Token returns a fresh idempotency token.
func Token() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "ct-" + hex.EncodeToString(b)
}

// The statuses an object may report.
var statuses = []string{providers.StatusProvisioning, providers.StatusRunning, providers.StatusDone,
	providers.StatusFailed, providers.StatusTerminated, providers.StatusUnknown}

// CheckOffers checks that the provider's offers are well-formed.
func CheckOffers(t testing.TB, h Harness) {
	t.Helper()
	p := h.Provider
	if p.Name() == "" {
		t.Errorf("Name() is empty")
	}
	list, err := p.Offers(h.ctx(t))
	if err != nil {
		t.Fatalf("Offers: %v", err)
	}
	seen := map[string]bool{}
	for i, o := range list {
		id := offerID(o)
		bad := func(format string, args ...any) {
			t.Errorf("offer %d (%s): %s", i, id, fmt.Sprintf(format, args...))
		}
		if o.Backend == "" || o.Region == "" || o.InstanceType == "" {
			bad("backend, region and instance type must all be set")
		}
		if seen[id] {
			bad("listed twice")
		}
		seen[id] = true
		if o.CPUs <= 0 {
			bad("%d CPUs", o.CPUs)
		}
		if o.Memory <= 0 {
			bad("memory %d MB", o.Memory)
		}
		if o.Disk < 0 {
			bad("disk %d MB", o.Disk)
		}
		if o.PricePerHour < 0 || math.IsNaN(o.PricePerHour) || math.IsInf(o.PricePerHour, 0) {
			bad("price %v per hour", o.PricePerHour)
		}
		if o.Arch != "" && o.Arch != "x86" && o.Arch != "arm" {
			bad("arch %q, want x86 or arm", o.Arch)
		}
		if g := o.GPU; g != nil && (g.Count <= 0 || g.Name == "" || g.Vendor == "" || g.MemoryMB < 0) {
			bad("GPU %+v: a count, a name and a vendor are needed", *g)
		}
		switch o.Availability {
		case "", offers.Available, offers.Unknown, offers.NoCapacity:
		default:
			bad("availability %q", o.Availability)
		}
		if o.Given {
			bad("an offer of a machine to make cannot be a given host")
		}
	}
}

func offerID(o offers.Offer) string {
	id := o.Backend + "/" + o.Region + "/" + o.Zone + "/" + o.InstanceType
	if o.Spot {
		id += "+spot"
	}
	return id
}

// CheckLifecycle makes an object of each kind twice with one token,
// describes them, deletes them twice and describes them again.
func CheckLifecycle(t testing.TB, h Harness) {
	t.Helper()
	ctx := h.ctx(t)
	p := h.Provider
	made := map[providers.ObjectKind]providers.Object{}
	var order []providers.Object
	defer func() {
		// Leave nothing behind when a check stopped half-way.
		for _, o := range slices.Backward(order) {
			_ = p.Delete(context.WithoutCancel(ctx), o.Kind, o.ID)
		}
	}()
	for _, kind := range h.Kinds {
		req := h.Request(kind, made)
		req.Kind, req.Token = kind, Token()
		first, err := p.Create(ctx, req)
		checkErr(t, err)
		if err != nil {
			t.Fatalf("Create %s: %v", kind, err)
		}
		order = append(order, first)
		checkObject(t, "Create", req.Token, first)
		if first.Address != req.Address {
			t.Errorf("Create %s: address %q, want %q", kind, first.Address, req.Address)
		}
		if !first.Live() {
			t.Errorf("Create %s: the object made is %s (%s)", kind, first.Status, first.Reason)
		}
		second, err := p.Create(ctx, req)
		checkErr(t, err)
		if err != nil {
			t.Fatalf("a second Create %s with token %s: %v", kind, req.Token, err)
		}
		if second.ID != first.ID {
			order = append(order, second)
			t.Errorf("Create is not idempotent by token: a second Create %s with token %s made %s, the first made %s",
				kind, req.Token, second.ID, first.ID)
		}
		checkObject(t, "a second Create", req.Token, second)
		made[kind] = first
	}

	tokens := []string{Token()} // never used
	for _, o := range order {
		tokens = append(tokens, o.Token)
	}
	got, err := p.Describe(ctx, tokens)
	checkErr(t, err)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if o, ok := got[tokens[0]]; ok {
		t.Errorf("Describe reports %s for token %s, which nothing was made with", o.ID, tokens[0])
	}
	for _, o := range order {
		d, ok := got[o.Token]
		if !ok {
			t.Errorf("Describe omits %s %s (token %s), which was made", o.Kind, o.ID, o.Token)
			continue
		}
		checkObject(t, "Describe", o.Token, d)
		if d.ID != o.ID || d.Kind != o.Kind {
			t.Errorf("Describe %s: %s %s, Create made %s %s", o.Token, d.Kind, d.ID, o.Kind, o.ID)
		}
	}
	if got, err := p.Describe(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Describe of no tokens: %v, %v", got, err)
	}

	// Deleted in reverse (a job before its host), twice: the second time
	// the object is gone, which is not an error.
	for _, o := range slices.Backward(order) {
		for try := range 2 {
			if err := p.Delete(ctx, o.Kind, o.ID); err != nil {
				checkErr(t, err)
				t.Errorf("Delete %s %s (try %d): %v", o.Kind, o.ID, try+1, err)
			}
		}
	}
	// Once all are gone, a job whose host went too is still gone.
	for _, o := range order {
		if err := p.Delete(ctx, o.Kind, o.ID); err != nil {
			checkErr(t, err)
			t.Errorf("Delete %s %s once everything was deleted: %v", o.Kind, o.ID, err)
		}
	}
	got, err = p.Describe(ctx, tokens)
	checkErr(t, err)
	if err != nil {
		t.Fatalf("Describe after Delete: %v", err)
	}
	for _, o := range order {
		if d, ok := got[o.Token]; ok && d.Status != providers.StatusTerminated {
			t.Errorf("Describe after Delete %s %s: %s, want %s or left out", o.Kind, o.ID, d.Status, providers.StatusTerminated)
		}
	}
	order = nil
}

// checkObject checks what the provider says of an object made with
// token.
func checkObject(t testing.TB, call, token string, o providers.Object) {
	t.Helper()
	if o.ID == "" {
		t.Errorf("%s %s: no ID", call, token)
	}
	if o.Token != token {
		t.Errorf("%s %s: token %q", call, token, o.Token)
	}
	if o.Kind == "" {
		t.Errorf("%s %s: no kind", call, token)
	}
	if !slices.Contains(statuses, o.Status) {
		t.Errorf("%s %s: status %q is none of %v", call, token, o.Status, statuses)
	}
}

// checkErr checks that a coded error has a code the contract defines.
func checkErr(t testing.TB, err error) {
	t.Helper()
	if c := providers.CodeOf(err); c != "" && !slices.Contains(providers.Codes(), c) {
		t.Errorf("error code %q is none of %v: %v", c, providers.Codes(), err)
	}
}

// CheckErrors provokes each error the harness lists and checks its code.
func CheckErrors(t testing.TB, h Harness) {
	t.Helper()
	codes := make([]providers.Code, 0, len(h.Errors))
	for c := range h.Errors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, want := range codes {
		if !slices.Contains(providers.Codes(), want) {
			t.Errorf("the harness provokes %q, which the contract does not define", want)
			continue
		}
		err := h.Errors[want](h.ctx(t))
		var pe *providers.Error
		switch {
		case err == nil:
			t.Errorf("%s: the call did not fail", want)
		case !errors.As(err, &pe):
			t.Errorf("%s: the error has no code: %v", want, err)
		case pe.Code != want:
			t.Errorf("%s: the error's code is %s: %v", want, pe.Code, err)
		case pe.Err == nil || pe.Err.Error() == "":
			t.Errorf("%s: the error says nothing beyond its code", want)
		}
	}
}
