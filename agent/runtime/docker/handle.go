package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/inventory"
)

// logDrainTimeout bounds how long Wait waits, once the container has
// exited, for the rest of its output to reach the log file while none
// arrives.
const logDrainTimeout = 30 * time.Second

// Handle is a job's container. Start and Reattach return one (as an
// agent.Handle).
type Handle struct {
	rt      *Runtime
	id      string
	spec    agent.JobSpec
	ports   []agent.PortBinding
	logPath string
	direct  bool // the container writes logPath itself (see direct.go)

	logMu sync.Mutex
	logs  *logFollower // copies the Engine's log into logPath; nil when none does

	drainMu sync.Mutex
	drained bool // a direct job's Engine log has been copied

	mu      sync.Mutex
	lastCPU *cpuSample
}

var (
	_ agent.Handle   = (*Handle)(nil)
	_ agent.Detacher = (*Handle)(nil)
)

// handle is the name the rest of the package uses.
type handle = Handle

// ContainerID is the ID of the job's container.
func (h *Handle) ContainerID() string { return h.id }

// Detach stops following the container's output and lets the handle go,
// leaving the container as it is (agent.Detacher): what an agent that
// shuts down does, so that the next one reattaches. The log's cursor stays
// where the last batch written left it. A container that writes its log
// file itself goes on doing so.
func (h *Handle) Detach() {
	if f := h.follower(); f != nil {
		f.close()
	}
}

func (h *Handle) follower() *logFollower {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs
}

func (h *Handle) setFollower(f *logFollower) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	h.logs = f
}

// Ports are the job's port bindings with the host ports Docker chose.
func (h *Handle) Ports() []agent.PortBinding { return slices.Clone(h.ports) }

// Wait waits until the container exits and its output is in the log file,
// and returns its exit code and why it ended: "exit code N", "OOM killed",
// "killed by signal 9" and the like, or the Engine's error when
// the container could not run its process.
func (h *Handle) Wait(ctx context.Context) (int, string, error) {
	for {
		statusCh, errCh := h.rt.cli.ContainerWait(ctx, h.id, container.WaitConditionNotRunning)
		var werr error
		select {
		case <-statusCh:
		case werr = <-errCh:
		}
		if ctx.Err() != nil {
			return -1, "", ctx.Err()
		}
		if werr != nil {
			// The wait request broke (the Engine restarted?): see whether
			// the container is still there and still running.
			insp, err := h.rt.cli.ContainerInspect(ctx, h.id)
			if err != nil {
				if cerrdefs.IsNotFound(err) {
					return -1, "", fmt.Errorf("docker: container %s is gone", shortID(h.id))
				}
				return -1, "", fmt.Errorf("docker: waiting for container %s: %w", shortID(h.id), werr)
			}
			if insp.State.Running || insp.State.Restarting {
				select {
				case <-ctx.Done():
					return -1, "", ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
		}
		break
	}
	if h.direct {
		// The container's processes have all exited, so their output is
		// in the file. What the Engine logged besides (normally nothing)
		// is appended as well as can be: failing to copy it does not make
		// the job's end unknown.
		if err := h.drainEngineLog(ctx); err != nil && ctx.Err() != nil {
			return -1, "", ctx.Err()
		}
	} else if err := h.drainLogs(ctx); err != nil {
		return -1, "", err
	}
	insp, err := h.rt.cli.ContainerInspect(ctx, h.id)
	if err != nil {
		return -1, "", fmt.Errorf("docker: inspecting container %s: %w", shortID(h.id), err)
	}
	st := insp.State
	return st.ExitCode, exitReason(st.ExitCode, st.OOMKilled, st.Error), nil
}

// drainLogs waits until the log follower has written all of the stopped
// container's output, or has written nothing for logDrainTimeout.
func (h *Handle) drainLogs(ctx context.Context) error {
	f := h.follower()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, idle := f.written.Load(), time.Duration(0)
	for {
		select {
		case <-f.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if n := f.written.Load(); n != last {
				last, idle = n, 0
			} else if idle += time.Second; idle >= logDrainTimeout {
				return nil
			}
		}
	}
}

// exitReason explains how a container ended.
func exitReason(code int, oom bool, engineErr string) string {
	switch {
	case oom:
		return "OOM killed"
	case engineErr != "":
		return engineErr
	case code > 128 && code < 128+32:
		// Docker reports a process killed by signal N as exit code 128+N
		// (so does a shell for its children).
		return fmt.Sprintf("killed by signal %d", code-128)
	default:
		return fmt.Sprintf("exit code %d", code)
	}
}

// Stop sends the container SIGTERM (or its image's stop signal) and, if it
// has not exited after grace, SIGKILL. A negative grace uses the job's
// stop_grace_seconds (Docker's 10 s when unset). Stopping a container that
// has exited or is gone is not an error.
func (h *Handle) Stop(ctx context.Context, grace time.Duration) error {
	opts := container.StopOptions{}
	if grace >= 0 {
		t := int(math.Ceil(grace.Seconds()))
		opts.Timeout = &t
	}
	err := h.rt.cli.ContainerStop(ctx, h.id, opts)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: stopping container %s: %w", shortID(h.id), err)
	}
	return nil
}

// Remove removes the container, killing it if it still runs, and its
// anonymous volumes; named volumes stay. The log file stays; its cursor
// goes.
func (h *Handle) Remove(ctx context.Context) error {
	if f := h.follower(); f != nil {
		f.close()
	}
	err := h.rt.removeContainer(ctx, h.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil {
		return fmt.Errorf("docker: removing container %s: %w", shortID(h.id), err)
	}
	os.Remove(h.logPath + CursorSuffix)
	return nil
}

type cpuSample struct {
	at            time.Time
	total, system uint64
	online        uint32
}

// Metrics samples the container's CPU and memory use, and its GPUs' from
// nvidia-smi. CPU is the share of
// one core used since the previous call (100 = one full core); the first
// call takes two samples 200 ms apart.
func (h *Handle) Metrics(ctx context.Context) (agent.Metrics, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := h.stats(ctx)
	if err != nil {
		return agent.Metrics{}, err
	}
	prev := h.lastCPU
	if prev == nil || time.Since(prev.at) > time.Minute {
		first := sampleOf(s)
		select {
		case <-ctx.Done():
			return agent.Metrics{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if s, err = h.stats(ctx); err != nil {
			return agent.Metrics{}, err
		}
		prev = &first
	}
	cur := sampleOf(s)
	h.lastCPU = &cur
	m := metricsOf(s, *prev, cur)
	if len(h.spec.GPUs) > 0 {
		// The Engine's stats have no GPUs: nvidia-smi reports the
		// host's, of which the job's are picked.
		usage, err := inventory.NvidiaUsage(ctx)
		if err != nil {
			return agent.Metrics{}, fmt.Errorf("docker: GPU metrics of container %s: %w", shortID(h.id), err)
		}
		m.GPUs = inventory.JobGPUs(h.spec.GPUs, usage)
	}
	return m, nil
}

func (h *Handle) stats(ctx context.Context) (container.StatsResponse, error) {
	var s container.StatsResponse
	r, err := h.rt.cli.ContainerStatsOneShot(ctx, h.id)
	if err != nil {
		return s, fmt.Errorf("docker: stats of container %s: %w", shortID(h.id), err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("docker: stats of container %s: %w", shortID(h.id), err)
	}
	return s, nil
}

func sampleOf(s container.StatsResponse) cpuSample {
	at := s.Read
	if at.IsZero() {
		at = time.Now()
	}
	return cpuSample{at: at, total: s.CPUStats.CPUUsage.TotalUsage, system: s.CPUStats.SystemUsage, online: s.CPUStats.OnlineCPUs}
}

// cpuPercent is the CPU used between two samples, in percent of one core.
func cpuPercent(prev, cur cpuSample) float64 {
	if cur.total < prev.total {
		return 0
	}
	used := float64(cur.total - prev.total)
	if cur.system > prev.system && cur.online > 0 {
		// Docker's own formula (docker stats): the container's share of
		// the host's CPU time, times the host's CPUs.
		return used / float64(cur.system-prev.system) * float64(cur.online) * 100
	}
	if wall := cur.at.Sub(prev.at); wall > 0 {
		return used / float64(wall.Nanoseconds()) * 100
	}
	return 0
}

// memoryUsed is the container's memory use without the page cache it could
// give back, as docker stats counts it.
func memoryUsed(m container.MemoryStats) uint64 {
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := m.Stats[k]; ok && v < m.Usage {
			return m.Usage - v
		}
	}
	return m.Usage
}

func metricsOf(s container.StatsResponse, prev, cur cpuSample) agent.Metrics {
	return agent.Metrics{
		CPUPercent: cpuPercent(prev, cur),
		MemoryMB:   int64(memoryUsed(s.MemoryStats) / (1 << 20)),
	}
}

// Exec runs a command in the container (docker exec), with a terminal
// when asked for one: as the job's user, in its working directory, with
// the container's environment (the job's; the agent's never enters it).
func (h *Handle) Exec(ctx context.Context, req agent.ExecRequest, stdin io.Reader, stdout io.Writer) (int, error) {
	cli := h.rt.cli
	created, err := cli.ContainerExecCreate(ctx, h.id, container.ExecOptions{Cmd: req.Command, Tty: req.TTY,
		User: h.spec.User, WorkingDir: h.spec.WorkingDir,
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, fmt.Errorf("docker exec: %w", err)
	}
	att, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: req.TTY})
	if err != nil {
		return 0, fmt.Errorf("docker exec: attaching: %w", err)
	}
	defer att.Close()
	go func() {
		_, _ = io.Copy(att.Conn, stdin)
		_ = att.CloseWrite()
	}()
	if req.TTY {
		_, err = io.Copy(stdout, att.Reader)
	} else {
		_, err = stdcopy.StdCopy(stdout, stdout, att.Reader)
	}
	if err != nil && ctx.Err() == nil {
		return 0, fmt.Errorf("docker exec: reading output: %w", err)
	}
	ins, err := cli.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return 0, fmt.Errorf("docker exec: %w", err)
	}
	return ins.ExitCode, nil
}

// removeContainer force-removes container id. A removal already under
// way (the Engine answers "removal of container ... is already in
// progress" to a second caller, say apply's delete beside the agent's own
// clean-up) is waited for: the container is gone when this returns nil.
func (r *Runtime) removeContainer(ctx context.Context, id string, opts container.RemoveOptions) error {
	for {
		err := r.cli.ContainerRemove(ctx, id, opts)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if !strings.Contains(err.Error(), "is already in progress") {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting for the other removal: %w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
