package ec2api

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/offers"
)

// fakeAccount is the SDK pointed at the fake EC2 API for EC2
// (AWS_ENDPOINT_URL_EC2) and for the Price List API
// (AWS_ENDPOINT_URL_PRICING), which the fake answers at the same address.
func fakeAccount(t *testing.T, regions ...string) (*Cloud, *awstest.Fake) {
	t.Helper()
	f := awstest.New(awstest.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_EC2", srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_PRICING", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	c, err := New(context.Background(), aws.Settings{Regions: regions})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// TestAccountOffers reads the offers of the account from the fake, through
// the SDK's paginators and deserializers: the types and GPUs of
// DescribeInstanceTypes, the zones of DescribeInstanceTypeOfferings, the
// spot prices of DescribeSpotPriceHistory and the on-demand prices of the
// Price List API, each as the fake was told to answer, not as the
// catalog has them.
func TestAccountOffers(t *testing.T) {
	c, f := fakeAccount(t, "us-east-1", "us-west-2")
	f.SetOnDemandPrice("us-east-1", "p5.48xlarge", 77.7)
	f.SetSpotPrice("us-east-1b", "p5.48xlarge", 12.34)
	f.SetTypeZones("us-east-1", "p4d.24xlarge", "us-east-1c")
	got, err := c.Offers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	find := func(region, zone, typ string, spot bool) *offers.Offer {
		for i, o := range got {
			if o.Region == region && o.Zone == zone && o.InstanceType == typ && o.Spot == spot {
				return &got[i]
			}
		}
		return nil
	}
	// On demand in the first zone that has it, spot where it is cheapest.
	od, sp := find("us-east-1", "us-east-1a", "p5.48xlarge", false), find("us-east-1", "us-east-1b", "p5.48xlarge", true)
	if od == nil || sp == nil {
		t.Fatalf("no on-demand p5.48xlarge offer in us-east-1a or spot one in us-east-1b among %d", len(got))
	}
	if od.PricePerHour != 77.7 || sp.PricePerHour != 12.34 {
		t.Errorf("p5.48xlarge: on-demand $%v, spot $%v; want the fake's 77.7 and 12.34", od.PricePerHour, sp.PricePerHour)
	}
	n := 0
	for _, o := range got {
		if o.Region == "us-east-1" && o.InstanceType == "p5.48xlarge" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d p5.48xlarge offers in us-east-1, want one on demand and one spot", n)
	}
	if g := od.GPU; g == nil || g.Vendor != "nvidia" || g.Name != "H100" || g.Count != 8 || g.MemoryMB != 80*1024 ||
		od.CPUs != 192 || od.Memory != 2048*1024 || od.Arch != "x86" || od.Backend != "aws" || od.PricedAt.IsZero() {
		t.Errorf("p5.48xlarge offer: %+v (gpu %+v)", *od, od.GPU)
	}
	if find("us-east-1", "us-east-1a", "p4d.24xlarge", false) != nil || find("us-east-1", "us-east-1c", "p4d.24xlarge", false) == nil {
		t.Errorf("p4d.24xlarge runs only in us-east-1c, as the fake says")
	}
	if find("us-west-2", "us-west-2a", "p5.48xlarge", false) == nil {
		t.Errorf("no p5.48xlarge offer in us-west-2a")
	}
	// Every list was read to its last page (the fake's pages hold 10).
	pages := map[string]int{}
	for _, call := range f.Calls() {
		pages[call.Action]++
	}
	for _, a := range []string{"DescribeInstanceTypes", "DescribeInstanceTypeOfferings", "DescribeSpotPriceHistory", "pricing:GetProducts"} {
		if pages[a] < 3 {
			t.Errorf("%s was called %d times for two regions of paged answers", a, pages[a])
		}
	}
}

// TestAccountOffersErrors: an error of EC2 is the provider contract's
// (here the Auth of a bad key), for the caller to fall back on.
func TestAccountOffersErrors(t *testing.T) {
	c, f := fakeAccount(t, "us-east-1")
	f.Inject("DescribeInstanceTypes", "AuthFailure", 1)
	_, err := c.Offers(ctx(t))
	if providers.CodeOf(err) != providers.Auth {
		t.Fatalf("err = %v (code %q), want an auth error", err, providers.CodeOf(err))
	}
}
