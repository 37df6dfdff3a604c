package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// DefaultWorkspace is the workspace used unless another is selected.
const DefaultWorkspace = "default"

// DefaultLeaseTTL is how long a lock outlives its holder's last renewal.
// Long enough to ride out a slow network, short enough that nobody waits
// long for a crashed CI job.
const DefaultLeaseTTL = 2 * time.Minute

// Version identifies one stored revision of a state document: an ETag, a
// generation, a content hash, a serial, whatever the backend compares on.
// The zero Version means "no state stored yet".
type Version string

// Snapshot is a state as read, with the Version a write must name to
// replace it.
type Snapshot struct {
	State   *State
	Version Version
}

// Backend stores state documents and their locks, one per workspace.
// Implementations are safe for concurrent use.
type Backend interface {
	// Read returns the workspace's state. It returns ErrNotFound when no
	// state has been written yet, a *CorruptError when the stored bytes are
	// not a valid document, and ErrNewerVersion (wrapped) when a newer
	// dstack wrote it.
	Read(ctx context.Context, workspace string) (*Snapshot, error)
	// Write stores s if, and only if, the stored revision is still prev
	// (the zero Version: nothing stored). Otherwise it changes nothing and
	// returns a *ConflictError, whatever the caller's lock says. lockID is
	// the lock the caller holds ("" without a lock); backends that can,
	// refuse a write under another holder's live lock. s is encoded with
	// Encode; it returns the new Version.
	Write(ctx context.Context, workspace string, s *State, prev Version, lockID string) (Version, error)
	// Lock takes the workspace's lock for a lease of ttl. A live lock held
	// by someone else gives a *LockedError naming the holder; an expired
	// one is taken over (atomically: of two callers racing for an expired
	// lock, one wins). It returns the lock as stored, with ID, Created and
	// Expires set (see PrepareLock).
	Lock(ctx context.Context, workspace string, info LockInfo, ttl time.Duration) (*LockInfo, error)
	// Renew extends a held lock's lease to ttl from now. A lease that ran
	// out but that nobody took over is still the caller's and is renewed.
	// It returns a *LockLostError when the lock is no longer the caller's
	// (someone took it over after it expired, or it was force-unlocked).
	// Implementations bound their requests: Hold gives each renewal a
	// third of the lease.
	Renew(ctx context.Context, workspace, id string, ttl time.Duration) error
	// Unlock releases a held lock. Releasing a lock that is not held is
	// not an error; releasing someone else's is a *LockLostError.
	Unlock(ctx context.Context, workspace, id string) error
	// ForceUnlock breaks the lock with that ID, whoever holds it. It
	// returns an error wrapping ErrNotLocked when no lock with that ID is
	// held (none at all, or another one, which is left alone).
	ForceUnlock(ctx context.Context, workspace, id string) error
	// LockInfo returns the workspace's lock as stored, or nil; a lease
	// that ran out but was not taken over is still returned (Live says
	// whether it binds).
	LockInfo(ctx context.Context, workspace string) (*LockInfo, error)
	// Workspaces lists the workspaces that have state, sorted.
	Workspaces(ctx context.Context) ([]string, error)
	// DeleteWorkspace removes a workspace's state and lock.
	DeleteWorkspace(ctx context.Context, workspace string) error
}

// LockInfo describes a lock: who holds it, for what, and until when.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	Who       string    `json:"who"`
	Version   string    `json:"version"`
	Created   time.Time `json:"created"`
	Path      string    `json:"path"`
	// Expires is when the lease ends unless renewed.
	Expires time.Time `json:"expires"`
	// Host and PID name the process holding the lock. A backend on one
	// machine (local) breaks a lock whose process is gone.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
}

// Journal is implemented by backends that can durably append small
// records more cheaply than they can rewrite the whole state. apply
// appends a record before and after each action and folds the journal
// into the state once at the end; the next command replays a journal a
// crash left behind. Records are opaque to the backend.
type Journal interface {
	// AppendJournal durably appends records, in order, only while lockID
	// is the workspace's lock: otherwise it appends nothing and returns a
	// *LockLostError.
	AppendJournal(ctx context.Context, workspace, lockID string, records [][]byte) error
	// ReadJournal returns every complete record, in order; a record torn
	// by a crash is left out.
	ReadJournal(ctx context.Context, workspace string) ([][]byte, error)
	// ClearJournal removes every record.
	ClearJournal(ctx context.Context, workspace, lockID string) error
	// SetAsideJournal moves a journal that cannot be replayed out of the
	// way, keeping it beside the state, and returns where it now is.
	SetAsideJournal(ctx context.Context, workspace, lockID string) (string, error)
}

// Live reports whether the lease is still running at now.
func (l *LockInfo) Live(now time.Time) bool { return now.Before(l.Expires) }

func (l *LockInfo) String() string {
	return fmt.Sprintf("lock %s held by %s for %q since %s (lease until %s)",
		l.ID, l.Who, l.Operation, l.Created.UTC().Format(time.RFC3339), l.Expires.UTC().Format(time.RFC3339))
}

// NewLockID returns a random lock ID.
func NewLockID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("state: reading random bytes: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// PrepareLock fills a lock's ID, Created and Expires for a lease of ttl
// starting at now; backends call it in Lock.
func PrepareLock(info LockInfo, now time.Time, ttl time.Duration) LockInfo {
	if info.ID == "" {
		info.ID = NewLockID()
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	info.Created = now.UTC().Truncate(time.Millisecond)
	info.Expires = info.Created.Add(ttl)
	return info
}

// ErrNotFound is returned by Read when no state is stored.
var ErrNotFound = errors.New("no state stored")

// ErrNotLocked is returned by ForceUnlock when no such lock is held.
var ErrNotLocked = errors.New("not locked")

// LockedError says the lock is held by someone else.
type LockedError struct {
	Holder LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("state is locked: %s. Wait for it (-lock-timeout), or if that run is gone, let the lease expire or run: dstack force-unlock %s", &e.Holder, e.Holder.ID)
}

// LockLostError says a lock the caller held is no longer theirs.
type LockLostError struct {
	ID string
	// Holder is who holds the lock now, if anyone.
	Holder *LockInfo
}

func (e *LockLostError) Error() string {
	if e.Holder != nil {
		return fmt.Sprintf("lock %s was lost: the lease expired or was broken, and %s", e.ID, e.Holder)
	}
	return fmt.Sprintf("lock %s was lost: the lease expired or was broken", e.ID)
}

// ConflictError says a write lost a compare-and-swap: the stored state
// is not the revision the writer read.
type ConflictError struct {
	Workspace string
	// Expected is the Version the writer named; Actual what is stored.
	Expected, Actual Version
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("state of workspace %q changed since it was read (expected revision %q, found %q); nothing was written. Refresh and plan again", e.Workspace, e.Expected, e.Actual)
}
