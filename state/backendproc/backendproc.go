// Package backendproc runs a state backend in a process of its own and
// speaks to it over the process's standard input and output, so that a
// backend's SDK (AWS, Azure, Google Cloud, pgx) is linked into, and
// initialised by, only the program that serves it: `dstack` starts
// dstack-backend-NAME when a command needs that backend.
//
// The protocol is newline-delimited JSON. The client's first message
// opens the backend with its settings; every later message is a call with
// an ID, answered by a message with the same ID. Calls run concurrently
// (a lock's lease is renewed while the state is written); a call whose
// context ends is cancelled with a message of its own. The server exits
// when its input ends, so a client that dies takes its server with it.
package backendproc

import (
	"context"
	"errors"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Operations.
const (
	opOpen        = "open"
	opCancel      = "cancel"
	opRead        = "read"
	opWrite       = "write"
	opLock        = "lock"
	opRenew       = "renew"
	opUnlock      = "unlock"
	opForceUnlock = "force-unlock"
	opLockInfo    = "lock-info"
	opWorkspaces  = "workspaces"
	opDelete      = "delete-workspace"
)

// request is a message from the client.
type request struct {
	ID     uint64            `json:"id"`
	Op     string            `json:"op"`
	Config map[string]string `json:"config,omitempty"` // open
	// Deadline is the call's context deadline, if it has one.
	Deadline  *time.Time      `json:"deadline,omitempty"`
	Workspace string          `json:"workspace,omitempty"`
	State     []byte          `json:"state,omitempty"` // write: state.Encode's bytes
	Prev      state.Version   `json:"prev,omitempty"`
	LockID    string          `json:"lock_id,omitempty"`
	Info      *state.LockInfo `json:"info,omitempty"`
	TTL       time.Duration   `json:"ttl,omitempty"`
}

// response answers the request with the same ID.
type response struct {
	ID         uint64          `json:"id"`
	Err        *wireError      `json:"error,omitempty"`
	State      []byte          `json:"state,omitempty"` // read: state.Encode's bytes
	Version    state.Version   `json:"version,omitempty"`
	Lock       *state.LockInfo `json:"lock,omitempty"`
	Workspaces []string        `json:"workspaces,omitempty"`
}

// Error kinds: the errors callers tell apart with errors.Is and
// errors.As cross the process boundary as a kind and their fields.
const (
	kindNotFound     = "not-found"
	kindNotLocked    = "not-locked"
	kindNewerVersion = "newer-version"
	kindLocked       = "locked"
	kindLockLost     = "lock-lost"
	kindConflict     = "conflict"
	kindCorrupt      = "corrupt"
	kindDeadline     = "deadline"
	kindCanceled     = "canceled"
)

// wireError is an error as sent: its message, and what errors.Is and
// errors.As find in it.
type wireError struct {
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"`
	// Holder: locked, lock-lost.
	Holder *state.LockInfo `json:"holder,omitempty"`
	// ID: lock-lost.
	ID string `json:"lock_id,omitempty"`
	// Workspace, Expected, Actual: conflict.
	Workspace string        `json:"workspace,omitempty"`
	Expected  state.Version `json:"expected,omitempty"`
	Actual    state.Version `json:"actual,omitempty"`
	// Where, Reason: corrupt.
	Where  string `json:"where,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Message: err.Error()}
	var (
		locked   *state.LockedError
		lost     *state.LockLostError
		conflict *state.ConflictError
		corrupt  *state.CorruptError
	)
	switch {
	case errors.As(err, &locked):
		w.Kind, w.Holder = kindLocked, &locked.Holder
	case errors.As(err, &lost):
		w.Kind, w.ID, w.Holder = kindLockLost, lost.ID, lost.Holder
	case errors.As(err, &conflict):
		w.Kind, w.Workspace, w.Expected, w.Actual = kindConflict, conflict.Workspace, conflict.Expected, conflict.Actual
	case errors.As(err, &corrupt):
		w.Kind, w.Where, w.Reason = kindCorrupt, corrupt.Where, corrupt.Reason
	case errors.Is(err, state.ErrNotFound):
		w.Kind = kindNotFound
	case errors.Is(err, state.ErrNotLocked):
		w.Kind = kindNotLocked
	case errors.Is(err, state.ErrNewerVersion):
		w.Kind = kindNewerVersion
	case errors.Is(err, context.DeadlineExceeded):
		w.Kind = kindDeadline
	case errors.Is(err, context.Canceled):
		w.Kind = kindCanceled
	}
	return w
}

// remoteError is an error the backend process returned: its message as
// it was, wrapping what errors.Is and errors.As should find.
type remoteError struct {
	msg   string
	inner error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.inner }

func (w *wireError) err() error {
	var inner error
	switch w.Kind {
	case kindLocked:
		var h state.LockInfo
		if w.Holder != nil {
			h = *w.Holder
		}
		inner = &state.LockedError{Holder: h}
	case kindLockLost:
		inner = &state.LockLostError{ID: w.ID, Holder: w.Holder}
	case kindConflict:
		inner = &state.ConflictError{Workspace: w.Workspace, Expected: w.Expected, Actual: w.Actual}
	case kindCorrupt:
		inner = &state.CorruptError{Where: w.Where, Reason: w.Reason}
	case kindNotFound:
		inner = state.ErrNotFound
	case kindNotLocked:
		inner = state.ErrNotLocked
	case kindNewerVersion:
		inner = state.ErrNewerVersion
	case kindDeadline:
		inner = context.DeadlineExceeded
	case kindCanceled:
		inner = context.Canceled
	}
	return &remoteError{msg: w.Message, inner: inner}
}
