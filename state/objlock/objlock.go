// Package objlock is the lease lock of the object-store backends (s3,
// gcs): a state's lock is one object holding a JSON state.LockInfo, and
// every change to it is a conditional write on the revision last read, so
// of clients racing for it exactly one wins.
//
//   - Lock creates the object only if it does not exist. If it does, it
//     reads it: a live lock of another ID is a *state.LockedError; an
//     expired one, or one with the caller's own ID (a create the client
//     retried after its first attempt landed but its answer was lost), is
//     taken over by replacing the revision read.
//   - Renew rewrites Expires, and Unlock and ForceUnlock delete, each only
//     if the object is still the revision read.
//
// A conditional write that loses a race reads again and decides afresh, at
// most maxRaces times: each lost race means another client made progress.
//
// A backend implements Store on its object API (ETags, generations) and
// calls the methods of an Object from its state.Backend methods; the
// semantics are those documented on state.Backend.
package objlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// maxRaces bounds how often a lock operation starts over after losing a
// race (the lock object changed between its read and its conditional
// write or delete).
const maxRaces = 10

// ErrPrecondition is what a Store's conditional change wraps when it
// failed because the object is not as required: Create found it existing,
// Replace or Delete found it at another revision or gone.
var ErrPrecondition = errors.New("the lock object changed")

// Store is one lock object in a store with conditional writes. A token
// names one revision of the object (an ETag, a generation); Store
// implementations are safe for concurrent use.
type Store interface {
	// Get returns the object's bytes and the token of that revision; ok
	// is false when there is no object.
	Get(ctx context.Context) (data []byte, token string, ok bool, err error)
	// Create writes data only if there is no object; when there is, it
	// returns an error wrapping ErrPrecondition.
	Create(ctx context.Context, data []byte) error
	// Replace writes data only if the object is still at token; otherwise
	// it returns an error wrapping ErrPrecondition.
	Replace(ctx context.Context, data []byte, token string) error
	// Delete removes the object only if it is still at token; otherwise
	// it returns an error wrapping ErrPrecondition.
	Delete(ctx context.Context, token string) error
}

// Object is the lock of one workspace, kept in Store.
type Object struct {
	Store Store
	// Where names the lock object in messages, such as
	// "s3://bucket/state.json.lock".
	Where string
	// Workspace names the workspace in ForceUnlock's messages.
	Workspace string
	// TTL is the lease Lock and Renew use when given none (state.PrepareLock's default when zero).
	TTL time.Duration
	// Now is the clock leases are judged by; time.Now when nil.
	Now func() time.Time
}

func (o *Object) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *Object) ttl(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = o.TTL
	}
	if ttl <= 0 {
		ttl = state.DefaultLeaseTTL
	}
	return ttl
}

// Lock implements state.Backend's Lock. info.ID is kept when set, as
// state.PrepareLock does; Path is stored as given.
func (o *Object) Lock(ctx context.Context, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	ttl = o.ttl(ttl)
	for range maxRaces {
		l := state.PrepareLock(info, o.now(), ttl)
		info.ID = l.ID // keep one ID across retries
		err := o.create(ctx, &l)
		if err == nil {
			return &l, nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return nil, fmt.Errorf("taking lock %s: %w", o.Where, err)
		}
		cur, token, err := o.read(ctx)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			continue // released between our create and the read: try again
		}
		// The lock is ours when the client retried a create whose first
		// attempt landed but whose answer was lost: the ID is random and
		// fixed across rounds, so nobody else has it.
		if cur.ID != l.ID && cur.Live(o.now()) {
			return nil, &state.LockedError{Holder: *cur}
		}
		// The lease ran out (or the lock is ours): take the lock over,
		// unless someone else changes the lock object first.
		l = state.PrepareLock(info, o.now(), ttl)
		err = o.replace(ctx, &l, token)
		if err == nil {
			return &l, nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return nil, fmt.Errorf("taking over expired lock %s: %w", o.Where, err)
		}
		// Lost the race: the next round reports the winner.
	}
	return nil, fmt.Errorf("taking lock %s: it changed %d times while trying; try again", o.Where, maxRaces)
}

// Renew implements state.Backend's Renew.
func (o *Object) Renew(ctx context.Context, id string, ttl time.Duration) error {
	ttl = o.ttl(ttl)
	for range maxRaces {
		cur, token, err := o.read(ctx)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != id {
			return &state.LockLostError{ID: id, Holder: cur}
		}
		cur.Expires = o.now().UTC().Truncate(time.Millisecond).Add(ttl)
		err = o.replace(ctx, cur, token)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return fmt.Errorf("renewing lock %s: %w", o.Where, err)
		}
		// The lock object changed since the read; the next round says how.
	}
	return fmt.Errorf("renewing lock %s: it changed %d times while trying; try again", o.Where, maxRaces)
}

// Unlock implements state.Backend's Unlock.
func (o *Object) Unlock(ctx context.Context, id string) error {
	return o.release(ctx, id, "releasing", func(cur *state.LockInfo) error {
		if cur == nil {
			return nil
		}
		return &state.LockLostError{ID: id, Holder: cur}
	})
}

// ForceUnlock implements state.Backend's ForceUnlock.
func (o *Object) ForceUnlock(ctx context.Context, id string) error {
	return o.release(ctx, id, "breaking", func(cur *state.LockInfo) error {
		if cur == nil {
			return fmt.Errorf("breaking lock %s of workspace %q: %w", id, o.Workspace, state.ErrNotLocked)
		}
		return fmt.Errorf("breaking lock %s of workspace %q: %w; it is %s, and nothing was unlocked", id, o.Workspace, state.ErrNotLocked, cur)
	})
}

// release deletes the lock with ID id. When the stored lock is not id's,
// it returns what other says of the lock there (nil: none).
func (o *Object) release(ctx context.Context, id, verb string, other func(cur *state.LockInfo) error) error {
	for range maxRaces {
		cur, token, err := o.read(ctx)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != id {
			return other(cur)
		}
		// Conditional, so that a lock taken over since the read survives.
		err = o.Store.Delete(ctx, token)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return fmt.Errorf("%s lock %s: %w", verb, o.Where, err)
		}
	}
	return fmt.Errorf("%s lock %s: it changed %d times while trying; try again", verb, o.Where, maxRaces)
}

// CheckWrite is the check a backend's Write makes of the lock before
// writing under lockID: a live lock of another holder is a
// *state.LockLostError. No lock, or a lapsed one, lets the write (a
// compare-and-swap whatever the lock says) go ahead.
func (o *Object) CheckWrite(ctx context.Context, lockID string) error {
	cur, err := o.Info(ctx)
	if err != nil {
		return err
	}
	if cur != nil && cur.ID != lockID && cur.Live(o.now()) {
		return &state.LockLostError{ID: lockID, Holder: cur}
	}
	return nil
}

// Info implements state.Backend's LockInfo: the stored lock, live or
// expired, or nil when there is none.
func (o *Object) Info(ctx context.Context) (*state.LockInfo, error) {
	l, _, err := o.read(ctx)
	return l, err
}

// read returns the stored lock and the token of its revision, or nil when
// there is none.
func (o *Object) read(ctx context.Context) (*state.LockInfo, string, error) {
	data, token, ok, err := o.Store.Get(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("reading lock %s: %w", o.Where, err)
	}
	if !ok {
		return nil, "", nil
	}
	var l state.LockInfo
	if err := json.Unmarshal(data, &l); err != nil || l.ID == "" {
		if err == nil {
			err = errors.New("it has no id")
		}
		return nil, "", fmt.Errorf("lock object %s is damaged (%v); delete it if no run holds the lock", o.Where, err)
	}
	return &l, token, nil
}

// create stores l if there is no lock object.
func (o *Object) create(ctx context.Context, l *state.LockInfo) error {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding lock: %w", err)
	}
	return o.Store.Create(ctx, data)
}

// replace stores l if the lock object is still at the revision token.
func (o *Object) replace(ctx context.Context, l *state.LockInfo, token string) error {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding lock: %w", err)
	}
	return o.Store.Replace(ctx, data, token)
}
