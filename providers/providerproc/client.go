package providerproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Client is a provider's program, spoken to over its standard input and
// output. It is safe for concurrent use.
type Client struct {
	name string // for messages: "dstack-provider-aws"
	cmd  *exec.Cmd
	in   io.WriteCloser

	mu      sync.Mutex // guards what follows, and writes to in
	enc     *json.Encoder
	nextID  uint64
	pending map[uint64]chan *response
	dead    error // set once the program's output ended

	stderr *tailBuffer
	done   chan struct{} // closed when the program has exited
}

// Start runs cmd (its standard streams unset) and opens the provider
// with settings in it. A program that refuses its settings gives that
// error, and it is gone.
func Start(ctx context.Context, cmd *exec.Cmd, settings any) (*Client, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &Client{
		name:    strings.TrimSuffix(filepath.Base(cmd.Path), ".exe"),
		cmd:     cmd,
		in:      in,
		enc:     json.NewEncoder(in),
		pending: map[uint64]chan *response{},
		stderr:  &tailBuffer{max: 4096},
		done:    make(chan struct{}),
	}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go c.read(out)
	if err := c.Call(ctx, opOpen, settings, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close ends the program: its input ends and it exits (it is killed
// after 10 s).
func (c *Client) Close() error {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	return nil
}

// read matches the program's responses to the pending calls until its
// output ends; then every pending and later call gets why, with the tail
// of its error output.
func (c *Client) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var err error
	for sc.Scan() {
		var resp response
		if err = json.Unmarshal(sc.Bytes(), &resp); err != nil {
			err = fmt.Errorf("%s answered something that is not a response: %q", c.name, sc.Bytes())
			_ = c.cmd.Process.Kill()
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
	werr := c.cmd.Wait()
	if err == nil {
		err = fmt.Errorf("%s exited", c.name)
		if werr != nil {
			err = fmt.Errorf("%s exited: %w", c.name, werr)
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

// Call sends op with args (JSON-encoded, when not nil) and decodes its
// result into result (when not nil), or returns its error. When ctx ends
// first, the program is told to cancel the call and Call returns
// ctx.Err().
func (c *Client) Call(ctx context.Context, op string, args, result any) error {
	req := request{Op: op}
	if d, ok := ctx.Deadline(); ok {
		req.Deadline = &d
	}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return err
		}
		req.Args = b
	}
	ch := make(chan *response, 1)
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return c.dead
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	err := c.enc.Encode(&req)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("talking to %s: %w", c.name, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.dead
		}
		if resp.Err != nil {
			return resp.Err.Err()
		}
		if result != nil && len(resp.Result) > 0 {
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, req.ID)
		_ = c.enc.Encode(&request{ID: req.ID, Op: opCancel})
		c.mu.Unlock()
		return ctx.Err()
	}
}

// tailBuffer keeps the last max bytes written to it: the program's
// standard error, for messages when it dies.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return " (its error output: " + s + ")"
}
