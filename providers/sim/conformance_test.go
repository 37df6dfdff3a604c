package sim_test

import (
	"context"
	"testing"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/providertest"
	"github.com/dstackai/dstack-go/providers/sim"
)

// harness is the conformance suite's harness for a cloud: an instance, a
// job on it, a volume and a gateway, and each error code the cloud can
// return, from clouds configured to return it.
func harness(t testing.TB, c *sim.Cloud) providertest.Harness {
	o1, _ := catalog(t)
	createIn := func(cfg sim.Config) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			other, _ := openWith(t, cfg)
			_, err := other.Create(ctx, instance(providertest.Token(), "fleet.f[0]", o1))
			return err
		}
	}
	fail := func(code providers.Code) sim.Config {
		return sim.Config{Failures: []sim.Failure{{Op: sim.OpCreate, Code: code}}}
	}
	return providertest.Harness{
		Provider: c,
		Kinds:    []providers.ObjectKind{providers.KindInstance, providers.KindJob, providers.KindVolume, providers.KindGateway},
		Request: func(kind providers.ObjectKind, made map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			switch kind {
			case providers.KindInstance:
				return providers.CreateRequest{Address: "fleet.f[0]", Offer: &o1}
			case providers.KindJob:
				return providers.CreateRequest{Address: "task.t[0]", Host: made[providers.KindInstance].ID, Spec: []byte(`{"type":"service","name":"t"}`)}
			case providers.KindVolume:
				return providers.CreateRequest{Address: "volume.v[0]"}
			}
			return providers.CreateRequest{Address: "gateway.g[0]"}
		},
		Errors: map[providers.Code]func(context.Context) error{
			providers.NoCapacity:  createIn(sim.Config{Capacity: map[string]int{"*": 0}}),
			providers.Quota:       createIn(fail(providers.Quota)),
			providers.RateLimited: createIn(fail(providers.RateLimited)),
			providers.Auth:        createIn(fail(providers.Auth)),
			providers.NotFound: func(ctx context.Context) error {
				_, err := c.Create(ctx, providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.t[0]", Host: "i-gone"})
				return err
			},
		},
	}
}

func TestConformance(t *testing.T) {
	providertest.Run(t, harness(t, open(t, t.TempDir())))
}
