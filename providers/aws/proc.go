package aws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Program is the program that serves the aws backend's Cloud.
const Program = "dstack-provider-aws"

// The protocol between dstack and dstack-provider-aws is
// newline-delimited JSON over the program's standard input and output,
// as state/backendproc's: the first message opens the cloud with the
// settings; every later one is a call with an ID, answered by a message
// with that ID. Calls run concurrently, each with its context's deadline
// and a cancel message when the context ends. The program exits when
// its input ends, so it never outlives dstack. Credentials travel only
// in the open message, on the pipe, and only when the settings give
// them; the program's own environment (which it inherits) is where the
// SDK's default chain finds them otherwise.

// Operations.
const (
	opOpen         = "open"
	opCancel       = "cancel"
	opOffers       = "offers"
	opLaunch       = "launch"
	opInstances    = "instances"
	opTerminate    = "terminate"
	opCreateVolume = "create-volume"
	opVolumes      = "volumes"
	opAttach       = "attach-volume"
	opDetach       = "detach-volume"
	opDeleteVolume = "delete-volume"
	opConsole      = "console-output"
)

type procRequest struct {
	ID       uint64          `json:"id"`
	Op       string          `json:"op"`
	Deadline *time.Time      `json:"deadline,omitempty"`
	Args     json.RawMessage `json:"args,omitempty"`
}

type procResponse struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Err    *wireError      `json:"error,omitempty"`
}

// wireError is an error as sent: its message and, for a
// *providers.Error, its code, retry-after and scope.
type wireError struct {
	Message    string          `json:"message"`
	Code       providers.Code  `json:"code,omitempty"`
	RetryAfter time.Duration   `json:"retry_after,omitempty"`
	Scope      providers.Scope `json:"scope,omitempty"`
	Canceled   bool            `json:"canceled,omitempty"`
	Deadline   bool            `json:"deadline,omitempty"`
}

func toWire(err error) *wireError {
	w := &wireError{Message: err.Error()}
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

func (w *wireError) err() error {
	var inner error = errors.New(w.Message)
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

// Args of the calls.
type (
	instancesArgs struct {
		Tokens []string `json:"tokens"`
	}
	regionIDArgs struct {
		Region   string `json:"region"`
		ID       string `json:"id"`
		Instance string `json:"instance,omitempty"`
		Device   string `json:"device,omitempty"`
	}
	volumesArgs struct {
		Tokens []string    `json:"tokens,omitempty"`
		IDs    []VolumeRef `json:"ids,omitempty"`
	}
)

// FindProgram finds dstack-provider-aws: beside this program, else on
// PATH.
func FindProgram() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), Program)
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(Program); err == nil {
		return p, nil
	}
	where := "this dstack's directory"
	if exe != "" {
		where = filepath.Dir(exe)
	}
	return "", fmt.Errorf("the aws backend runs in its own program, %s, which is neither in %s nor on PATH: install it beside dstack (make build puts it in bin/; or go build -o DIR ./cmd/%s)", Program, where, Program)
}

// Process is a Cloud served by dstack-provider-aws. It is safe for
// concurrent use.
type Process struct {
	cmd *exec.Cmd
	in  io.WriteCloser

	mu      sync.Mutex // guards what follows, and writes to in
	enc     *json.Encoder
	nextID  uint64
	pending map[uint64]chan *procResponse
	dead    error

	stderr *tailBuffer
	done   chan struct{}
}

var _ Cloud = (*Process)(nil)

// StartProcess runs cmd (its standard streams unset) and opens the cloud
// with settings in it.
func StartProcess(ctx context.Context, cmd *exec.Cmd, s Settings) (*Process, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, in: in, enc: json.NewEncoder(in), pending: map[uint64]chan *procResponse{},
		stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go p.read(out)
	if err := p.call(ctx, opOpen, s, nil); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close ends the process: its input ends and it exits (it is killed
// after 10 s).
func (p *Process) Close() error {
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

func (p *Process) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var err error
	for sc.Scan() {
		var resp procResponse
		if err = json.Unmarshal(sc.Bytes(), &resp); err != nil {
			err = fmt.Errorf("%s answered something that is not a response: %q", Program, sc.Bytes())
			_ = p.cmd.Process.Kill()
			break
		}
		p.mu.Lock()
		ch := p.pending[resp.ID]
		delete(p.pending, resp.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- &resp
		}
	}
	if err == nil {
		err = sc.Err()
	}
	_, _ = io.Copy(io.Discard, out)
	werr := p.cmd.Wait()
	if err == nil {
		err = fmt.Errorf("%s exited", Program)
		if werr != nil {
			err = fmt.Errorf("%s exited: %w", Program, werr)
		}
	}
	defer close(p.done)
	p.mu.Lock()
	p.dead = fmt.Errorf("%w%s", err, p.stderr.suffix())
	for id, ch := range p.pending {
		close(ch)
		delete(p.pending, id)
	}
	p.mu.Unlock()
}

// call sends op with args and decodes its result into result (when not
// nil), or returns its error.
func (p *Process) call(ctx context.Context, op string, args, result any) error {
	req := procRequest{Op: op}
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
	ch := make(chan *procResponse, 1)
	p.mu.Lock()
	if p.dead != nil {
		p.mu.Unlock()
		return p.dead
	}
	p.nextID++
	req.ID = p.nextID
	p.pending[req.ID] = ch
	err := p.enc.Encode(&req)
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("talking to %s: %w", Program, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.dead
		}
		if resp.Err != nil {
			return resp.Err.err()
		}
		if result != nil && len(resp.Result) > 0 {
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.pending, req.ID)
		_ = p.enc.Encode(&procRequest{ID: req.ID, Op: opCancel})
		p.mu.Unlock()
		return ctx.Err()
	}
}

// Offers implements Cloud.
func (p *Process) Offers(ctx context.Context) ([]offers.Offer, error) {
	var out []offers.Offer
	err := p.call(ctx, opOffers, nil, &out)
	return out, err
}

// Launch implements Cloud.
func (p *Process) Launch(ctx context.Context, req LaunchRequest) (Instance, error) {
	var out Instance
	err := p.call(ctx, opLaunch, req, &out)
	return out, err
}

// Instances implements Cloud.
func (p *Process) Instances(ctx context.Context, tokens []string) ([]Instance, error) {
	var out []Instance
	err := p.call(ctx, opInstances, instancesArgs{Tokens: tokens}, &out)
	return out, err
}

// Terminate implements Cloud.
func (p *Process) Terminate(ctx context.Context, region, id string) error {
	return p.call(ctx, opTerminate, regionIDArgs{Region: region, ID: id}, nil)
}

// CreateVolume implements Cloud.
func (p *Process) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	var out Volume
	err := p.call(ctx, opCreateVolume, req, &out)
	return out, err
}

// Volumes implements Cloud.
func (p *Process) Volumes(ctx context.Context, tokens []string, ids []VolumeRef) ([]Volume, error) {
	var out []Volume
	err := p.call(ctx, opVolumes, volumesArgs{Tokens: tokens, IDs: ids}, &out)
	return out, err
}

// AttachVolume implements Cloud.
func (p *Process) AttachVolume(ctx context.Context, region, volumeID, instanceID, device string) error {
	return p.call(ctx, opAttach, regionIDArgs{Region: region, ID: volumeID, Instance: instanceID, Device: device}, nil)
}

// DetachVolume implements Cloud.
func (p *Process) DetachVolume(ctx context.Context, region, volumeID string) error {
	return p.call(ctx, opDetach, regionIDArgs{Region: region, ID: volumeID}, nil)
}

// DeleteVolume implements Cloud.
func (p *Process) DeleteVolume(ctx context.Context, region, volumeID string) error {
	return p.call(ctx, opDeleteVolume, regionIDArgs{Region: region, ID: volumeID}, nil)
}

// ConsoleOutput implements Cloud.
func (p *Process) ConsoleOutput(ctx context.Context, region, instanceID string) (string, error) {
	var out string
	err := p.call(ctx, opConsole, regionIDArgs{Region: region, ID: instanceID}, &out)
	return out, err
}

// Serve serves a Cloud on r and w (dstack-provider-aws's standard input
// and output) until r ends: open makes the cloud from the settings the
// first message carries.
func Serve(r io.Reader, w io.Writer, open func(context.Context, Settings) (Cloud, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var (
		wmu     sync.Mutex
		enc     = json.NewEncoder(w)
		cmu     sync.Mutex
		cancels = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
		cloud   Cloud
	)
	send := func(resp *procResponse) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(resp)
	}
	for sc.Scan() {
		var req procRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("a message that is not a request: %w", err)
		}
		if req.Op == opCancel {
			cmu.Lock()
			if c := cancels[req.ID]; c != nil {
				c()
			}
			cmu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		if req.Deadline != nil {
			ctx, cancel = context.WithDeadline(context.Background(), *req.Deadline)
		}
		if req.Op == opOpen {
			var s Settings
			err := json.Unmarshal(req.Args, &s)
			if err == nil {
				cloud, err = open(ctx, s)
			}
			cancel()
			resp := &procResponse{ID: req.ID}
			if err != nil {
				resp.Err = toWire(err)
			}
			send(resp)
			continue
		}
		if cloud == nil {
			cancel()
			send(&procResponse{ID: req.ID, Err: &wireError{Message: "the cloud is not open"}})
			continue
		}
		cmu.Lock()
		cancels[req.ID] = cancel
		cmu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			result, err := dispatch(ctx, cloud, req)
			cmu.Lock()
			delete(cancels, req.ID)
			cmu.Unlock()
			cancel()
			resp := &procResponse{ID: req.ID}
			if err != nil {
				resp.Err = toWire(err)
			} else if result != nil {
				b, merr := json.Marshal(result)
				if merr != nil {
					resp.Err = toWire(merr)
				}
				resp.Result = b
			}
			send(resp)
		}()
	}
	wg.Wait()
	return sc.Err()
}

func dispatch(ctx context.Context, c Cloud, req procRequest) (any, error) {
	decode := func(v any) error {
		if err := json.Unmarshal(req.Args, v); err != nil {
			return fmt.Errorf("%s: bad arguments: %w", req.Op, err)
		}
		return nil
	}
	switch req.Op {
	case opOffers:
		return c.Offers(ctx)
	case opLaunch:
		var a LaunchRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Launch(ctx, a)
	case opInstances:
		var a instancesArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Instances(ctx, a.Tokens)
	case opTerminate:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.Terminate(ctx, a.Region, a.ID)
	case opCreateVolume:
		var a VolumeRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.CreateVolume(ctx, a)
	case opVolumes:
		var a volumesArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Volumes(ctx, a.Tokens, a.IDs)
	case opAttach:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.AttachVolume(ctx, a.Region, a.ID, a.Instance, a.Device)
	case opDetach:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.DetachVolume(ctx, a.Region, a.ID)
	case opDeleteVolume:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.DeleteVolume(ctx, a.Region, a.ID)
	case opConsole:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.ConsoleOutput(ctx, a.Region, a.ID)
	}
	return nil, fmt.Errorf("unknown operation %q", req.Op)
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
