package azurerm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/google/uuid"

	"github.com/dstackai/dstack-go/state"
)

const (
	// maxAttempts bounds the read, decide, conditional-change rounds of one
	// lock operation. A round is lost only when another client changed the
	// lock blob in between, so a few suffice; with the backoff in pause, 50
	// rounds also outlast a 15-second fence lease.
	maxAttempts = 50
	// fenceSeconds is the Azure blob lease a write takes on the lock blob:
	// the shortest Azure allows, since it only spans one upload.
	fenceSeconds = 15
)

// fenceNamespace makes fence lease IDs from lock IDs (UUID version 5).
var fenceNamespace = uuid.MustParse("4a8b9163-73f4-4b2f-b865-1aac8b23dee6")

// fenceLeaseID is the Azure blob lease ID a holder of lockID writes
// under. Azure wants a GUID; deriving it from the lock ID lets every
// client of that holder (its Renew, its Unlock) pass it without storing it.
func fenceLeaseID(lockID string) string {
	return uuid.NewSHA1(fenceNamespace, []byte(lockID)).String()
}

// pause waits before another round: 10ms doubling to 500ms, with jitter
// so that racing clients spread out.
func pause(ctx context.Context, attempt int) error {
	d := min(10*time.Millisecond<<min(attempt, 6), 500*time.Millisecond)
	d += rand.N(d / 2)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readLock returns the workspace's lock and its blob's ETag, or nil.
func (b *Backend) readLock(ctx context.Context, workspace string) (*state.LockInfo, azcore.ETag, error) {
	name := b.LockBlobName(workspace)
	data, etag, err := b.download(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var l state.LockInfo
	if err := json.Unmarshal(data, &l); err != nil || l.ID == "" {
		if err == nil {
			err = errors.New("it has no lock ID")
		}
		return nil, "", fmt.Errorf("azurerm: lock blob %s is damaged (%v); if no run holds the lock, delete that blob", b.where(name), err)
	}
	return &l, etag, nil
}

// putLock stores l if the lock blob's ETag is still match ("": if there is
// no lock blob), under the Azure blob lease leaseID when not "".
func (b *Backend) putLock(ctx context.Context, workspace string, l *state.LockInfo, match azcore.ETag, leaseID string) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	_, err = b.upload(ctx, b.LockBlobName(workspace), append(data, '\n'), match, leaseID)
	return err
}

// asHolder runs a change of the lock blob by the holder of lock id: first
// without a lease ID, then, if the blob is under a fence lease, under the
// holder's own (its write in flight, or one whose release failed). Under
// another holder's fence it fails as busy.
func asHolder(id string, change func(leaseID string) error) error {
	err := change("")
	if bloberror.HasCode(err, bloberror.LeaseIDMissing) {
		err = change(fenceLeaseID(id))
	}
	return err
}

// busyOrGone reports a conditional change that failed on an Azure blob
// lease, held by someone else or ended between two requests: worth another
// round after a pause.
func busyOrGone(err error) bool {
	return busy(err) || bloberror.HasCode(err, bloberror.LeaseNotPresentWithBlobOperation)
}

// breakLease ends any Azure blob lease on name at once, if the blob's ETag
// is still match ("": whatever it is).
func (b *Backend) breakLease(ctx context.Context, name string, match azcore.ETag) error {
	lc, err := lease.NewBlobClient(b.client.NewBlobClient(name), nil)
	if err != nil {
		return err
	}
	opts := &lease.BlobBreakOptions{BreakPeriod: to(int32(0))}
	if match != "" {
		opts.ModifiedAccessConditions = &blob.ModifiedAccessConditions{IfMatch: to(match)}
	}
	_, err = lc.BreakLease(ctx, opts)
	if err != nil && !bloberror.HasCode(err, bloberror.LeaseNotPresentWithLeaseOperation, bloberror.BlobNotFound, bloberror.ConditionNotMet) {
		return wrap("breaking the lease on "+b.where(name), err)
	}
	return nil
}

// Lock implements state.Backend. It creates the lock blob if there is
// none, and takes over an expired lock with If-Match on the ETag it read.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = b.cfg.LockTTL
	}
	if info.ID == "" {
		info.ID = state.NewLockID()
	}
	if info.Path == "" {
		info.Path = b.where(b.BlobName(workspace))
	}
	where := b.where(b.LockBlobName(workspace))
	for attempt := range maxAttempts {
		l := state.PrepareLock(info, b.now(), ttl)
		err := b.putLock(ctx, workspace, &l, "", "")
		if err == nil {
			return &l, nil
		}
		if !changed(err) && !busy(err) {
			return nil, wrap("locking "+where, err)
		}
		cur, etag, err := b.readLock(ctx, workspace)
		switch {
		case err != nil:
			return nil, err
		case cur == nil:
			continue // released in between
		case cur.ID == info.ID:
			// Our own create, which the SDK retried after losing the
			// response to the first try.
			return cur, nil
		case cur.Live(b.now()):
			return nil, &state.LockedError{Holder: *cur}
		}
		l = state.PrepareLock(info, b.now(), ttl)
		err = b.putLock(ctx, workspace, &l, etag, "")
		switch {
		case err == nil:
			return &l, nil
		case changed(err):
			// Taken over, renewed or released by someone else: look again.
			if err := pause(ctx, attempt); err != nil {
				return nil, err
			}
		case busyOrGone(err):
			// Its holder is writing under the expired lock right now (a
			// fence lease); the lock is free once that write is done.
			return nil, &state.LockedError{Holder: *cur}
		default:
			return nil, wrap("taking over the expired lock "+where, err)
		}
	}
	return nil, fmt.Errorf("azurerm: locking %s: it kept changing under %d attempts", where, maxAttempts)
}

// Renew implements state.Backend.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = b.cfg.LockTTL
	}
	where := b.where(b.LockBlobName(workspace))
	for attempt := range maxAttempts {
		cur, etag, err := b.readLock(ctx, workspace)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != id {
			return &state.LockLostError{ID: id, Holder: cur}
		}
		next := *cur
		next.Expires = b.now().UTC().Truncate(time.Millisecond).Add(ttl)
		err = asHolder(id, func(leaseID string) error { return b.putLock(ctx, workspace, &next, etag, leaseID) })
		switch {
		case err == nil:
			return nil
		case changed(err), busyOrGone(err):
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		default:
			return wrap("renewing "+where, err)
		}
	}
	return fmt.Errorf("azurerm: renewing %s: it kept changing under %d attempts", where, maxAttempts)
}

// Unlock implements state.Backend.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	name := b.LockBlobName(workspace)
	for attempt := range maxAttempts {
		cur, etag, err := b.readLock(ctx, workspace)
		if err != nil || cur == nil {
			return err
		}
		if cur.ID != id {
			return &state.LockLostError{ID: id, Holder: cur}
		}
		err = asHolder(id, func(leaseID string) error { return b.deleteBlob(ctx, name, etag, leaseID) })
		switch {
		case err == nil:
			return nil
		case changed(err), busyOrGone(err):
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		default:
			return wrap("unlocking "+b.where(name), err)
		}
	}
	return fmt.Errorf("azurerm: unlocking %s: it kept changing under %d attempts", b.where(name), maxAttempts)
}

// ForceUnlock implements state.Backend. It breaks a fence lease on the
// lock blob if there is one: a write in flight under the broken lock can
// still land, but only as the compare-and-swap it always is.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	name := b.LockBlobName(workspace)
	for attempt := range maxAttempts {
		cur, etag, err := b.readLock(ctx, workspace)
		if err != nil {
			return err
		}
		if cur == nil {
			return state.ErrNotLocked
		}
		if cur.ID != id {
			return fmt.Errorf("azurerm: the lock of workspace %q is %s, not %s; nothing was unlocked: %w", workspace, cur.ID, id, state.ErrNotLocked)
		}
		err = b.deleteBlob(ctx, name, etag, "")
		switch {
		case err == nil:
			return nil
		case changed(err):
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		case busyOrGone(err):
			if err := b.breakLease(ctx, name, etag); err != nil {
				return err
			}
		default:
			return wrap("force-unlocking "+b.where(name), err)
		}
	}
	return fmt.Errorf("azurerm: force-unlocking %s: it kept changing under %d attempts", b.where(name), maxAttempts)
}

// LockInfo implements state.Backend. It returns the stored lock, live or
// expired.
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	l, _, err := b.readLock(ctx, workspace)
	return l, err
}

// writeFenced writes a state under lock lockID: it checks the lock blob,
// holds a fence lease on it while uploading, and releases it.
func (b *Backend) writeFenced(ctx context.Context, workspace string, data []byte, prev state.Version, lockID string) (state.Version, error) {
	name := b.LockBlobName(workspace)
	lc, err := lease.NewBlobClient(b.client.NewBlobClient(name), &lease.BlobClientOptions{LeaseID: to(fenceLeaseID(lockID))})
	if err != nil {
		return "", err
	}
	for attempt := range maxAttempts {
		cur, etag, err := b.readLock(ctx, workspace)
		if err != nil {
			return "", err
		}
		if cur == nil {
			// No lock at all (it expired and was released, or was broken):
			// nothing to fence against; the compare-and-swap still holds.
			return b.put(ctx, workspace, data, prev, "")
		}
		if cur.ID != lockID && cur.Live(b.now()) {
			return "", &state.LockLostError{ID: lockID, Holder: cur}
		}
		_, err = lc.AcquireLease(ctx, fenceSeconds, &lease.BlobAcquireOptions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to(etag)},
		})
		switch {
		case err == nil:
		case changed(err), busyOrGone(err):
			// The lock changed since it was read, or another writer holds
			// the fence: look again.
			if err := pause(ctx, attempt); err != nil {
				return "", err
			}
			continue
		default:
			return "", wrap("fencing the write with a lease on "+b.where(name), err)
		}
		v, err := b.put(ctx, workspace, data, prev, "")
		// Release even when ctx is done; if this fails, the fence lapses
		// after fenceSeconds.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, _ = lc.ReleaseLease(rctx, nil)
		cancel()
		return v, err
	}
	return "", fmt.Errorf("azurerm: writing %s: the lock blob %s stayed leased by another writer", b.where(b.BlobName(workspace)), b.where(name))
}
