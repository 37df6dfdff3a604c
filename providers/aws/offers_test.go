package aws

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// offersOnly is a Cloud that answers Offers only, counting the calls.
type offersOnly struct {
	Cloud
	calls *int
	list  []offers.Offer
	err   error
}

func (o offersOnly) Offers(context.Context) ([]offers.Offer, error) {
	*o.calls++
	return o.list, o.err
}

// TestOfferCache: the account's offers are read once and then taken from
// the cache file until they are MaxAge old; settings with other regions
// have their own; credentials never reach the file.
func TestOfferCache(t *testing.T) {
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	cache := &OfferCache{Dir: t.TempDir(), MaxAge: time.Hour, Now: func() time.Time { return now }}
	account := []offers.Offer{{Backend: Backend, Region: "us-east-1", Zone: "us-east-1b", InstanceType: "p5.48xlarge", CPUs: 192,
		Arch: "x86", Memory: 2048 * 1024, Spot: true, PricePerHour: 12.34, PricedAt: now.Add(-time.Minute)}}
	calls := 0
	s := Settings{Regions: []string{"us-east-1"}, AccessKey: "AKIASECRETKEYID00001", SecretKey: "very-secret"}
	cloud := func(context.Context) (Cloud, error) { return offersOnly{calls: &calls, list: account}, nil }

	for i, want := range []int{1, 1, 1} {
		got, err := accountOffers(t.Context(), cache, s, cloud)
		if err != nil {
			t.Fatal(err)
		}
		if calls != want || len(got) != 1 || got[0].PricePerHour != 12.34 || !got[0].PricedAt.Equal(account[0].PricedAt) {
			t.Fatalf("call %d: %d reads, offers %+v", i, calls, got)
		}
		now = now.Add(20 * time.Minute) // 0, 20 and 40 minutes after the read
	}
	now = now.Add(time.Minute) // the read is 61 minutes old
	if _, err := accountOffers(t.Context(), cache, s, cloud); err != nil || calls != 2 {
		t.Fatalf("after an hour: %d reads, %v", calls, err)
	}
	other := Settings{Regions: []string{"us-west-2"}}
	if _, err := accountOffers(t.Context(), cache, other, cloud); err != nil || calls != 3 {
		t.Fatalf("other regions: %d reads, %v", calls, err)
	}
	files, _ := filepath.Glob(filepath.Join(cache.Dir, "*"))
	if len(files) != 2 {
		t.Fatalf("cache files %q, want one per set of regions", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "AKIASECRETKEYID00001") || strings.Contains(string(data), "very-secret") {
			t.Fatalf("%s holds a credential:\n%s", f, data)
		}
	}
}

// TestOfferFallback: when the account cannot be read, the catalog's
// offers (list prices, no PricedAt) stand in, nothing is cached, and the
// next call tries the account again.
func TestOfferFallback(t *testing.T) {
	cache := &OfferCache{Dir: t.TempDir()}
	calls := 0
	s := Settings{Regions: []string{"us-east-1"}}
	for _, cloud := range []func(context.Context) (Cloud, error){
		func(context.Context) (Cloud, error) {
			calls++
			return nil, errors.New("dstack-provider-aws not found")
		},
		func(context.Context) (Cloud, error) {
			return offersOnly{calls: &calls, err: providers.Errorf(providers.Auth, "AuthFailure: bad key")}, nil
		},
		func(context.Context) (Cloud, error) {
			return offersOnly{calls: &calls, err: errors.New("dial tcp: lookup ec2.us-east-1.amazonaws.com: no such host")}, nil
		},
	} {
		got, err := accountOffers(t.Context(), cache, s, cloud)
		if err != nil {
			t.Fatal(err)
		}
		catalog, _ := CatalogOffers(s.Regions)
		if len(got) == 0 || len(got) != len(catalog) || !got[0].PricedAt.IsZero() {
			t.Fatalf("fallback: %d offers (catalog %d), first %+v", len(got), len(catalog), got[0])
		}
	}
	if calls != 3 {
		t.Fatalf("%d tries, want one per call", calls)
	}
	if files, _ := filepath.Glob(filepath.Join(cache.Dir, "*")); len(files) != 0 {
		t.Fatalf("a failed read was cached: %q", files)
	}
}

// TestSpotAgentWatchesInterruptions: the agent of a spot instance is
// started watching for the spot interruption notice; an on-demand
// instance's is not.
func TestSpotAgentWatchesInterruptions(t *testing.T) {
	if got := agentFlags(Instance{ID: "i-1", Spot: true}, ""); len(got) != 1 || got[0] != "-watch-interruptions" {
		t.Errorf("spot instance: agent flags %q", got)
	}
	if got := agentFlags(Instance{ID: "i-1", Spot: true}, "http://10.0.0.1:1338"); strings.Join(got, " ") != "-watch-interruptions -imds-endpoint http://10.0.0.1:1338" {
		t.Errorf("spot instance, another metadata service: agent flags %q", got)
	}
	if got := agentFlags(Instance{ID: "i-2"}, "http://10.0.0.1:1338"); len(got) != 0 {
		t.Errorf("on-demand instance: agent flags %q", got)
	}
}
