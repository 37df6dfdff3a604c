package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// ExecRequest runs a command inside a running job (`dstack attach RUN --
// CMD`): in its container, or beside its process. Either way it runs as
// the job's user, with the job's environment (never the agent's) and in
// its working directory.
type ExecRequest struct {
	Command []string `json:"command"`
	// TTY asks for a terminal (Docker only); output is then one stream.
	TTY bool `json:"tty,omitempty"`
}

// Execer is an optional capability of a Handle: running a command in the
// job. stdin is the caller's input (it ends when the caller closes its
// side); everything the command prints goes to stdout.
type Execer interface {
	Exec(ctx context.Context, req ExecRequest, stdin io.Reader, stdout io.Writer) (exitCode int, err error)
}

// Exec runs a command in a running job.
func (m *Manager) Exec(ctx context.Context, id string, req ExecRequest, stdin io.Reader, stdout io.Writer) (int, error) {
	if len(req.Command) == 0 {
		return 0, &InvalidSpecError{Err: errors.New("exec needs a command")}
	}
	h, _, err := m.running(id)
	if err != nil {
		return 0, err
	}
	ex, ok := h.(Execer)
	if !ok {
		return 0, fmt.Errorf("job %s: its runtime cannot run commands in it: %w", id, ErrNoRuntime)
	}
	defer m.Session(id)()
	return ex.Exec(ctx, req, stdin, stdout)
}

// The exec stream: after the 101 answer, both sides send frames of one
// type byte, a big-endian uint32 length and the payload. The client sends
// FrameInput (the command's input) and FrameEOF once its input ends; the
// agent sends FrameOutput (what the command printed), then one FrameExit
// (the exit code in decimal) or FrameError (a message).
const (
	FrameInput  = 'i'
	FrameEOF    = 'z'
	FrameOutput = 'o'
	FrameExit   = 'x'
	FrameError  = 'e'
	// ExecUpgrade is the protocol named in the Upgrade header.
	ExecUpgrade = "dstack-exec"
)

// WriteFrame writes one frame of the exec stream.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	var head [5]byte
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame of the exec stream.
func ReadFrame(r io.Reader) (kind byte, payload []byte, err error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > 1<<24 {
		return 0, nil, fmt.Errorf("exec frame of %d bytes is too large", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return head[0], payload, err
}

// frameWriter turns writes into output frames; safe for concurrent use.
type frameWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := WriteFrame(f.w, FrameOutput, p); err != nil {
		return 0, err
	}
	return len(p), f.w.Flush()
}

func (f *frameWriter) final(kind byte, payload []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = WriteFrame(f.w, kind, payload)
	_ = f.w.Flush()
}

// exec serves POST /jobs/{id}/exec: it checks the job, then upgrades the
// connection to the exec stream.
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := s.m.Get(id); err != nil {
		s.fail(w, r, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.fail(w, r, errors.New("the connection cannot be upgraded"))
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + ExecUpgrade + "\r\n\r\n")
	_ = rw.Flush()
	out := &frameWriter{w: rw.Writer}
	stdin, feed := io.Pipe()
	go func() {
		for {
			kind, payload, err := ReadFrame(rw.Reader)
			if err != nil || kind == FrameEOF {
				feed.CloseWithError(err)
				return
			}
			if kind == FrameInput {
				if _, err := feed.Write(payload); err != nil {
					return
				}
			}
		}
	}()
	code, err := s.m.Exec(r.Context(), id, req, stdin, out)
	stdin.Close()
	if err != nil {
		out.final(FrameError, []byte(err.Error()))
		return
	}
	out.final(FrameExit, []byte(strconv.Itoa(code)))
}
