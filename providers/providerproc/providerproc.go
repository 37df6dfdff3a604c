// Package providerproc is the transport between dstack and a provider
// served by a program of its own (dstack-provider-aws,
// dstack-provider-kubernetes), so that a cloud's SDK is linked into that
// program only. It knows nothing of any one cloud: each provider keeps
// its typed calls and its table of operations, and passes their
// arguments and results through as JSON.
//
// The protocol is newline-delimited JSON over the program's standard
// input and output: the first message opens the provider with its
// settings; every later one is a call with an ID, answered by a message
// with that ID. Calls run concurrently, each with its context's deadline,
// and a cancel message when the context ends. The program exits when its
// input ends, so it never outlives dstack. Errors cross as their message
// and, for a *providers.Error, its code, retry-after and scope; context
// cancellation and deadlines stay recognisable with errors.Is.
package providerproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/dstackai/dstack-go/providers"
)

// Operations of the protocol itself; the providers name the others.
const (
	opOpen   = "open"
	opCancel = "cancel"
)

type request struct {
	ID       uint64          `json:"id"`
	Op       string          `json:"op"`
	Deadline *time.Time      `json:"deadline,omitempty"`
	Args     json.RawMessage `json:"args,omitempty"`
}

type response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Err    *WireError      `json:"error,omitempty"`
}

// WireError is an error as sent: its message and, for a
// *providers.Error, its code, retry-after and scope.
type WireError struct {
	Message    string          `json:"message"`
	Code       providers.Code  `json:"code,omitempty"`
	RetryAfter time.Duration   `json:"retry_after,omitempty"`
	Scope      providers.Scope `json:"scope,omitempty"`
	Canceled   bool            `json:"canceled,omitempty"`
	Deadline   bool            `json:"deadline,omitempty"`
}

// ToWire is err as sent.
func ToWire(err error) *WireError {
	w := &WireError{Message: err.Error()}
	var pe *providers.Error
	if errors.As(err, &pe) {
		w.Code, w.RetryAfter, w.Scope = pe.Code, pe.RetryAfter, pe.Scope
		if pe.Err != nil {
			w.Message = pe.Err.Error()
		}
	}
	w.Canceled = errors.Is(err, context.Canceled)
	w.Deadline = errors.Is(err, context.DeadlineExceeded)
	return w
}

// Err is the error w carries: a *providers.Error when it has a code,
// wrapping context.Canceled or context.DeadlineExceeded when it was one.
func (w *WireError) Err() error {
	inner := errors.New(w.Message)
	switch {
	case w.Canceled:
		inner = fmt.Errorf("%s: %w", w.Message, context.Canceled)
	case w.Deadline:
		inner = fmt.Errorf("%s: %w", w.Message, context.DeadlineExceeded)
	}
	if w.Code != "" {
		return &providers.Error{Code: w.Code, RetryAfter: w.RetryAfter, Scope: w.Scope, Err: inner}
	}
	return inner
}

// Decode decodes the arguments of op into v, for a Dispatcher.
func Decode(op string, args json.RawMessage, v any) error {
	if err := json.Unmarshal(args, v); err != nil {
		return fmt.Errorf("%s: bad arguments: %w", op, err)
	}
	return nil
}

// FindProgram finds program, which serves the backend named backend:
// beside this program, else on PATH.
func FindProgram(program, backend string) (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), program)
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	where := "this dstack's directory"
	if exe != "" {
		where = filepath.Dir(exe)
	}
	return "", fmt.Errorf("the %s backend runs in its own program, %s, which is neither in %s nor on PATH: install it beside dstack (make build puts it in bin/; or go build -o DIR ./cmd/%s)", backend, program, where, program)
}
