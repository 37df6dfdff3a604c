package backendproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dstackai/dstack-go/state"
)

// Factory builds a backend from its settings.
type Factory func(cfg map[string]string) (state.Backend, error)

// Main serves the backend newBackend builds on the process's standard
// input and output until the input ends, and exits. It is the whole main
// function of a dstack-backend-NAME program.
func Main(newBackend Factory) {
	// Standard output carries the protocol; anything else the process
	// prints goes to standard error, which dstack shows when it fails.
	proto := os.Stdout
	os.Stdout = os.Stderr
	if err := Serve(context.Background(), newBackend, os.Stdin, proto); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Serve answers the client's messages on r with w until r ends: first
// the open message, whose settings newBackend turns into the backend,
// then calls on it.
func Serve(ctx context.Context, newBackend Factory, r io.Reader, w io.Writer) error {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 64<<10), 1<<30) // a write carries a whole state
	s := &server{enc: json.NewEncoder(w), calls: map[uint64]context.CancelFunc{}}
	if !in.Scan() {
		return in.Err() // the client went away before opening
	}
	var open request
	if err := json.Unmarshal(in.Bytes(), &open); err != nil || open.Op != opOpen {
		return fmt.Errorf("backend process: the first message must open the backend: %q", in.Bytes())
	}
	b, err := newBackend(open.Config)
	if err != nil {
		s.reply(&response{ID: open.ID, Err: toWire(err)})
		return nil
	}
	if c, ok := b.(interface{ Close() error }); ok {
		defer c.Close()
	} else if c, ok := b.(interface{ Close() }); ok {
		defer c.Close()
	}
	s.reply(&response{ID: open.ID})

	// When the input ends, the client is gone or done: calls still
	// running are cancelled, then waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			return fmt.Errorf("backend process: reading a call: %w", err)
		}
		if req.Op == opCancel {
			s.cancel(req.ID)
			continue
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if req.Deadline != nil {
			cctx, cancel = context.WithDeadline(ctx, *req.Deadline)
		}
		cctx, cancel2 := context.WithCancel(cctx)
		s.mu.Lock()
		s.calls[req.ID] = func() { cancel2(); cancel() }
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := call(cctx, b, &req)
			resp.ID = req.ID
			s.cancel(req.ID)
			s.reply(resp)
		}()
	}
	return in.Err()
}

type server struct {
	mu    sync.Mutex // guards enc and calls
	enc   *json.Encoder
	calls map[uint64]context.CancelFunc
}

func (s *server) reply(resp *response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(resp) // a client that went away ends the input too
}

func (s *server) cancel(id uint64) {
	s.mu.Lock()
	c := s.calls[id]
	delete(s.calls, id)
	s.mu.Unlock()
	if c != nil {
		c()
	}
}

// call runs one request against b.
func call(ctx context.Context, b state.Backend, req *request) *response {
	resp := &response{}
	var err error
	switch req.Op {
	case opRead:
		var snap *state.Snapshot
		if snap, err = b.Read(ctx, req.Workspace); err == nil {
			resp.Version = snap.Version
			resp.State, err = state.Encode(snap.State)
		}
	case opWrite:
		var st *state.State
		if st, err = state.Decode(req.State, "the state sent to the backend process"); err == nil {
			resp.Version, err = b.Write(ctx, req.Workspace, st, req.Prev, req.LockID)
		}
	case opLock:
		if req.Info == nil {
			err = errors.New("lock: no lock info")
			break
		}
		resp.Lock, err = b.Lock(ctx, req.Workspace, *req.Info, req.TTL)
	case opRenew:
		err = b.Renew(ctx, req.Workspace, req.LockID, req.TTL)
	case opUnlock:
		err = b.Unlock(ctx, req.Workspace, req.LockID)
	case opForceUnlock:
		err = b.ForceUnlock(ctx, req.Workspace, req.LockID)
	case opLockInfo:
		resp.Lock, err = b.LockInfo(ctx, req.Workspace)
	case opWorkspaces:
		resp.Workspaces, err = b.Workspaces(ctx)
	case opDelete:
		err = b.DeleteWorkspace(ctx, req.Workspace)
	default:
		err = fmt.Errorf("backend process: unknown call %q", req.Op)
	}
	resp.Err = toWire(err)
	return resp
}
