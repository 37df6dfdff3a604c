// Package statetest is the conformance suite every state backend runs
// against a real server: compare-and-swap writes, lock contention and
// force-unlock, lease expiry (a holder killed with SIGKILL loses its lock
// after the TTL), zombies that lost their lease, twenty concurrent
// writers, corrupt and truncated documents, newer format versions,
// workspaces, and the sealed secrets section.
//
// A backend's test calls Main from its TestMain (the SIGKILL test re-runs
// the test binary as the process to kill) and Run from a test.
package statetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Factory builds a backend from its configuration, as `dstack init` would.
type Factory func(cfg map[string]string) (state.Backend, error)

// Harness is what a backend's test hands the suite. Run uses fixed
// workspace names, so each Run needs an empty store (a fresh bucket,
// prefix, directory or database).
type Harness struct {
	// New opens a new client of the store under test, as another process
	// would. Each call must reach the same store.
	New func(t testing.TB) state.Backend
	// PutRaw stores bytes as a workspace's state, bypassing the backend's
	// checks, to test how corrupt documents are handled.
	PutRaw func(t testing.TB, workspace string, data []byte)
	// Config is the configuration the child process of the SIGKILL test
	// passes to the Factory given to Main.
	Config map[string]string
	// Writers and Rounds size the concurrent-writers test (20 and 5 when
	// zero).
	Writers, Rounds int
	// TTL is the lease used by the expiry tests (2s when zero).
	TTL time.Duration
	// Open builds a backend from a configuration (Config plus lock_ttl,
	// for the lock_ttl test), as dstack init would.
	Open Factory
	// BreaksOrphanedLocks says the backend breaks, at once, a lock whose
	// holder ran on this machine and is gone (the local backend), instead
	// of waiting for its lease to run out.
	BreaksOrphanedLocks bool
}

const (
	childEnv       = "DSTACK_STATETEST_CHILD"
	childConfigEnv = "DSTACK_STATETEST_CONFIG"
	childTTLEnv    = "DSTACK_STATETEST_TTL"
)

// Main runs the tests, or, when started as the SIGKILL test's child, takes
// a lock with f's backend, reports it, and holds it until killed.
func Main(m *testing.M, f Factory) {
	if os.Getenv(childEnv) == "" {
		os.Exit(m.Run())
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(os.Getenv(childConfigEnv)), &cfg); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	ttl, _ := time.ParseDuration(os.Getenv(childTTLEnv))
	b, err := f(cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	ctx := context.Background()
	l, err := state.Hold(ctx, b, "killed", state.LockInfo{Operation: "apply", Who: "child"}, state.HoldOptions{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("LOCKED", l.Info.ID)
	select {} // renewing until killed
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Writers == 0 {
		h.Writers = 20
	}
	if h.Rounds == 0 {
		h.Rounds = 5
	}
	if h.TTL == 0 {
		h.TTL = 2 * time.Second
	}
	t.Run("ReadMissing", func(t *testing.T) { testReadMissing(t, h) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCAS(t, h) })
	t.Run("LockContention", func(t *testing.T) { testLockContention(t, h) })
	t.Run("LeaseExpiry", func(t *testing.T) { testLeaseExpiry(t, h) })
	t.Run("LockTTLSetting", func(t *testing.T) { testLockTTLSetting(t, h) })
	t.Run("Zombie", func(t *testing.T) { testZombie(t, h) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, h) })
	t.Run("KilledHolder", func(t *testing.T) { testKilledHolder(t, h) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, h) })
	t.Run("NewerVersion", func(t *testing.T) { testNewerVersion(t, h) })
	t.Run("Workspaces", func(t *testing.T) { testWorkspaces(t, h) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, h) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func counter(s *state.State) int {
	r := s.Resource("task.counter")
	if r == nil {
		return 0
	}
	switch v := r.Attributes["n"].(type) {
	case json.Number:
		n, _ := v.Int64()
		return int(n)
	case float64:
		return int(v)
	case int:
		return v
	}
	return 0
}

func withCounter(s *state.State, n int) {
	s.Put(&state.Resource{Address: "task.counter", Attributes: map[string]any{"n": n}})
}

// testSecrets: the document's sealed secrets section is stored and read
// back as written, beside resources (the pg backend stores resources in
// rows of their own, the rest of the document in one piece), and a
// compare-and-swap write that changes only the secrets replaces them.
func testSecrets(t *testing.T, h Harness) {
	ctx, b, ws := ctxFor(t), h.New(t), "secrets"
	s := state.New("test")
	s.Serial = 1
	withCounter(s, 1)
	s.Put(&state.Resource{Address: "task.b", ConfigHash: "h"})
	s.Secrets = &state.Secrets{Cipher: "aes-256-gcm", KeyID: "0123456789abcdef",
		Values: map[string]string{"hf_token": "c2VhbGVkLTE=", "db": "c2VhbGVkLTI="}}
	v1, err := b.Write(ctx, ws, s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.State.Secrets; got == nil || got.KeyID != s.Secrets.KeyID || !maps.Equal(got.Values, s.Secrets.Values) {
		t.Fatalf("secrets read back: %+v, want %+v", got, s.Secrets)
	}
	snap.State.Serial++
	delete(snap.State.Secrets.Values, "db")
	if _, err := b.Write(ctx, ws, snap.State, v1, ""); err != nil {
		t.Fatal(err)
	}
	snap, err = b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if names := snap.State.SecretNames(); !slices.Equal(names, []string{"hf_token"}) || snap.State.Resource("task.b") == nil {
		t.Fatalf("after removing one secret: secrets %v, resource %v", names, snap.State.Resource("task.b"))
	}
}

func testReadMissing(t *testing.T, h Harness) {
	b := h.New(t)
	if _, err := b.Read(ctxFor(t), "missing"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Read of a workspace without state: got %v, want ErrNotFound", err)
	}
}

func testCAS(t *testing.T, h Harness) {
	ctx, b, ws := ctxFor(t), h.New(t), "cas"
	s := state.New("test")
	s.Serial = 1
	withCounter(s, 1)
	v1, err := b.Write(ctx, ws, s, "", "")
	if err != nil {
		t.Fatalf("first write: %v", err)
	}
	if v1 == "" {
		t.Fatal("write returned an empty version")
	}
	// A second create must not replace what is there.
	other := state.New("test")
	other.Serial = 1
	var conflict *state.ConflictError
	if _, err := b.Write(ctx, ws, other, "", ""); !errors.As(err, &conflict) {
		t.Fatalf("create over existing state: got %v, want *ConflictError", err)
	}
	snap, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != v1 || snap.State.Lineage != s.Lineage || counter(snap.State) != 1 {
		t.Fatalf("read back version %q lineage %q counter %d, want %q %q 1", snap.Version, snap.State.Lineage, counter(snap.State), v1, s.Lineage)
	}
	snap.State.Serial++
	withCounter(snap.State, 2)
	v2, err := b.Write(ctx, ws, snap.State, v1, "")
	if err != nil {
		t.Fatalf("CAS write: %v", err)
	}
	if v2 == v1 {
		t.Fatalf("version did not change: %q", v2)
	}
	// Writing against the old version fails and changes nothing.
	stale := snap.State.Clone()
	stale.Serial++
	withCounter(stale, 99)
	if _, err := b.Write(ctx, ws, stale, v1, ""); !errors.As(err, &conflict) {
		t.Fatalf("write against a stale version: got %v, want *ConflictError", err)
	}
	snap, err = b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != v2 || counter(snap.State) != 2 || snap.State.Serial != 2 {
		t.Fatalf("after a refused write: version %q counter %d serial %d, want %q 2 2", snap.Version, counter(snap.State), snap.State.Serial, v2)
	}
}

func testLockContention(t *testing.T, h Harness) {
	ctx, a, b, ws := ctxFor(t), h.New(t), h.New(t), "contention"
	la, err := a.Lock(ctx, ws, state.LockInfo{Operation: "apply", Who: "alice@ci", Version: "test", Path: ws}, time.Minute)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if la.ID == "" || !la.Live(time.Now()) {
		t.Fatalf("lock returned %+v", la)
	}
	_, err = b.Lock(ctx, ws, state.LockInfo{Operation: "plan", Who: "bob"}, time.Minute)
	var locked *state.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second lock: got %v, want *LockedError", err)
	}
	if locked.Holder.ID != la.ID || locked.Holder.Who != "alice@ci" || locked.Holder.Operation != "apply" || locked.Holder.Created.IsZero() {
		t.Fatalf("holder %+v, want alice's lock %+v", locked.Holder, la)
	}
	for _, want := range []string{"alice@ci", "apply", la.ID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lock error %q does not name %q", err, want)
		}
	}
	info, err := b.LockInfo(ctx, ws)
	if err != nil || info == nil || info.ID != la.ID {
		t.Fatalf("LockInfo: %+v, %v", info, err)
	}
	var lost *state.LockLostError
	if err := b.Renew(ctx, ws, "not-the-id", time.Minute); !errors.As(err, &lost) {
		t.Fatalf("renew with a wrong ID: got %v, want *LockLostError", err)
	}
	if err := b.ForceUnlock(ctx, ws, "not-the-id"); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("force-unlock with a wrong ID: got %v, want an error wrapping ErrNotLocked", err)
	}
	if err := b.ForceUnlock(ctx, ws, la.ID); err != nil {
		t.Fatalf("force-unlock: %v", err)
	}
	if err := a.Renew(ctx, ws, la.ID, time.Minute); !errors.As(err, &lost) {
		t.Fatalf("renew after force-unlock: got %v, want *LockLostError", err)
	}
	lb, err := b.Lock(ctx, ws, state.LockInfo{Operation: "plan", Who: "bob"}, time.Minute)
	if err != nil {
		t.Fatalf("lock after force-unlock: %v", err)
	}
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if info, err := b.LockInfo(ctx, ws); err != nil || info != nil {
		t.Fatalf("after unlock: lock %+v, err %v", info, err)
	}
}

func testLeaseExpiry(t *testing.T, h Harness) {
	ctx, a, b, ws := ctxFor(t), h.New(t), h.New(t), "expiry"
	la, err := a.Lock(ctx, ws, state.LockInfo{Operation: "apply", Who: "crashed"}, h.TTL)
	if err != nil {
		t.Fatal(err)
	}
	var locked *state.LockedError
	if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "b"}, h.TTL); !errors.As(err, &locked) {
		t.Fatalf("lock before the lease ran out: got %v, want *LockedError", err)
	}
	time.Sleep(time.Until(la.Expires) + 100*time.Millisecond)
	lb, err := b.Lock(ctx, ws, state.LockInfo{Who: "b"}, time.Minute)
	if err != nil {
		t.Fatalf("lock after the lease ran out: %v", err)
	}
	var lost *state.LockLostError
	if err := a.Renew(ctx, ws, la.ID, h.TTL); !errors.As(err, &lost) {
		t.Fatalf("renew of a lease taken over: got %v, want *LockLostError", err)
	}
	if err := a.Unlock(ctx, ws, la.ID); !errors.As(err, &lost) {
		t.Fatalf("unlock of a lease taken over: got %v, want *LockLostError", err)
	}
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatal(err)
	}
}

// stalledRenewals is a backend whose lease renewals never get through,
// as for a holder that stalled or lost its network.
type stalledRenewals struct{ state.Backend }

func (stalledRenewals) Renew(context.Context, string, string, time.Duration) error {
	return errors.New("renewal did not get through")
}

// testLockTTLSetting: the backend's lock_ttl is the lease a holder that
// names none gets; a holder whose renewals stop knows by its own clock
// that its lease lapsed, a margin before anyone else may take the lock,
// and nobody can take it before lock_ttl has passed.
func testLockTTLSetting(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("the harness has no Open: every backend must run the lock_ttl test")
	}
	ctx, ws := ctxFor(t), "lockttl"
	cfg := maps.Clone(h.Config)
	cfg["lock_ttl"] = h.TTL.String()
	b, err := h.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		t.Cleanup(func() { _ = c.Close() })
	} else if c, ok := b.(interface{ Close() }); ok {
		t.Cleanup(c.Close)
	}
	start := time.Now()
	l, err := state.Hold(ctx, stalledRenewals{b}, ws, state.LockInfo{Operation: "apply", Who: "stalls"}, state.HoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	if l.TTL != h.TTL {
		t.Fatalf("lease TTL %s, want the backend's lock_ttl %s", l.TTL, h.TTL)
	}
	if d := l.Info.Expires.Sub(l.Info.Created); d < h.TTL-10*time.Millisecond || d > h.TTL+10*time.Millisecond {
		t.Fatalf("the stored lock runs %s, want lock_ttl %s", d, h.TTL)
	}
	if err := l.Valid(); err != nil {
		t.Fatalf("a lease just taken is not valid: %v", err)
	}
	for l.Valid() == nil {
		if time.Since(start) > h.TTL {
			t.Fatalf("the lease was still valid by its holder's clock after lock_ttl (%s)", h.TTL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lapsed := time.Since(start)
	if want := h.TTL - l.Margin(); lapsed < want-20*time.Millisecond {
		t.Fatalf("the lease lapsed after %s, before lock_ttl minus the margin (%s)", lapsed, want)
	}
	var lapsedErr *state.LeaseLapsedError
	if err := l.Valid(); !errors.As(err, &lapsedErr) {
		t.Fatalf("Valid after the lapse: %v, want a *LeaseLapsedError", err)
	}
	other := h.New(t)
	var locked *state.LockedError
	if _, err := other.Lock(ctx, ws, state.LockInfo{Who: "next"}, 0); !errors.As(err, &locked) {
		t.Fatalf("another holder took the lock %s after the first holder took it, before lock_ttl (%s): %v", time.Since(start), h.TTL, err)
	}
	time.Sleep(time.Until(l.Info.Expires) + 100*time.Millisecond)
	ln, err := other.Lock(ctx, ws, state.LockInfo{Who: "next"}, 0)
	if err != nil {
		t.Fatalf("the lock was not free %s after it was taken (lock_ttl %s): %v", time.Since(start), h.TTL, err)
	}
	if err := other.Unlock(ctx, ws, ln.ID); err != nil {
		t.Fatal(err)
	}
}

func testZombie(t *testing.T, h Harness) {
	ctx, a, b, ws := ctxFor(t), h.New(t), h.New(t), "zombie"
	s := state.New("test")
	s.Serial = 1
	withCounter(s, 1)
	v1, err := a.Write(ctx, ws, s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.Lock(ctx, ws, state.LockInfo{Who: "zombie"}, h.TTL)
	if err != nil {
		t.Fatal(err)
	}
	zsnap, err := a.Read(ctx, ws)
	if err != nil || zsnap.Version != v1 {
		t.Fatalf("zombie read: %v %v", zsnap, err)
	}
	time.Sleep(time.Until(la.Expires) + 100*time.Millisecond) // the zombie stalls
	lb, err := b.Lock(ctx, ws, state.LockInfo{Who: "successor"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	snap.State.Serial++
	withCounter(snap.State, 2)
	if _, err := b.Write(ctx, ws, snap.State, snap.Version, lb.ID); err != nil {
		t.Fatalf("successor write: %v", err)
	}
	// The zombie wakes up and writes what it computed from the old state.
	zsnap.State.Serial++
	withCounter(zsnap.State, 100)
	_, err = a.Write(ctx, ws, zsnap.State, zsnap.Version, la.ID)
	var (
		conflict *state.ConflictError
		lost     *state.LockLostError
		locked   *state.LockedError
	)
	if err == nil {
		t.Fatal("the zombie's write succeeded")
	}
	if !errors.As(err, &conflict) && !errors.As(err, &lost) && !errors.As(err, &locked) {
		t.Fatalf("zombie write: got %v, want a conflict or a lock error", err)
	}
	final, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if counter(final.State) != 2 || final.State.Serial != 2 {
		t.Fatalf("after the zombie: counter %d serial %d, want 2 and 2", counter(final.State), final.State.Serial)
	}
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentWriters(t *testing.T, h Harness) {
	ctx, ws := ctxFor(t), "concurrent"
	var mu sync.Mutex
	serials := map[uint64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, h.Writers)
	for w := range h.Writers {
		b := h.New(t)
		wg.Go(func() {
			for range h.Rounds {
				l, err := state.Hold(ctx, b, ws, state.LockInfo{Operation: "apply", Who: fmt.Sprintf("writer-%d", w)},
					state.HoldOptions{TTL: 30 * time.Second, Timeout: 90 * time.Second})
				if err != nil {
					errs <- fmt.Errorf("writer %d lock: %w", w, err)
					return
				}
				snap, err := b.Read(ctx, ws)
				var next *state.State
				var prev state.Version
				switch {
				case errors.Is(err, state.ErrNotFound):
					next = state.New("test")
				case err != nil:
					errs <- fmt.Errorf("writer %d read: %w", w, err)
					_ = l.Release(ctx)
					return
				default:
					next, prev = snap.State, snap.Version
				}
				next.Serial++
				withCounter(next, counter(next)+1)
				if _, err := b.Write(ctx, ws, next, prev, l.Info.ID); err != nil {
					errs <- fmt.Errorf("writer %d write: %w", w, err)
					_ = l.Release(ctx)
					return
				}
				mu.Lock()
				serials[next.Serial]++
				mu.Unlock()
				if err := l.Release(ctx); err != nil {
					errs <- fmt.Errorf("writer %d unlock: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := h.Writers * h.Rounds
	final, err := h.New(t).Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got := counter(final.State); got != want {
		t.Errorf("counter %d after %d increments: updates were lost", got, want)
	}
	if final.State.Serial != uint64(want) {
		t.Errorf("final serial %d, want %d", final.State.Serial, want)
	}
	for s := uint64(1); s <= uint64(want); s++ {
		if serials[s] != 1 {
			t.Errorf("serial %d was written %d times; serials must increase strictly", s, serials[s])
		}
	}
}

func testKilledHolder(t *testing.T, h Harness) {
	if h.Config == nil {
		t.Fatal("the harness has no Config for the child process")
	}
	ctx, b, ws := ctxFor(t), h.New(t), "killed"
	cfg, _ := json.Marshal(h.Config)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childConfigEnv+"="+string(cfg), childTTLEnv+"="+h.TTL.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LOCKED ") {
		t.Fatalf("child did not take the lock: %q %v", line, err)
	}
	id := strings.TrimSpace(strings.TrimPrefix(line, "LOCKED "))
	// Let the child renew at least once, so the lease it leaves behind is
	// a renewed one.
	time.Sleep(h.TTL / 2)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	info, err := b.LockInfo(ctx, ws)
	if err != nil || info == nil || info.ID != id {
		t.Fatalf("right after the kill the lock should still be the child's: %+v %v", info, err)
	}
	var locked *state.LockedError
	if h.BreaksOrphanedLocks {
		l, err := b.Lock(ctx, ws, state.LockInfo{Who: "next"}, time.Minute)
		if err != nil {
			t.Fatalf("lock right after the kill: %v; the holder is gone, so its lock should be broken", err)
		}
		if l.ID == id {
			t.Fatalf("the new lock kept the dead holder's ID")
		}
		_ = b.Unlock(ctx, ws, l.ID)
		return
	}
	if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "next"}, time.Minute); !errors.As(err, &locked) {
		t.Fatalf("lock right after the kill: got %v, want *LockedError", err)
	}
	for {
		l, err := b.Lock(ctx, ws, state.LockInfo{Who: "next"}, time.Minute)
		if err == nil {
			waited := time.Since(killed)
			if waited > h.TTL+2*time.Second { // the TTL, plus scheduling slack on a loaded CI machine
				t.Errorf("the killed holder's lock was freed %v after the kill; the lease is %v", waited, h.TTL)
			}
			if l.Created.Before(info.Expires.Add(-50 * time.Millisecond)) {
				t.Errorf("lock taken at %v, before the killed holder's lease ended at %v", l.Created, info.Expires)
			}
			_ = b.Unlock(ctx, ws, l.ID)
			return
		}
		if !errors.As(err, &locked) {
			t.Fatalf("lock while waiting: %v", err)
		}
		if time.Since(killed) > 3*h.TTL+5*time.Second {
			t.Fatalf("the killed holder's lock was never freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testCorrupt(t *testing.T, h Harness) {
	ctx, b := ctxFor(t), h.New(t)
	good := state.New("test")
	good.Serial = 3
	withCounter(good, 3)
	data, err := state.Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"garbage":   []byte("this is not json"),
		"truncated": data[:len(data)/2],
		"edited":    []byte(strings.Replace(string(data), good.Lineage, state.New("").Lineage, 1)),
		"empty":     {},
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			ws := "corrupt-" + name
			h.PutRaw(t, ws, raw)
			_, err := b.Read(ctx, ws)
			var corrupt *state.CorruptError
			if !errors.As(err, &corrupt) {
				t.Fatalf("read of %s state: got %v, want *CorruptError", name, err)
			}
			if !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not say the state is corrupt", err)
			}
			// Nothing that has not read it successfully can write over it.
			if _, err := b.Write(ctx, ws, good, "", ""); err == nil {
				t.Fatal("a write replaced the corrupt state")
			}
			if _, err := b.Read(ctx, ws); !errors.As(err, &corrupt) {
				t.Fatalf("after the refused write: %v", err)
			}
		})
	}
}

func testNewerVersion(t *testing.T, h Harness) {
	ctx, b, ws := ctxFor(t), h.New(t), "newer"
	s := state.New("test")
	s.Version = state.FormatVersion + 1
	s.Checksum = ""
	raw, _ := json.Marshal(s)
	h.PutRaw(t, ws, raw)
	if _, err := b.Read(ctx, ws); !errors.Is(err, state.ErrNewerVersion) {
		t.Fatalf("read of a newer format: got %v, want ErrNewerVersion", err)
	}
}

func testWorkspaces(t *testing.T, h Harness) {
	ctx, b := ctxFor(t), h.New(t)
	for _, ws := range []string{"ws-a", "ws-b"} {
		s := state.New("test")
		s.Serial = 1
		if _, err := b.Write(ctx, ws, s, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	list, err := b.Workspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(list, "ws-a") || !slices.Contains(list, "ws-b") {
		t.Fatalf("workspaces %v lack ws-a and ws-b", list)
	}
	if err := b.DeleteWorkspace(ctx, "ws-b"); err != nil {
		t.Fatal(err)
	}
	list, err = b.Workspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(list, "ws-b") || !slices.Contains(list, "ws-a") {
		t.Fatalf("after deleting ws-b: %v", list)
	}
	if _, err := b.Read(ctx, "ws-b"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("read of a deleted workspace: %v", err)
	}
}

// BigState returns a state of n resources, each with a few attributes and
// one instance, for benchmarks.
func BigState(n int) *state.State {
	s := state.New("bench")
	for i := range n {
		s.Resources = append(s.Resources, &state.Resource{
			Address:    fmt.Sprintf("task.r%05d", i),
			ConfigHash: fmt.Sprintf("%064x", i),
			DependsOn:  []string{"fleet.pool"},
			Attributes: map[string]any{"image": "pytorch/pytorch:2.4", "gpu": "A100:80GB:8", "nodes": 2},
			Instances: []*state.Instance{{Index: 0, ProviderID: fmt.Sprintf("job-%d", i), Provider: "local", Status: "running",
				Attributes: map[string]any{"ip": "10.0.0.1", "port": 8080}}},
		})
	}
	return s
}
