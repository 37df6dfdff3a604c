package local

import (
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/statetest"
)

// BenchmarkLocalWrite10000 is a CAS write of a 10,000-resource state after
// one resource changed: the whole file is rewritten (encode, fsync,
// rename), which is the price of an atomic replace on a plain file.
func BenchmarkLocalWrite10000(b *testing.B) {
	be, _ := New(map[string]string{"path": b.TempDir()})
	ctx := b.Context()
	s := statetest.BigState(10000)
	v, err := be.Write(ctx, "default", s, "", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s.Serial++
		s.Resources[42].Attributes["nodes"] = int(s.Serial)
		if v, err = be.Write(ctx, "default", s, v, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalRead10000 reads and verifies a 10,000-resource state.
func BenchmarkLocalRead10000(b *testing.B) {
	be, _ := New(map[string]string{"path": b.TempDir()})
	ctx := b.Context()
	if _, err := be.Write(ctx, "default", statetest.BigState(10000), "", ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := be.Read(ctx, "default"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalLockUnlock is one lock and unlock round trip.
func BenchmarkLocalLockUnlock(b *testing.B) {
	be, _ := New(map[string]string{"path": b.TempDir()})
	ctx := b.Context()
	for b.Loop() {
		l, err := be.Lock(ctx, "default", state.LockInfo{Who: "bench"}, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Unlock(ctx, "default", l.ID); err != nil {
			b.Fatal(err)
		}
	}
}
