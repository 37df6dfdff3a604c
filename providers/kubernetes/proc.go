package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/providers/providerproc"
)

// Program is the program that serves the kubernetes backend's Cluster.
const Program = "dstack-provider-kubernetes"

// dstack speaks to dstack-provider-kubernetes through providerproc, as
// to the aws program: calls with IDs as newline-delimited JSON on the
// program's standard input and output, the first opening the cluster
// with the Settings. The program exits when its input ends.

const (
	opNodes        = "nodes"
	opCreateJob    = "create-job"
	opJobs         = "jobs"
	opDeleteJob    = "delete-job"
	opLogs         = "logs"
	opCreateVolume = "create-volume"
	opVolumes      = "volumes"
	opDeleteVolume = "delete-volume"
)

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
	return providerproc.FindProgram(Program, "kubernetes")
}

// Process is a Cluster served by dstack-provider-kubernetes. It is safe
// for concurrent use.
type Process struct {
	c *providerproc.Client
}

var _ Cluster = (*Process)(nil)

// StartProcess runs cmd (its standard streams unset) and opens the
// cluster of settings in it.
func StartProcess(ctx context.Context, cmd *exec.Cmd, s Settings) (*Process, error) {
	c, err := providerproc.Start(ctx, cmd, s)
	if err != nil {
		return nil, err
	}
	return &Process{c: c}, nil
}

// Close ends the process: its input ends and it exits (it is killed
// after 10 s).
func (p *Process) Close() error {
	return p.c.Close()
}

// Nodes implements Cluster.
func (p *Process) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := p.c.Call(ctx, opNodes, nil, &out)
	return out, err
}

// CreateJob implements Cluster.
func (p *Process) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	var out Job
	err := p.c.Call(ctx, opCreateJob, req, &out)
	return out, err
}

// Jobs implements Cluster.
func (p *Process) Jobs(ctx context.Context, tokens []string) ([]Job, error) {
	var out []Job
	err := p.c.Call(ctx, opJobs, tokensArgs{Tokens: tokens}, &out)
	return out, err
}

// DeleteJob implements Cluster.
func (p *Process) DeleteJob(ctx context.Context, name string, grace *int64) error {
	return p.c.Call(ctx, opDeleteJob, nameArgs{Name: name, Grace: grace}, nil)
}

// Logs implements Cluster.
func (p *Process) Logs(ctx context.Context, name string, since int64) (LogChunk, error) {
	var out LogChunk
	err := p.c.Call(ctx, opLogs, nameArgs{Name: name, Since: since}, &out)
	return out, err
}

// CreateVolume implements Cluster.
func (p *Process) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	var out Volume
	err := p.c.Call(ctx, opCreateVolume, req, &out)
	return out, err
}

// Volumes implements Cluster.
func (p *Process) Volumes(ctx context.Context, tokens []string) ([]Volume, error) {
	var out []Volume
	err := p.c.Call(ctx, opVolumes, tokensArgs{Tokens: tokens}, &out)
	return out, err
}

// DeleteVolume implements Cluster.
func (p *Process) DeleteVolume(ctx context.Context, name string) error {
	return p.c.Call(ctx, opDeleteVolume, nameArgs{Name: name}, nil)
}

// Serve serves a Cluster on r and w (the program's standard input and
// output) until r ends: open makes the cluster from the settings the
// first message carries.
func Serve(r io.Reader, w io.Writer, open func(context.Context, Settings) (Cluster, error)) error {
	return providerproc.ServeProvider(r, w, open, dispatch)
}

func dispatch(ctx context.Context, c Cluster, op string, args json.RawMessage) (any, error) {
	decode := func(v any) error { return providerproc.Decode(op, args, v) }
	var (
		tokens tokensArgs
		name   nameArgs
	)
	switch op {
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
	return nil, fmt.Errorf("unknown operation %q", op)
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
