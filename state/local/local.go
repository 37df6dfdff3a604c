// Package local stores state in files beside the configuration: the
// default backend.
//
// Layout, under the directory given (normally .dstack beside the
// configuration):
//
//	state.json                       the default workspace's state
//	state.json.backup                the state before the last write
//	state.json.lock.info             the lease lock (JSON LockInfo)
//	state.json.journal               apply's journal (one JSON record per line)
//	workspaces/<name>/state.json     other workspaces, same files
//
// Every operation takes an OS file lock (flock) on state.json.lock for
// the few milliseconds it reads and rewrites these files, which makes
// each one atomic across processes. The dstack lock itself is the lease
// in state.json.lock.info, not the OS lock: a killed process would drop an
// OS lock at once, while a lease keeps the state locked until its TTL
// runs out, the same on every backend, except that a lease whose holder
// ran on this machine and is no longer running is broken at once. Writes go to a temporary file that
// is synced and renamed over the old one, so a crash leaves the old state
// or the new one, never a mix. The Version of a state is the SHA-256 of
// its file.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/state"
)

// Backend is the local file backend.
type Backend struct {
	dir string
	ttl time.Duration // the lease when a caller names none
	now func() time.Time
}

var (
	_ state.Backend = (*Backend)(nil)
	_ state.Journal = (*Backend)(nil)
)

// New returns a backend storing state under dir (created on first write).
// The config keys are "path" (the directory; default ".dstack") and
// "lock_ttl" (the lease when a caller names none; default 2m).
func New(cfg map[string]string) (*Backend, error) {
	b := &Backend{dir: ".dstack", ttl: state.DefaultLeaseTTL, now: time.Now}
	for k, v := range cfg {
		switch k {
		case "path":
			b.dir = v
		case "lock_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("local backend: lock_ttl %q is not a positive duration such as 2m", v)
			}
			b.ttl = d
		default:
			return nil, state.UnknownSetting("local", k, []string{"path", "lock_ttl"})
		}
	}
	return b, nil
}

// Dir is the directory the state lives in.
func (b *Backend) Dir() string { return b.dir }

// StatePath returns the file holding a workspace's state.
func (b *Backend) StatePath(workspace string) string {
	if workspace == "" || workspace == state.DefaultWorkspace {
		return filepath.Join(b.dir, "state.json")
	}
	return filepath.Join(b.dir, "workspaces", workspace, "state.json")
}

func validWorkspace(ws string) error {
	if ws == "" || ws == "." || ws == ".." || filepath.Base(ws) != ws {
		return fmt.Errorf("invalid workspace name %q", ws)
	}
	return nil
}

// guard runs fn holding the OS lock of a workspace's files.
func (b *Backend) guard(ctx context.Context, workspace string, fn func(path string) error) error {
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	path := b.StatePath(workspace)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	fl := flock.New(path + ".lock")
	ok, err := fl.TryLockContext(ctx, 5*time.Millisecond)
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("locking %s: %w", path, ctx.Err())
	}
	defer func() { _ = fl.Unlock() }()
	return fn(path)
}

func version(data []byte) state.Version {
	sum := sha256.Sum256(data)
	return state.Version(hex.EncodeToString(sum[:16]))
}

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	path := b.StatePath(workspace)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, state.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	s, err := state.Decode(data, path)
	if err != nil {
		return nil, state.WithVersion(err, version(data))
	}
	return &state.Snapshot{State: s, Version: version(data)}, nil
}

// Write implements state.Backend.
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	var v state.Version
	err = b.guard(ctx, workspace, func(path string) error {
		old, err := os.ReadFile(path)
		var actual state.Version
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("reading state: %w", err)
		default:
			actual = version(old)
		}
		if actual != prev {
			return &state.ConflictError{Workspace: workspace, Expected: prev, Actual: actual}
		}
		if lockID != "" {
			if l, err := readLock(path); err != nil {
				return err
			} else if l != nil && l.ID != lockID && l.Live(b.now()) {
				return &state.LockLostError{ID: lockID, Holder: l}
			}
		}
		if old != nil {
			if err := backup(path); err != nil {
				return err
			}
		}
		if err := renameio.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("writing state: %w", err)
		}
		v = version(data)
		return nil
	})
	return v, err
}

// backup makes the current state file the .backup one, by a hard link
// renamed into place: no copy of a large state, and the state file itself
// never goes missing for a reader.
func backup(path string) error {
	tmp := path + ".backup.tmp"
	_ = os.Remove(tmp)
	if err := os.Link(path, tmp); err != nil {
		return fmt.Errorf("keeping a backup of the state: %w", err)
	}
	if err := os.Rename(tmp, path+".backup"); err != nil {
		return fmt.Errorf("keeping a backup of the state: %w", err)
	}
	return nil
}

func lockPath(path string) string { return path + ".lock.info" }

func readLock(path string) (*state.LockInfo, error) {
	data, err := os.ReadFile(lockPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	var l state.LockInfo
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("lock file %s is damaged (%v); remove it if no run holds the lock", lockPath(path), err)
	}
	return &l, nil
}

func writeLock(path string, l *state.LockInfo) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(lockPath(path), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing lock: %w", err)
	}
	return nil
}

// Lock implements state.Backend.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	var got *state.LockInfo
	err := b.guard(ctx, workspace, func(path string) error {
		cur, err := readLock(path)
		if err != nil {
			return err
		}
		if cur != nil && cur.Live(b.now()) && !orphaned(cur) {
			return &state.LockedError{Holder: *cur}
		}
		if ttl <= 0 {
			ttl = b.ttl
		}
		l := state.PrepareLock(info, b.now(), ttl)
		if l.PID == 0 {
			l.Host, l.PID = hostname(), os.Getpid()
		}
		if l.Path == "" {
			l.Path = path
		}
		if err := writeLock(path, &l); err != nil {
			return err
		}
		got = &l
		return nil
	})
	return got, err
}

// Renew implements state.Backend.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	return b.guard(ctx, workspace, func(path string) error {
		cur, err := readLock(path)
		if err != nil {
			return err
		}
		if cur == nil || cur.ID != id {
			return &state.LockLostError{ID: id, Holder: cur}
		}
		if ttl <= 0 {
			ttl = b.ttl
		}
		cur.Expires = b.now().UTC().Add(ttl)
		return writeLock(path, cur)
	})
}

// Unlock implements state.Backend.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	return b.guard(ctx, workspace, func(path string) error {
		cur, err := readLock(path)
		if err != nil || cur == nil {
			return err
		}
		if cur.ID != id {
			return &state.LockLostError{ID: id, Holder: cur}
		}
		return removeLock(path)
	})
}

func removeLock(path string) error {
	if err := os.Remove(lockPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing lock: %w", err)
	}
	return nil
}

// ForceUnlock implements state.Backend.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	return b.guard(ctx, workspace, func(path string) error {
		cur, err := readLock(path)
		if err != nil {
			return err
		}
		if cur == nil {
			return state.ErrNotLocked
		}
		if cur.ID != id {
			return fmt.Errorf("the lock is %s, not %s; nothing was unlocked: %w", cur.ID, id, state.ErrNotLocked)
		}
		return removeLock(path)
	})
}

// LockInfo implements state.Backend.
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	return readLock(b.StatePath(workspace))
}

// Workspaces implements state.Backend.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	var out []string
	if _, err := os.Stat(b.StatePath(state.DefaultWorkspace)); err == nil {
		out = append(out, state.DefaultWorkspace)
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, "workspaces"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	for _, e := range entries {
		if _, err := os.Stat(b.StatePath(e.Name())); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeleteWorkspace implements state.Backend.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	return b.guard(ctx, workspace, func(path string) error {
		for _, p := range []string{path, path + ".backup", lockPath(path)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("deleting workspace %s: %w", workspace, err)
			}
		}
		if workspace != state.DefaultWorkspace {
			_ = os.Remove(path + ".lock")
			_ = os.Remove(filepath.Dir(path))
		}
		return nil
	})
}
