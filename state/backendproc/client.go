package backendproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Client is a state.Backend served by a backend process. It is safe for
// concurrent use.
type Client struct {
	name string // for messages: "dstack-backend-s3"
	cmd  *exec.Cmd
	in   io.WriteCloser

	mu      sync.Mutex // guards what follows, and writes to in
	enc     *json.Encoder
	nextID  uint64
	pending map[uint64]chan *response
	dead    error // set once the process's output ended

	stderr  *tailBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error         // how it exited; set before done is closed
}

var _ state.Backend = (*Client)(nil)

// Start runs cmd, a backend program (its standard streams unset), opens
// the backend with cfg in it and returns the client. A backend that
// refuses its settings gives that error, and the process is gone.
func Start(ctx context.Context, cmd *exec.Cmd, cfg map[string]string) (*Client, error) {
	path := cmd.Path
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &Client{
		name:    strings.TrimSuffix(baseName(path), ".exe"),
		cmd:     cmd,
		in:      in,
		enc:     json.NewEncoder(in),
		pending: map[uint64]chan *response{},
		stderr:  &tailBuffer{max: 4096},
		done:    make(chan struct{}),
	}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go c.read(out)
	if _, err := c.call(ctx, &request{Op: opOpen, Config: cfg}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[i+1:]
	}
	return path
}

// Close ends the backend process: its input ends, and it exits once its
// calls have returned (it is killed after 10s).
func (c *Client) Close() error {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	if c.waitErr != nil {
		return fmt.Errorf("%s: %w%s", c.name, c.waitErr, c.stderr.suffix())
	}
	return nil
}

// read dispatches the responses until the process's output ends, then
// waits for it to exit and fails the calls still waiting.
func (c *Client) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var err error
	for sc.Scan() {
		var resp response
		if err = json.Unmarshal(sc.Bytes(), &resp); err != nil {
			err = fmt.Errorf("%s answered something that is not a response: %q", c.name, sc.Bytes())
			_ = c.cmd.Process.Kill() // it does not speak the protocol: nothing more will make sense
			break
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- &resp
		}
	}
	if err == nil {
		err = sc.Err()
	}
	_, _ = io.Copy(io.Discard, out)
	c.waitErr = c.cmd.Wait() // standard error is all copied once it returns
	if err == nil {
		err = fmt.Errorf("%s exited", c.name)
		if c.waitErr != nil {
			err = fmt.Errorf("%s exited: %w", c.name, c.waitErr)
		}
	}
	defer close(c.done)
	c.mu.Lock()
	c.dead = fmt.Errorf("%w%s", err, c.stderr.suffix())
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// call sends req and waits for its answer or for ctx to end; then it
// tells the process to cancel the call.
func (c *Client) call(ctx context.Context, req *request) (*response, error) {
	if d, ok := ctx.Deadline(); ok {
		req.Deadline = &d
	}
	ch := make(chan *response, 1)
	c.mu.Lock()
	if c.dead != nil {
		err := c.dead
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	err := c.enc.Encode(req)
	c.mu.Unlock()
	if err != nil {
		return nil, c.failed(req.ID, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.dead
			c.mu.Unlock()
			return nil, err
		}
		if resp.Err != nil {
			return resp, resp.Err.err()
		}
		return resp, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, req.ID)
		_ = c.enc.Encode(&request{ID: req.ID, Op: opCancel})
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// failed is the error of a call whose request could not be sent.
func (c *Client) failed(id uint64, err error) error {
	<-c.done // the write failed: the process's output ends too
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, id)
	if c.dead != nil {
		return c.dead
	}
	return fmt.Errorf("%s: %w", c.name, err)
}

// Read implements state.Backend.
func (c *Client) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	resp, err := c.call(ctx, &request{Op: opRead, Workspace: workspace})
	if err != nil {
		return nil, err
	}
	st, err := state.Decode(resp.State, c.name+"'s answer for workspace "+workspace)
	if err != nil {
		return nil, err
	}
	return &state.Snapshot{State: st, Version: resp.Version}, nil
}

// Write implements state.Backend.
func (c *Client) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	resp, err := c.call(ctx, &request{Op: opWrite, Workspace: workspace, State: data, Prev: prev, LockID: lockID})
	if err != nil {
		return "", err
	}
	return resp.Version, nil
}

// Lock implements state.Backend.
func (c *Client) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	resp, err := c.call(ctx, &request{Op: opLock, Workspace: workspace, Info: &info, TTL: ttl})
	if err != nil {
		return nil, err
	}
	if resp.Lock == nil {
		return nil, fmt.Errorf("%s took the lock of workspace %q but did not say which", c.name, workspace)
	}
	return resp.Lock, nil
}

// Renew implements state.Backend.
func (c *Client) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	_, err := c.call(ctx, &request{Op: opRenew, Workspace: workspace, LockID: id, TTL: ttl})
	return err
}

// Unlock implements state.Backend.
func (c *Client) Unlock(ctx context.Context, workspace, id string) error {
	_, err := c.call(ctx, &request{Op: opUnlock, Workspace: workspace, LockID: id})
	return err
}

// ForceUnlock implements state.Backend.
func (c *Client) ForceUnlock(ctx context.Context, workspace, id string) error {
	_, err := c.call(ctx, &request{Op: opForceUnlock, Workspace: workspace, LockID: id})
	return err
}

// LockInfo implements state.Backend.
func (c *Client) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	resp, err := c.call(ctx, &request{Op: opLockInfo, Workspace: workspace})
	if err != nil {
		return nil, err
	}
	return resp.Lock, nil
}

// Workspaces implements state.Backend.
func (c *Client) Workspaces(ctx context.Context) ([]string, error) {
	resp, err := c.call(ctx, &request{Op: opWorkspaces})
	if err != nil {
		return nil, err
	}
	return resp.Workspaces, nil
}

// DeleteWorkspace implements state.Backend.
func (c *Client) DeleteWorkspace(ctx context.Context, workspace string) error {
	_, err := c.call(ctx, &request{Op: opDelete, Workspace: workspace})
	return err
}

// tailBuffer keeps the last max bytes written to it: the end of the
// process's standard error, for the error when it stops.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

// suffix is ": " and what the process wrote to standard error, or "".
func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.buf))
	if s == "" {
		return ""
	}
	return ": " + s
}
