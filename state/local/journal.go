package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/dstackai/dstack-go/state"
)

func journalPath(path string) string { return path + ".journal" }

// AppendJournal implements state.Journal: the records are appended as
// lines to state.json.journal and synced before it returns.
func (b *Backend) AppendJournal(ctx context.Context, workspace, lockID string, records [][]byte) error {
	var buf bytes.Buffer
	for _, r := range records {
		if bytes.IndexByte(r, '\n') >= 0 {
			return fmt.Errorf("journal record holds a newline")
		}
		buf.Write(r)
		buf.WriteByte('\n')
	}
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	path := b.StatePath(workspace)
	if err := b.checkLock(path, lockID); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
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
}

// checkLock fails when someone else holds the lease; appends skip the OS
// lock, since only the lease holder appends.
func (b *Backend) checkLock(path, lockID string) error {
	if lockID == "" {
		return nil
	}
	l, err := readLock(path)
	if err != nil {
		return err
	}
	if l != nil && l.ID != lockID && l.Live(b.now()) {
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
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	path := b.StatePath(workspace)
	if err := b.checkLock(path, lockID); err != nil {
		return err
	}
	if err := os.Remove(journalPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing journal: %w", err)
	}
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// orphaned reports whether a lock's holder ran on this machine and is
// gone, so the lock can be broken without waiting for its lease.
func orphaned(l *state.LockInfo) bool {
	if l.PID <= 0 || l.Host == "" || l.Host != hostname() || l.PID == os.Getpid() {
		return false
	}
	err := syscall.Kill(l.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}
