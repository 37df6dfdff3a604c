package s3

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// bigState returns a state of n resources, each with a few attributes
// and one instance, about what a large fleet records.
func bigState(n int) *state.State {
	s := state.New("bench")
	for i := range n {
		s.Put(&state.Resource{
			Address:    fmt.Sprintf("fleet.worker%05d", i),
			ConfigHash: fmt.Sprintf("%064x", i),
			Attributes: map[string]any{"name": fmt.Sprintf("worker%05d", i), "gpu": "H100", "count": 8, "spot": i%2 == 0},
			Instances: []*state.Instance{{
				Index:      0,
				ProviderID: fmt.Sprintf("i-%017x", i),
				Provider:   "aws",
				Status:     "running",
				Attributes: map[string]any{"ip": fmt.Sprintf("10.0.%d.%d", i/256, i%256), "region": "us-east-1"},
			}},
		})
	}
	return s
}

// BenchmarkS3ReadWrite10000 measures one Read and one compare-and-swap
// Write of a 10,000-resource state per op, against versitygw.
func BenchmarkS3ReadWrite10000(b *testing.B) {
	srv := startServer(b)
	be := srv.backend(b)
	ctx := context.Background()
	s := bigState(10000)
	data, err := state.Encode(s)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := be.Write(ctx, "bench", s, "", ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		snap, err := be.Read(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		snap.State.Serial++
		if _, err := be.Write(ctx, "bench", snap.State, snap.Version, ""); err != nil {
			b.Fatal(err)
		}
	}
	// After the loop: b.Loop resets the timer, which drops metrics.
	b.ReportMetric(float64(len(data))/1e6, "state-MB")
}

// BenchmarkS3LockUnlock measures a Lock and Unlock round trip.
func BenchmarkS3LockUnlock(b *testing.B) {
	srv := startServer(b)
	be := srv.backend(b)
	ctx := context.Background()
	for b.Loop() {
		l, err := be.Lock(ctx, "bench", state.LockInfo{Operation: "apply", Who: "bench"}, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Unlock(ctx, "bench", l.ID); err != nil {
			b.Fatal(err)
		}
	}
}
