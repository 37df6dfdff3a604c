package objlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// memStore is a Store in memory. Its hook runs at the start of every
// operation ("get", "create", "replace", "delete"), with the store
// unlocked, so that a test can change the object as another client would
// between two requests.
type memStore struct {
	mu   sync.Mutex
	data []byte
	rev  int // the object's revision; 0: there is none
	last int // the last revision handed out
	hook func(op string)
	// lostAnswer makes Create store the object and then report a lost
	// race, as a client's retry of a create whose answer was lost does.
	lostAnswer bool
	// err, when set, is what every operation returns.
	err error
}

var _ Store = (*memStore)(nil)

func (s *memStore) begin(op string) error {
	if s.hook != nil {
		s.hook(op)
	}
	s.mu.Lock()
	return s.err
}

// set stores data unconditionally (nil: deletes), as another client would.
func (s *memStore) set(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = data
	if data == nil {
		s.rev = 0
		return
	}
	s.last++
	s.rev = s.last
}

func (s *memStore) setLock(l state.LockInfo) {
	data, _ := json.Marshal(l)
	s.set(data)
}

// stored returns the lock stored, or nil.
func (s *memStore) stored(t *testing.T) *state.LockInfo {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev == 0 {
		return nil
	}
	var l state.LockInfo
	if err := json.Unmarshal(s.data, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

func (s *memStore) Get(ctx context.Context) ([]byte, string, bool, error) {
	err := s.begin("get")
	defer s.mu.Unlock()
	if err != nil || s.rev == 0 {
		return nil, "", false, err
	}
	return s.data, strconv.Itoa(s.rev), true, nil
}

func (s *memStore) Create(ctx context.Context, data []byte) error {
	err := s.begin("create")
	defer s.mu.Unlock()
	if err != nil {
		return err
	}
	if s.rev != 0 {
		return fmt.Errorf("%w: exists", ErrPrecondition)
	}
	s.data = data
	s.last++
	s.rev = s.last
	if s.lostAnswer {
		return fmt.Errorf("%w: exists (the retry)", ErrPrecondition)
	}
	return nil
}

func (s *memStore) Replace(ctx context.Context, data []byte, token string) error {
	err := s.begin("replace")
	defer s.mu.Unlock()
	if err != nil {
		return err
	}
	if s.rev == 0 || strconv.Itoa(s.rev) != token {
		return fmt.Errorf("%w: at revision %d, not %s", ErrPrecondition, s.rev, token)
	}
	s.data = data
	s.last++
	s.rev = s.last
	return nil
}

func (s *memStore) Delete(ctx context.Context, token string) error {
	err := s.begin("delete")
	defer s.mu.Unlock()
	if err != nil {
		return err
	}
	if s.rev == 0 || strconv.Itoa(s.rev) != token {
		return fmt.Errorf("%w: at revision %d, not %s", ErrPrecondition, s.rev, token)
	}
	s.data, s.rev = nil, 0
	return nil
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const where = "mem://bucket/state.lock"

func newObject() (*Object, *memStore, *clock) {
	st := &memStore{}
	c := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &Object{Store: st, Where: where, Workspace: "ws", TTL: time.Minute, Now: c.now}, st, c
}

// once returns a hook that runs f the first time op comes.
func once(op string, f func()) func(string) {
	var done bool
	return func(o string) {
		if o == op && !done {
			done = true
			f()
		}
	}
}

func TestLockUnlock(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	l, err := o.Lock(ctx, state.LockInfo{Operation: "apply", Who: "alice", Path: "mem://bucket/state"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID == "" || !l.Created.Equal(c.now()) || l.Expires.Sub(l.Created) != time.Minute || l.Path != "mem://bucket/state" {
		t.Fatalf("lock %+v, want an ID, created now, the default TTL and the path", l)
	}
	if got := st.stored(t); *got != *l {
		t.Fatalf("stored %+v, returned %+v", got, l)
	}
	if got, err := o.Info(ctx); err != nil || *got != *l {
		t.Fatalf("Info: %+v %v, want %+v", got, err, l)
	}

	_, err = o.Lock(ctx, state.LockInfo{Who: "bob"}, time.Minute)
	var locked *state.LockedError
	if !errors.As(err, &locked) || locked.Holder != *l {
		t.Fatalf("second lock: %v, want *LockedError naming %+v", err, l)
	}

	var lost *state.LockLostError
	if err := o.Renew(ctx, "other", time.Minute); !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.ID != l.ID {
		t.Fatalf("renew with another ID: %v, want *LockLostError naming the holder", err)
	}
	c.advance(30 * time.Second)
	if err := o.Renew(ctx, l.ID, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := st.stored(t); !got.Expires.Equal(c.now().Add(2*time.Minute)) || !got.Created.Equal(l.Created) {
		t.Fatalf("after renew: %+v, want created %v and expiring 2m from now", got, l.Created)
	}
	if err := o.Unlock(ctx, "other"); !errors.As(err, &lost) || st.stored(t) == nil {
		t.Fatalf("unlock with another ID: %v, want *LockLostError and the lock kept", err)
	}
	if err := o.Unlock(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := o.Info(ctx); err != nil || got != nil {
		t.Fatalf("after unlock: %+v %v", got, err)
	}
	// Releasing a lock that is not held is not an error; renewing it is.
	if err := o.Unlock(ctx, l.ID); err != nil {
		t.Fatalf("second unlock: %v", err)
	}
	if err := o.Renew(ctx, l.ID, time.Minute); !errors.As(err, &lost) || lost.Holder != nil {
		t.Fatalf("renew of a released lock: %v, want *LockLostError without a holder", err)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	a, err := o.Lock(ctx, state.LockInfo{Who: "a"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A lease that ran out but that nobody took over is still renewed.
	c.advance(2 * time.Second)
	if err := o.Renew(ctx, a.ID, time.Second); err != nil {
		t.Fatalf("renew of a lapsed lease nobody took: %v", err)
	}
	var locked *state.LockedError
	if _, err := o.Lock(ctx, state.LockInfo{Who: "b"}, time.Minute); !errors.As(err, &locked) {
		t.Fatalf("lock of a renewed lease: %v, want *LockedError", err)
	}
	c.advance(2 * time.Second)
	// An expired lock is still reported, and taken over.
	if got, err := o.Info(ctx); err != nil || got.ID != a.ID || got.Live(c.now()) {
		t.Fatalf("Info of an expired lock: %+v %v", got, err)
	}
	b, err := o.Lock(ctx, state.LockInfo{Who: "b"}, time.Minute)
	if err != nil {
		t.Fatalf("lock after expiry: %v", err)
	}
	if b.ID == a.ID || b.Who != "b" || !b.Created.Equal(c.now()) || st.stored(t).ID != b.ID {
		t.Fatalf("takeover: %+v, stored %+v", b, st.stored(t))
	}
	var lost *state.LockLostError
	if err := o.Renew(ctx, a.ID, time.Second); !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.ID != b.ID {
		t.Fatalf("renew of a lock taken over: %v, want *LockLostError naming the new holder", err)
	}
	if err := o.Unlock(ctx, a.ID); !errors.As(err, &lost) {
		t.Fatalf("unlock of a lock taken over: %v, want *LockLostError", err)
	}
	if st.stored(t).ID != b.ID {
		t.Fatal("the old holder's unlock removed the new lock")
	}
}

// TestLockOwnRetriedCreate: a create whose first attempt landed, retried
// by the client and refused, leaves the caller holding the lock.
func TestLockOwnRetriedCreate(t *testing.T) {
	ctx := context.Background()
	o, st, _ := newObject()
	st.lostAnswer = true
	l, err := o.Lock(ctx, state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatalf("lock whose create's answer was lost: %v", err)
	}
	if got := st.stored(t); got.ID != l.ID || !got.Expires.Equal(l.Expires) {
		t.Fatalf("returned %+v, stored %+v", l, got)
	}
}

// TestLockAgainWithOwnID: naming the ID of the live lock stored takes it
// again, with the new lease.
func TestLockAgainWithOwnID(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	first, err := o.Lock(ctx, state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second)
	again, err := o.Lock(ctx, state.LockInfo{ID: first.ID, Who: "me"}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !again.Expires.After(first.Expires) || *st.stored(t) != *again {
		t.Fatalf("lock again: %+v, stored %+v; first %+v", again, st.stored(t), first)
	}
}

// TestTakeoverLostRace: of two clients taking over an expired lock, the
// one whose conditional replace loses reports the winner.
func TestTakeoverLostRace(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	st.setLock(state.LockInfo{ID: "crashed", Expires: c.now().Add(-time.Second)})
	winner := state.LockInfo{ID: "winner", Who: "w", Created: c.now(), Expires: c.now().Add(time.Minute)}
	st.hook = once("replace", func() { st.setLock(winner) })
	_, err := o.Lock(ctx, state.LockInfo{Who: "loser"}, time.Minute)
	var locked *state.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != "winner" {
		t.Fatalf("losing takeover: %v, want *LockedError naming the winner", err)
	}
	if st.stored(t).ID != "winner" {
		t.Fatalf("stored %+v, want the winner's lock", st.stored(t))
	}
}

// TestLockReleasedBetween: a lock released between the refused create and
// the read is taken on the next round.
func TestLockReleasedBetween(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	st.setLock(state.LockInfo{ID: "holder", Expires: c.now().Add(time.Minute)})
	st.hook = once("get", func() { st.set(nil) })
	l, err := o.Lock(ctx, state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.stored(t).ID != l.ID {
		t.Fatalf("stored %+v, want %+v", st.stored(t), l)
	}
}

// TestRetries: a conditional change that loses a race to a change that
// keeps the caller's lock is retried and succeeds.
func TestRetries(t *testing.T) {
	ctx := context.Background()
	for _, op := range []string{"replace", "delete"} {
		t.Run(op, func(t *testing.T) {
			o, st, _ := newObject()
			l, err := o.Lock(ctx, state.LockInfo{Who: "me"}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var hits int
			st.hook = func(o string) {
				if o == op && hits < maxRaces-1 {
					hits++
					st.setLock(*l) // the same lock, a new revision
				}
			}
			if op == "replace" {
				err = o.Renew(ctx, l.ID, time.Hour)
				if got := st.stored(t); err == nil && got.Expires.Sub(got.Created) != time.Hour {
					t.Errorf("after renew: %+v", got)
				}
			} else {
				err = o.Unlock(ctx, l.ID)
				if st.stored(t) != nil {
					t.Error("unlock left the lock")
				}
			}
			if err != nil || hits != maxRaces-1 {
				t.Fatalf("%s after %d lost races: %v", op, hits, err)
			}
		})
	}
}

// TestGivesUp: an operation that loses every race stops after maxRaces,
// saying so.
func TestGivesUp(t *testing.T) {
	ctx := context.Background()
	ops := map[string]func(o *Object, id string) error{
		"taking lock": func(o *Object, _ string) error {
			_, err := o.Lock(ctx, state.LockInfo{Who: "me"}, time.Minute)
			return err
		},
		"renewing lock":  func(o *Object, id string) error { return o.Renew(ctx, id, time.Minute) },
		"releasing lock": func(o *Object, id string) error { return o.Unlock(ctx, id) },
		"breaking lock":  func(o *Object, id string) error { return o.ForceUnlock(ctx, id) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			o, st, c := newObject()
			// An expired lock, so that Lock tries to take it over.
			held := state.LockInfo{ID: "held", Expires: c.now().Add(-time.Second)}
			st.setLock(held)
			var races int
			st.hook = func(op string) {
				if op == "replace" || op == "delete" {
					races++
					st.setLock(held)
				}
			}
			err := op(o, held.ID)
			want := fmt.Sprintf("%s %s: it changed %d times while trying; try again", name, where, maxRaces)
			if err == nil || err.Error() != want || races != maxRaces {
				t.Fatalf("after %d lost races: %v, want %q", races, err, want)
			}
		})
	}
}

func TestForceUnlock(t *testing.T) {
	ctx := context.Background()
	o, st, c := newObject()
	if err := o.ForceUnlock(ctx, "x"); !errors.Is(err, state.ErrNotLocked) || !strings.Contains(err.Error(), `workspace "ws"`) {
		t.Fatalf("force-unlock of no lock: %v, want ErrNotLocked naming the workspace", err)
	}
	l, err := o.Lock(ctx, state.LockInfo{Who: "alice"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	err = o.ForceUnlock(ctx, "x")
	if !errors.Is(err, state.ErrNotLocked) || !strings.Contains(err.Error(), l.ID) || !strings.Contains(err.Error(), "nothing was unlocked") {
		t.Fatalf("force-unlock with another ID: %v, want ErrNotLocked naming the lock held", err)
	}
	if st.stored(t) == nil {
		t.Fatal("force-unlock with another ID removed the lock")
	}
	// A lock taken over between the read and the delete survives.
	c.advance(2 * time.Minute)
	st.hook = once("delete", func() { st.setLock(state.LockInfo{ID: "next", Expires: c.now().Add(time.Minute)}) })
	if err := o.ForceUnlock(ctx, l.ID); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("force-unlock of a lock taken over meanwhile: %v, want ErrNotLocked", err)
	}
	if got := st.stored(t); got == nil || got.ID != "next" {
		t.Fatalf("stored %+v, want the new lock", got)
	}
	st.hook = nil
	if err := o.ForceUnlock(ctx, "next"); err != nil {
		t.Fatal(err)
	}
	if st.stored(t) != nil {
		t.Fatal("force-unlock left the lock")
	}
}

func TestDamaged(t *testing.T) {
	ctx := context.Background()
	for name, data := range map[string]string{"garbage": "not json", "no id": `{"who":"me"}`} {
		t.Run(name, func(t *testing.T) {
			o, st, _ := newObject()
			st.set([]byte(data))
			for op, err := range map[string]error{
				"Info":   func() error { _, err := o.Info(ctx); return err }(),
				"Lock":   func() error { _, err := o.Lock(ctx, state.LockInfo{}, 0); return err }(),
				"Renew":  o.Renew(ctx, "x", 0),
				"Unlock": o.Unlock(ctx, "x"),
			} {
				if err == nil || !strings.Contains(err.Error(), "lock object "+where+" is damaged") {
					t.Errorf("%s of a damaged lock: %v", op, err)
				}
			}
		})
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	o, st, _ := newObject()
	st.err = boom
	if _, err := o.Info(ctx); !errors.Is(err, boom) || err.Error() != "reading lock "+where+": boom" {
		t.Errorf("Info: %v", err)
	}
	if _, err := o.Lock(ctx, state.LockInfo{}, 0); !errors.Is(err, boom) || err.Error() != "taking lock "+where+": boom" {
		t.Errorf("Lock: %v", err)
	}

	// A failing conditional change (not a lost race) is not retried.
	for op, want := range map[string]string{"replace": "renewing lock", "delete": "releasing lock"} {
		o, st, _ := newObject()
		l, err := o.Lock(ctx, state.LockInfo{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var calls int
		st.hook = func(o string) {
			if o == op {
				calls++
				st.mu.Lock()
				st.err = boom
				st.mu.Unlock()
			}
		}
		if op == "replace" {
			err = o.Renew(ctx, l.ID, 0)
		} else {
			err = o.Unlock(ctx, l.ID)
		}
		if !errors.Is(err, boom) || err.Error() != want+" "+where+": boom" || calls != 1 {
			t.Errorf("%s failing: %v after %d calls", op, err, calls)
		}
	}
}

func TestCheckWrite(t *testing.T) {
	ctx := context.Background()
	o, _, c := newObject()
	if err := o.CheckWrite(ctx, "me"); err != nil {
		t.Fatalf("no lock: %v", err)
	}
	l, err := o.Lock(ctx, state.LockInfo{Who: "holder"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.CheckWrite(ctx, l.ID); err != nil {
		t.Fatalf("the holder: %v", err)
	}
	var lost *state.LockLostError
	if err := o.CheckWrite(ctx, "me"); !errors.As(err, &lost) || lost.ID != "me" || lost.Holder == nil || lost.Holder.ID != l.ID {
		t.Fatalf("under another's live lock: %v, want *LockLostError naming the holder", err)
	}
	c.advance(2 * time.Minute)
	if err := o.CheckWrite(ctx, "me"); err != nil {
		t.Fatalf("under another's lapsed lock: %v", err)
	}
}
