package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Lease is a held lock that renews itself until released.
type Lease struct {
	Info LockInfo
	// TTL is the lease's length: what the caller asked for, else the
	// backend's own (its lock_ttl setting), else DefaultLeaseTTL.
	TTL       time.Duration
	backend   Backend
	workspace string
	lost      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	err       error
	// renewed is when the request that last took or renewed the lease
	// was sent (not when it was answered): the lease is the holder's
	// until renewed+TTL at the earliest, by any clock that runs no
	// faster than the backend's.
	renewed time.Time
}

// Margin is how long before its lease runs out, by its own clock, a
// holder stops starting work: a quarter of the TTL, at least a second.
// It absorbs a backend clock that runs a little fast and the moments
// between a check and the call it allows.
func (l *Lease) Margin() time.Duration { return max(l.TTL/4, time.Second) }

// HoldOptions say how to take a lock.
type HoldOptions struct {
	// TTL is the lease length; DefaultLeaseTTL when zero.
	TTL time.Duration
	// Timeout is how long to wait for a lock someone else holds (the
	// -lock-timeout flag); zero fails at once.
	Timeout time.Duration
}

// Hold takes the workspace's lock, waiting with backoff up to opts.Timeout
// while someone else holds it, and renews the lease every third of its TTL
// in the background until Release. If renewal fails (the lease expired
// and was taken over, or the backend is unreachable past the lease), Lost
// is closed: the holder must stop writing. Its writes would fail anyway,
// since every write is a compare-and-swap.
func Hold(ctx context.Context, b Backend, workspace string, info LockInfo, opts HoldOptions) (*Lease, error) {
	// A TTL of zero lets the backend use its own (lock_ttl); the lock it
	// returns says which it was.
	var got *LockInfo
	var sent time.Time
	try := func() error {
		sent = time.Now()
		var err error
		got, err = b.Lock(ctx, workspace, info, opts.TTL)
		return err
	}
	if err := retryLocked(ctx, opts.Timeout, try); err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = got.Expires.Sub(got.Created)
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lease{Info: *got, TTL: ttl, backend: b, workspace: workspace, lost: make(chan struct{}), stop: stop,
		done: make(chan struct{}), renewed: sent}
	go l.renew(rctx, ttl)
	return l, nil
}

// retryLocked calls try until it succeeds, fails with anything but a
// *LockedError, or timeout has passed: with backoff from 100 ms to 5 s,
// the last try made at the deadline itself, so a -lock-timeout of 10s
// waits the full ten seconds.
func retryLocked(ctx context.Context, timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	for {
		err := try()
		var locked *LockedError
		left := time.Until(deadline)
		if err == nil || !errors.As(err, &locked) || left <= 0 {
			return err
		}
		t := time.NewTimer(min(bo.NextBackOff(), left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// renew extends the lease every ttl/3. A failed renewal is retried until
// the lease would have run out; then the lease is lost.
func (l *Lease) renew(ctx context.Context, ttl time.Duration) {
	defer close(l.done)
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	deadline := l.Info.Expires
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A renewal that hangs must not outlive the lease it is renewing.
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		sent := time.Now()
		err := l.backend.Renew(rctx, l.workspace, l.Info.ID, ttl)
		cancel()
		if err == nil {
			deadline = time.Now().Add(ttl)
			l.mu.Lock()
			l.renewed = sent
			l.mu.Unlock()
			continue
		}
		var lostErr *LockLostError
		if errors.As(err, &lostErr) || time.Now().After(deadline) {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			close(l.lost)
			return
		}
	}
}

// Valid says whether the holder may still start work: nil while the
// lease is its own by its own clock (the last renewal's request was sent
// less than TTL minus Margin ago), else a *LeaseLapsedError. The
// elapsed time is read twice: on the monotonic clock, which a stalled
// process (SIGSTOP, a long pause) does not stop, and on the wall clock,
// which also counts a machine's sleep that the monotonic clock skips on
// Linux; the larger counts.
func (l *Lease) Valid() error {
	l.mu.Lock()
	renewed, err := l.renewed, l.err
	l.mu.Unlock()
	if err != nil {
		return &LeaseLapsedError{ID: l.Info.ID, Cause: err}
	}
	now := time.Now()
	elapsed := max(now.Sub(renewed), now.Round(0).Sub(renewed.Round(0)))
	if elapsed >= l.TTL-l.Margin() {
		return &LeaseLapsedError{ID: l.Info.ID, Since: renewed.Add(l.TTL - l.Margin())}
	}
	return nil
}

// Until is the wall-clock time until which the lease is the holder's by
// Valid's rule, as of now.
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	renewed := l.renewed
	l.mu.Unlock()
	now := time.Now()
	elapsed := max(now.Sub(renewed), now.Round(0).Sub(renewed.Round(0)))
	return now.Round(0).Add(l.TTL - l.Margin() - elapsed)
}

// LeaseLapsedError says a holder's lease is no longer its own by its own
// clock (it was not renewed in time), or was lost.
type LeaseLapsedError struct {
	ID string
	// Since is when it lapsed, by the holder's clock (zero when lost).
	Since time.Time
	// Cause is why the lease was lost, when it was.
	Cause error
}

func (e *LeaseLapsedError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("the lease of state lock %s was lost: %v", e.ID, e.Cause)
	}
	return fmt.Sprintf("the lease of state lock %s lapsed at %s without a renewal (the process stalled, or the backend did not answer)",
		e.ID, e.Since.UTC().Format(time.RFC3339))
}

func (e *LeaseLapsedError) Unwrap() error { return e.Cause }

// Lost is closed when the lease could not be kept.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err says why the lease was lost, or nil.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release stops renewing and unlocks.
func (l *Lease) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	if err := l.backend.Unlock(ctx, l.workspace, l.Info.ID); err != nil {
		return fmt.Errorf("releasing state lock: %w", err)
	}
	return nil
}
