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
	Info      LockInfo
	backend   Backend
	workspace string
	lost      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	err       error
}

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
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	var got *LockInfo
	op := func() (*LockInfo, error) {
		l, err := b.Lock(ctx, workspace, info, ttl)
		var locked *LockedError
		if err != nil && !errors.As(err, &locked) {
			return nil, backoff.Permanent(err)
		}
		return l, err
	}
	var err error
	if opts.Timeout <= 0 {
		got, err = b.Lock(ctx, workspace, info, ttl)
	} else {
		bo := backoff.NewExponentialBackOff()
		bo.InitialInterval = 100 * time.Millisecond
		bo.MaxInterval = 5 * time.Second
		got, err = backoff.Retry(ctx, op, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(opts.Timeout))
	}
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lease{Info: *got, backend: b, workspace: workspace, lost: make(chan struct{}), stop: stop, done: make(chan struct{})}
	go l.renew(rctx, ttl)
	return l, nil
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
		err := l.backend.Renew(rctx, l.workspace, l.Info.ID, ttl)
		cancel()
		if err == nil {
			deadline = time.Now().Add(ttl)
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
