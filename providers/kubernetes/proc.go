package kubernetes

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
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/providers"
)

// Program is the program that serves the kubernetes backend's Cluster.
const Program = "dstack-provider-kubernetes"

// The protocol between dstack and dstack-provider-kubernetes is the aws
// program's: newline-delimited JSON on the program's standard input and
// output; the first message opens the cluster with the Settings, every
// later one is a call with an ID, answered by a message with that ID.
// Calls run concurrently, each with its context's deadline, and a cancel
// message when the context ends. The program exits when its input ends.

const (
	opOpen         = "open"
	opCancel       = "cancel"
	opNodes        = "nodes"
	opCreateJob    = "create-job"
	opJobs         = "jobs"
	opDeleteJob    = "delete-job"
	opLogs         = "logs"
	opCreateVolume = "create-volume"
	opVolumes      = "volumes"
	opDeleteVolume = "delete-volume"
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

type wireError struct {
	Message    string         `json:"message"`
	Code       providers.Code `json:"code,omitempty"`
	RetryAfter time.Duration  `json:"retry_after,omitempty"`
	Canceled   bool           `json:"canceled,omitempty"`
	Deadline   bool           `json:"deadline,omitempty"`
}

func toWire(err error) *wireError {
	w := &wireError{Message: err.Error()}
	var pe *providers.Error
	if errors.As(err, &pe) {
		w.Code, w.RetryAfter = pe.Code, pe.RetryAfter
		if pe.Err != nil {
			w.Message = pe.Err.Error()
		}
	}
	w.Canceled = errors.Is(err, context.Canceled)
	w.Deadline = errors.Is(err, context.DeadlineExceeded)
	return w
}

func (w *wireError) err() error {
	inner := errors.New(w.Message)
	switch {
	case w.Canceled:
		inner = fmt.Errorf("%s: %w", w.Message, context.Canceled)
	case w.Deadline:
		inner = fmt.Errorf("%s: %w", w.Message, context.DeadlineExceeded)
	}
	if w.Code != "" {
		return &providers.Error{Code: w.Code, RetryAfter: w.RetryAfter, Err: inner}
	}
	return inner
}

type (
	tokensArgs struct {
		Tokens []string `json:"tokens"`
	}
	nameArgs struct {
		Name  string `json:"name"`
		Grace *int64 `json:"grace,omitempty"`
		Since int64  `json:"since,omitempty"`
	}
)

// FindProgram finds dstack-provider-kubernetes: beside this program,
// else on PATH.
func FindProgram() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), Program)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(Program); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the kubernetes backend runs in its own program, %s, which is neither beside dstack nor on PATH: install it beside dstack (make build puts it in bin/; or go build -o DIR ./cmd/%s)", Program, Program)
}

// Process is a Cluster served by dstack-provider-kubernetes. It is safe
// for concurrent use.
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

var _ Cluster = (*Process)(nil)

// StartProcess runs cmd (its standard streams unset) and opens the
// cluster of settings in it.
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

// Nodes implements Cluster.
func (p *Process) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := p.call(ctx, opNodes, nil, &out)
	return out, err
}

// CreateJob implements Cluster.
func (p *Process) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	var out Job
	err := p.call(ctx, opCreateJob, req, &out)
	return out, err
}

// Jobs implements Cluster.
func (p *Process) Jobs(ctx context.Context, tokens []string) ([]Job, error) {
	var out []Job
	err := p.call(ctx, opJobs, tokensArgs{Tokens: tokens}, &out)
	return out, err
}

// DeleteJob implements Cluster.
func (p *Process) DeleteJob(ctx context.Context, name string, grace *int64) error {
	return p.call(ctx, opDeleteJob, nameArgs{Name: name, Grace: grace}, nil)
}

// Logs implements Cluster.
func (p *Process) Logs(ctx context.Context, name string, since int64) (LogChunk, error) {
	var out LogChunk
	err := p.call(ctx, opLogs, nameArgs{Name: name, Since: since}, &out)
	return out, err
}

// CreateVolume implements Cluster.
func (p *Process) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	var out Volume
	err := p.call(ctx, opCreateVolume, req, &out)
	return out, err
}

// Volumes implements Cluster.
func (p *Process) Volumes(ctx context.Context, tokens []string) ([]Volume, error) {
	var out []Volume
	err := p.call(ctx, opVolumes, tokensArgs{Tokens: tokens}, &out)
	return out, err
}

// DeleteVolume implements Cluster.
func (p *Process) DeleteVolume(ctx context.Context, name string) error {
	return p.call(ctx, opDeleteVolume, nameArgs{Name: name}, nil)
}

// Serve serves a Cluster on r and w (the program's standard input and
// output) until r ends: open makes the cluster from the settings the
// first message carries.
func Serve(r io.Reader, w io.Writer, open func(context.Context, Settings) (Cluster, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var (
		wmu     sync.Mutex
		enc     = json.NewEncoder(w)
		cmu     sync.Mutex
		cancels = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
		cluster Cluster
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
				cluster, err = open(ctx, s)
			}
			cancel()
			resp := &procResponse{ID: req.ID}
			if err != nil {
				resp.Err = toWire(err)
			}
			send(resp)
			continue
		}
		if cluster == nil {
			cancel()
			send(&procResponse{ID: req.ID, Err: &wireError{Message: "the cluster is not open"}})
			continue
		}
		cmu.Lock()
		cancels[req.ID] = cancel
		cmu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			result, err := dispatch(ctx, cluster, req)
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

func dispatch(ctx context.Context, c Cluster, req procRequest) (any, error) {
	decode := func(v any) error {
		if err := json.Unmarshal(req.Args, v); err != nil {
			return fmt.Errorf("%s: bad arguments: %w", req.Op, err)
		}
		return nil
	}
	var (
		tokens tokensArgs
		name   nameArgs
	)
	switch req.Op {
	case opNodes:
		return c.Nodes(ctx)
	case opCreateJob:
		var a JobRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.CreateJob(ctx, a)
	case opJobs:
		if err := decode(&tokens); err != nil {
			return nil, err
		}
		return c.Jobs(ctx, tokens.Tokens)
	case opDeleteJob:
		if err := decode(&name); err != nil {
			return nil, err
		}
		return nil, c.DeleteJob(ctx, name.Name, name.Grace)
	case opLogs:
		if err := decode(&name); err != nil {
			return nil, err
		}
		return c.Logs(ctx, name.Name, name.Since)
	case opCreateVolume:
		var a VolumeRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.CreateVolume(ctx, a)
	case opVolumes:
		if err := decode(&tokens); err != nil {
			return nil, err
		}
		return c.Volumes(ctx, tokens.Tokens)
	case opDeleteVolume:
		if err := decode(&name); err != nil {
			return nil, err
		}
		return nil, c.DeleteVolume(ctx, name.Name)
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

// envNames are the variables the program reads: the kubeconfig's path,
// and HOME for ~/.kube/config.
var envNames = []string{"KUBECONFIG", "HOME"}

// ProcessCluster is the Cluster of settings in dstack-provider-kubernetes,
// started on the first call; it runs with this process's environment,
// KUBECONFIG and HOME as lookup finds them.
func ProcessCluster(s Settings, lookup func(string) (string, bool)) Cluster {
	return &lazyCluster{start: func(ctx context.Context) (Cluster, error) {
		prog, err := FindProgram()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(prog)
		env := os.Environ()
		if lookup != nil {
			for _, name := range envNames {
				kept := env[:0]
				for _, kv := range env {
					if !strings.HasPrefix(kv, name+"=") {
						kept = append(kept, kv)
					}
				}
				env = kept
				if v, ok := lookup(name); ok {
					env = append(env, name+"="+v)
				}
			}
		}
		cmd.Env = env
		return StartProcess(ctx, cmd, s)
	}}
}

// lazyCluster starts its Cluster on first use.
type lazyCluster struct {
	start func(context.Context) (Cluster, error)

	mu sync.Mutex
	c  Cluster
}

func (l *lazyCluster) get(ctx context.Context) (Cluster, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	c, err := l.start(ctx)
	if err != nil {
		return nil, err
	}
	l.c = c
	return c, nil
}

// Close closes the program when it was started.
func (l *lazyCluster) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (l *lazyCluster) Nodes(ctx context.Context) ([]Node, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Nodes(ctx)
}

func (l *lazyCluster) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	c, err := l.get(ctx)
	if err != nil {
		return Job{}, err
	}
	return c.CreateJob(ctx, req)
}

func (l *lazyCluster) Jobs(ctx context.Context, tokens []string) ([]Job, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Jobs(ctx, tokens)
}

func (l *lazyCluster) DeleteJob(ctx context.Context, name string, grace *int64) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.DeleteJob(ctx, name, grace)
}

func (l *lazyCluster) Logs(ctx context.Context, name string, since int64) (LogChunk, error) {
	c, err := l.get(ctx)
	if err != nil {
		return LogChunk{}, err
	}
	return c.Logs(ctx, name, since)
}

func (l *lazyCluster) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	c, err := l.get(ctx)
	if err != nil {
		return Volume{}, err
	}
	return c.CreateVolume(ctx, req)
}

func (l *lazyCluster) Volumes(ctx context.Context, tokens []string) ([]Volume, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Volumes(ctx, tokens)
}

func (l *lazyCluster) DeleteVolume(ctx context.Context, name string) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.DeleteVolume(ctx, name)
}
