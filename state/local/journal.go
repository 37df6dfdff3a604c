package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/dstackai/dstack-go/state"
)

func journalPath(path string) string { return path + ".journal" }

// AppendJournal implements state.Journal: the records are appended as
// lines to state.json.journal and synced before it returns. It holds the
// workspace's OS lock while it checks that lockID is still the lease
// holder's and appends, so a holder that lost its lease (taken over after
// it expired, or force-unlocked) can never add to a journal that the next
// holder has read, cleared or started anew.
func (b *Backend) AppendJournal(ctx context.Context, workspace, lockID string, records [][]byte) error {
	var buf bytes.Buffer
	for _, r := range records {
		if bytes.IndexByte(r, '\n') >= 0 {
			return fmt.Errorf("journal record holds a newline")
		}
		buf.Write(r)
		buf.WriteByte('\n')
	}
	return b.guard(ctx, workspace, func(path string) error {
		if err := b.holds(path, lockID); err != nil {
			return err
		}
		f, err := os.OpenFile(journalPath(path), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("opening journal: %w", err)
		}
		_, werr := f.Write(buf.Bytes())
		serr := f.Sync()
		cerr := f.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			return fmt.Errorf("appending to journal: %w", err)
		}
		return nil
	})
}

// holds fails unless lockID is the lock on the workspace now (a lease that
// ran out but that nobody took over is still its holder's, as Renew has
// it). Without a lock (-lock=false) there is nothing to check.
func (b *Backend) holds(path, lockID string) error {
	if lockID == "" {
		return nil
	}
	l, err := readLock(path)
	if err != nil {
		return err
	}
	if l == nil || l.ID != lockID {
		return &state.LockLostError{ID: lockID, Holder: l}
	}
	return nil
}

// ReadJournal implements state.Journal. A last line without its newline
// was torn by a crash and is left out.
func (b *Backend) ReadJournal(ctx context.Context, workspace string) ([][]byte, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(journalPath(b.StatePath(workspace)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	complete := bytes.LastIndexByte(data, '\n') + 1
	read := 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		if read > complete {
			break
		}
		if len(sc.Bytes()) > 0 {
			out = append(out, bytes.Clone(sc.Bytes()))
		}
	}
	return out, nil
}

// ClearJournal implements state.Journal.
func (b *Backend) ClearJournal(ctx context.Context, workspace, lockID string) error {
	return b.guard(ctx, workspace, func(path string) error {
		if err := b.holds(path, lockID); err != nil {
			return err
		}
		if err := os.Remove(journalPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing journal: %w", err)
		}
		return nil
	})
}

// SetAsideJournal implements state.Journal: the journal is renamed to
// state.json.journal.damaged-<UTC time>, beside the state.
func (b *Backend) SetAsideJournal(ctx context.Context, workspace, lockID string) (string, error) {
	var where string
	err := b.guard(ctx, workspace, func(path string) error {
		if err := b.holds(path, lockID); err != nil {
			return err
		}
		where = journalPath(path) + ".damaged-" + b.now().UTC().Format("20060102T150405.000Z")
		if err := os.Rename(journalPath(path), where); err != nil {
			return fmt.Errorf("setting the journal aside: %w", err)
		}
		return nil
	})
	return where, err
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// orphaned reports whether a lock's holder ran on this machine and is
// gone, so the lock can be broken without waiting for its lease.
func orphaned(l *state.LockInfo) bool { return ProcessGone(l.Host, l.PID) }

// ProcessGone reports whether the process pid of host is known to have
// ended: host is this machine and no process pid runs on it. A process
// of another machine is never known to be gone.
func ProcessGone(host string, pid int) bool {
	if pid <= 0 || host == "" || host != hostname() || pid == os.Getpid() {
		return false
	}
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
