package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/inventory"
)

// pollInterval is how often a re-attached job's process is looked up in
// /proc while waiting for it to end.
const pollInterval = 100 * time.Millisecond

// killWait is how long Stop waits, after SIGKILL to the job's processes,
// for the wrapper to record the exit code before it kills the wrapper too.
const killWait = 2 * time.Second

// proc is the Handle of one host job: the wrapper process, the leader of
// the job's process group.
type proc struct {
	r    *Runtime
	gpus []string
	// user and env are the spec's, for the commands run in the job.
	user  string
	env   map[string]string
	dir   string
	st    procState
	ports []agent.PortBinding

	// exited is closed once the agent's child is reaped; nil for a
	// re-attached process, which only /proc can tell about.
	exited    chan struct{}
	exitState *os.ProcessState // set before exited is closed
	// killedWrapper is set when Stop had to SIGKILL the wrapper itself.
	killedWrapper atomic.Bool

	mu   sync.Mutex
	last cpuSample // the previous Metrics call's
}

type cpuSample struct {
	ticks uint64
	at    time.Time
}

func (r *Runtime) newProc(spec agent.JobSpec, dir string, st procState, ports []agent.PortBinding) *proc {
	return &proc{r: r, gpus: slices.Clone(spec.GPUs), user: spec.User, env: maps.Clone(spec.Env), dir: dir, st: st, ports: ports}
}

func (p *proc) exitPath() string { return filepath.Join(p.dir, "exit") }

// alive reports whether the wrapper still runs: the same PID with the same
// start time in the same boot, and not a zombie.
func (p *proc) alive() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
		}
	}
	if p.st.BootID != "" && p.r.bootID != "" && p.st.BootID != p.r.bootID {
		return false
	}
	s, err := readStat(p.st.PID)
	return err == nil && s.startTime == p.st.StartTime && s.live()
}

// waitExit blocks until the wrapper has ended or ctx ends.
func (p *proc) waitExit(ctx context.Context) error {
	if p.exited != nil {
		select {
		case <-p.exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for p.alive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// waitExitFor is waitExit for at most d.
func (p *proc) waitExitFor(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.waitExit(ctx)
}

// Wait blocks until the job ends. The job ends with its wrapper; processes
// it left behind in its group are killed then, as a container's would be,
// so that a finished job holds no GPU and writes no more output.
func (p *proc) Wait(ctx context.Context) (int, string, error) {
	if err := p.waitExit(ctx); err != nil {
		return 0, "", err
	}
	p.killGroup()
	return p.result()
}

// result reads the exit code the wrapper recorded, or failing that what
// wait(2) said, or what Stop did.
func (p *proc) result() (int, string, error) {
	if data, err := os.ReadFile(p.exitPath()); err == nil {
		if code, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return code, reason(code), nil
		}
	}
	if p.exitState != nil {
		if ws, ok := p.exitState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), fmt.Sprintf("killed by signal %d", ws.Signal()), nil
		}
		code := p.exitState.ExitCode()
		return code, reason(code), nil
	}
	if p.killedWrapper.Load() {
		return 137, reason(137), nil
	}
	return 0, "", errors.New("the process ended without recording its exit code")
}

// reason describes an exit code as a shell reports it: 128+N is a process
// killed by signal N.
func reason(code int) string {
	if code > 128 && code < 128+65 {
		return fmt.Sprintf("killed by signal %d", code-128)
	}
	return fmt.Sprintf("exit code %d", code)
}

// Stop sends SIGTERM to the job's process group and gives it grace to
// end. Then it SIGKILLs every process of the group but the wrapper, which
// records the exit code (137) and exits; only if it does not, the wrapper
// is killed too. Stop returns once the job has ended.
func (p *proc) Stop(ctx context.Context, grace time.Duration) error {
	if p.alive() {
		p.signal(syscall.SIGTERM)
		if grace > 0 {
			p.waitExitFor(ctx, grace)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	for deadline := time.Now().Add(killWait); p.alive() && time.Now().Before(deadline); {
		if members, err := groupMembers(p.st.PID, p.st.StartTime); err == nil {
			for _, m := range members {
				if m.pid != p.st.PID {
					syscall.Kill(m.pid, syscall.SIGKILL)
				}
			}
		}
		p.waitExitFor(ctx, 20*time.Millisecond)
	}
	if p.alive() {
		p.killedWrapper.Store(true)
		syscall.Kill(-p.st.PID, syscall.SIGKILL)
		if err := p.waitExit(ctx); err != nil {
			return err
		}
		// Record what the wrapper could not, for an agent that restarts.
		if _, err := os.Stat(p.exitPath()); err != nil {
			renameio.WriteFile(p.exitPath(), []byte("137\n"), 0o600)
		}
	}
	p.killGroup()
	return nil
}

// signal sends sig to the job's process group: through the group ID while
// the wrapper lives (the kernel does not reuse the ID of a live leader),
// and to each remaining member by PID after.
func (p *proc) signal(sig syscall.Signal) {
	if p.alive() {
		syscall.Kill(-p.st.PID, sig)
		return
	}
	members, _ := groupMembers(p.st.PID, p.st.StartTime)
	for _, m := range members {
		syscall.Kill(m.pid, sig)
	}
}

// killGroup SIGKILLs whatever is left of the job's process group.
func (p *proc) killGroup() {
	for range 10 { // a forking process may add members while they die
		members, err := groupMembers(p.st.PID, p.st.StartTime)
		if err != nil || len(members) == 0 {
			return
		}
		for _, m := range members {
			syscall.Kill(m.pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Remove stops what is left of the job and deletes its directory (with the
// default working directory) and its volume links; an absolute working
// directory stays.
func (p *proc) Remove(ctx context.Context) error {
	if err := p.Stop(ctx, 0); err != nil {
		return err
	}
	if err := removeLinks(p.st.Links); err != nil {
		return err
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("remove job dir: %w", err)
	}
	return nil
}

// Metrics sums the CPU time and resident memory of the job's process
// group, and reads its GPUs' use from nvidia-smi. CPU use is measured since
// the previous call, or over 200ms when there was none in the last minute.
func (p *proc) Metrics(ctx context.Context) (agent.Metrics, error) {
	sample := func() (cpuSample, int64, error) {
		members, err := groupMembers(p.st.PID, p.st.StartTime)
		if err != nil {
			return cpuSample{}, 0, err
		}
		s := cpuSample{at: time.Now()}
		var rss int64
		for _, m := range members {
			s.ticks += m.stat.ticks
			rss += m.stat.rssPages
		}
		return s, rss, nil
	}
	cur, rss, err := sample()
	if err != nil {
		return agent.Metrics{}, err
	}
	p.mu.Lock()
	prev := p.last
	p.mu.Unlock()
	if age := cur.at.Sub(prev.at); prev.at.IsZero() || age > time.Minute || age < 100*time.Millisecond {
		prev = cur
		select {
		case <-ctx.Done():
			return agent.Metrics{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if cur, rss, err = sample(); err != nil {
			return agent.Metrics{}, err
		}
	}
	p.mu.Lock()
	p.last = cur
	p.mu.Unlock()

	m := agent.Metrics{MemoryMB: rss * int64(os.Getpagesize()) >> 20}
	if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 && cur.ticks > prev.ticks {
		m.CPUPercent = float64(cur.ticks-prev.ticks) / p.r.clkTck / dt * 100
	}
	if len(p.gpus) > 0 {
		usage, err := p.r.gpuUsage(ctx)
		if err != nil {
			p.r.log.Warn("GPU metrics", "err", err)
		}
		m.GPUs = inventory.JobGPUs(p.gpus, usage)
	}
	return m, nil
}

// Ports are the job's ports, bound by the job itself.
func (p *proc) Ports() []agent.PortBinding { return slices.Clone(p.ports) }

var _ agent.Handle = (*proc)(nil)

// removeLinks removes the volume links a job made, where they still are
// links.
func removeLinks(links []string) error {
	for _, link := range links {
		if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(link); err != nil {
				return fmt.Errorf("remove volume link: %w", err)
			}
		}
	}
	return nil
}

// Exec runs a command beside the job's process as the job's user, with
// the job's environment (see environ: nothing of the agent's) and in its
// working directory; a host process has no terminal to give. The command
// is looked up in the job's PATH.
func (p *proc) Exec(ctx context.Context, req agent.ExecRequest, stdin io.Reader, stdout io.Writer) (int, error) {
	acct, err := credential(p.user)
	if err != nil {
		return 0, fmt.Errorf("exec in job: %w", err)
	}
	env := environ(withPortEnv(agent.JobSpec{Env: p.env, GPUs: p.gpus}, p.ports), acct)
	path, err := lookPath(req.Command[0], env)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, path, req.Command[1:]...)
	cmd.Args[0] = req.Command[0]
	cmd.Dir = p.st.WorkDir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stdout
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", req.Command[0], err)
	}
	return 0, nil
}

// lookPath finds a command as the job's shell would: a name with a slash
// as it is, any other in the directories of env's PATH.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	var dirs string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			dirs = v
		}
	}
	for _, dir := range filepath.SplitList(dirs) {
		if !filepath.IsAbs(dir) {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the job's PATH (%s)", name, dirs)
}
