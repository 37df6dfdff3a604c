// Package host is the agent's runtime for jobs without an image: their
// commands run directly on the host, for machines without Docker (common
// on HPC nodes).
//
// Each job runs as its own session and process group, under a small
// /bin/sh wrapper:
//
//	sh -c 'trap : TERM INT HUP; "$@"; echo $? > "$0"; ...' <dir>/exit <argv>...
//
// The wrapper ignores nothing (a trap is reset in the programs it starts),
// but outlives a SIGTERM sent to the group long enough to record the job's
// exit code in a file, so the code survives an agent restart. Its stdout
// and stderr are the job's log file itself, opened for appending, so the
// job keeps logging while the agent is down. The wrapper's PID, its start
// time (from /proc/<pid>/stat) and the boot ID are recorded in the job's
// directory; together they name the process even after PIDs wrap, and let
// a restarted agent find it again ([Runtime.Reattach]) and watch it by
// polling /proc, since only a parent can wait(2).
//
// Stop sends SIGTERM to the group and, after the grace period, SIGKILL to
// every process of the group but the wrapper, which then records 137
// ("killed by signal 9"). A job ends when its wrapper does; processes it
// left behind in its group are killed then, as a container's would be.
//
// What the host runtime does with a spec: Commands run with the spec's
// shell as a `set -e` script; Entrypoint, when set, is the program, with
// Commands as its arguments. The environment is the spec's, never the
// agent's: PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin),
// HOME, USER and LOGNAME of the job's user from the user database, plus
// CUDA_VISIBLE_DEVICES from the spec's GPUs (unset when it lists none, so
// the job sees every GPU), plus $PORT and $DSTACK_PORT_<port> for its
// ports, plus the spec's Env, which wins. Commands run in the job (exec,
// `dstack attach RUN -- CMD`) run as the job's user, with that
// environment, in its working directory. A relative or
// empty WorkingDir is inside the job's own directory, which Remove deletes;
// an absolute one is used (and created) as is and kept. User switches
// users only when the agent runs as root, and needs an absolute
// WorkingDir that the user can enter. Ports are the job's own: a host
// port may be given only equal to the job's port. Volumes are symbolic
// links from the mount path to the host path, or to a directory per named
// volume under Dir/volumes that outlives the jobs; read_only is not
// enforced. Image, Privileged and ShmSizeMB do not apply. Processes that
// leave the job's process group (setsid, setpgid) escape Stop and the
// metrics, as there are no cgroups here.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/inventory"
)

// wrapper runs the job (its argv follows as "$@") and writes its exit code
// to the file named by $0. See the package comment. The wrapper's own
// stderr goes to /dev/null, so that the shell's "Killed" notices stay out
// of the job's log; an inner sh gives the job the log back as its stderr
// (fd 3 carries it across) and execs the job.
const wrapper = `trap : TERM INT HUP
exec 3>&2 2>/dev/null
/bin/sh -c 'exec 2>&3 3>&-; exec "$@"' sh "$@"
code=$?
echo "$code" > "$0"
exit "$code"
`

// defaultPath is the job's PATH unless its spec sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configure the host runtime.
type Options struct {
	// Dir holds the runtime's files: Dir/jobs/<id>/ per job (process.json,
	// exit, and work/, the default working directory) and Dir/volumes/.
	Dir string
	// GPUUsage reports the GPUs' use for job metrics; nil means
	// inventory.NvidiaUsage.
	GPUUsage func(context.Context) ([]inventory.GPUUsage, error)
	// Logger receives the runtime's events; nil discards them.
	Logger *slog.Logger
}

// Runtime runs jobs as host processes.
type Runtime struct {
	dir      string
	gpuUsage func(context.Context) ([]inventory.GPUUsage, error)
	log      *slog.Logger
	clkTck   float64
	bootID   string

	// portsMu guards ports: the host ports handed to jobs this runtime
	// started or re-attached, and who holds them while it lives.
	portsMu sync.Mutex
	ports   map[int]*portClaim
}

// portClaim is a job's hold on a host port: from its start (proc still
// nil) for as long as its process lives.
type portClaim struct{ p *proc }

// New returns a host runtime keeping its files under opts.Dir.
func New(opts Options) (*Runtime, error) {
	if opts.Dir == "" {
		return nil, errors.New("host runtime: no dir")
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "jobs"), 0o700); err != nil {
		return nil, fmt.Errorf("host runtime: %w", err)
	}
	r := &Runtime{
		dir:      opts.Dir,
		gpuUsage: opts.GPUUsage,
		log:      opts.Logger,
		clkTck:   clockTicks(),
		bootID:   bootID(),
		ports:    map[int]*portClaim{},
	}
	if r.gpuUsage == nil {
		r.gpuUsage = inventory.NvidiaUsage
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Name is "host".
func (r *Runtime) Name() string { return "host" }

// procState is what process.json holds: enough to find the job's process
// again and to clean up after it.
type procState struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // /proc/<pid>/stat field 22
	BootID    string `json:"boot_id"`
	WorkDir   string `json:"work_dir"`
	// Links are the symbolic links made for volumes outside the job's
	// directory, removed with the job.
	Links []string `json:"links,omitempty"`
	// Ports are the host ports the job was given.
	Ports []agent.PortBinding `json:"ports,omitempty"`
}

func (r *Runtime) jobDir(id string) string { return filepath.Join(r.dir, "jobs", id) }

// Start runs the job's process and returns once it has started.
func (r *Runtime) Start(ctx context.Context, spec agent.JobSpec, logPath string, progress func(agent.JobState, string)) (_ agent.Handle, err error) {
	argv, err := command(spec)
	if err != nil {
		return nil, err
	}
	ports, err := ports(spec.Ports)
	if err != nil {
		return nil, err
	}
	ports, release := r.claimPorts(ports)
	defer func() {
		if err != nil {
			release()
		}
	}()
	acct, err := credential(spec.User)
	if err != nil {
		return nil, err
	}
	cred := acct.cred
	progress(agent.StateCreating, "starting the process")
	dir := r.jobDir(spec.ID)
	if p, ok, _ := r.find(spec, dir); ok && p.alive() {
		return nil, fmt.Errorf("a process of job %s is already running (pid %d)", spec.ID, p.st.PID)
	}
	// Whatever is left is debris of an earlier job with this ID.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear job dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create job dir: %w", err)
	}
	st := procState{BootID: r.bootID}
	defer func() {
		if err != nil { // leave nothing behind for a job that did not start
			removeLinks(st.Links)
			os.RemoveAll(dir)
		}
	}()
	st.WorkDir, err = r.workDir(dir, spec.WorkingDir, cred)
	if err != nil {
		return nil, err
	}
	if st.Links, err = r.mount(spec.Volumes, st.WorkDir); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the process holds its own descriptor
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	exitPath := filepath.Join(dir, "exit")
	cmd := exec.Command("/bin/sh", append([]string{"-c", wrapper, exitPath}, argv...)...)
	cmd.Dir = st.WorkDir
	cmd.Env = environ(withPortEnv(spec, ports), acct)
	cmd.Stdout, cmd.Stderr = logf, logf // *os.File: handed to the process, no copying
	// A session of its own: its own process group to signal, and no
	// controlling terminal to lose when the agent's terminal goes away.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		if cred != nil {
			return nil, fmt.Errorf("start process as user %s in %s: %w", spec.User, st.WorkDir, err)
		}
		return nil, fmt.Errorf("start process: %w", err)
	}
	st.PID = cmd.Process.Pid
	// The child is not reaped before cmd.Wait, so its stat is readable
	// even if it has already exited.
	ps, err := readStat(st.PID)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("read the new process's start time: %w", err)
	}
	st.StartTime = ps.startTime
	st.Ports = ports
	data, _ := json.Marshal(st)
	if err := renameio.WriteFile(filepath.Join(dir, "process.json"), data, 0o600); err != nil {
		syscall.Kill(-st.PID, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("record the process: %w", err)
	}
	p := r.newProc(spec, dir, st, ports)
	r.holdPorts(p)
	p.exited = make(chan struct{})
	go func() {
		cmd.Wait() // reaps; the exit code is in the exit file
		p.exitState = cmd.ProcessState
		close(p.exited)
	}()
	r.log.Info("started process", "job", spec.ID, "pid", st.PID)
	return p, nil
}

// Reattach finds a job's process from process.json: running, or ended with
// its exit code recorded. A process that is gone without an exit code (the
// host rebooted, or something killed the wrapper) is reported as not
// found; Cleanup removes its files.
func (r *Runtime) Reattach(ctx context.Context, spec agent.JobSpec, logPath string) (agent.Handle, bool, error) {
	p, ok, err := r.find(spec, r.jobDir(spec.ID))
	if err != nil || !ok {
		return nil, false, err
	}
	if _, err := os.Stat(p.exitPath()); err == nil || p.alive() {
		r.holdPorts(p)
		return p, true, nil
	}
	return nil, false, nil
}

// Cleanup removes what a job that could not be re-attached left behind:
// its directory and volume links.
func (r *Runtime) Cleanup(ctx context.Context, spec agent.JobSpec) error {
	p, ok, err := r.find(spec, r.jobDir(spec.ID))
	if err != nil || !ok {
		return err
	}
	return p.Remove(ctx)
}

// find loads a job's process.json; ok is false when there is none.
func (r *Runtime) find(spec agent.JobSpec, dir string) (*proc, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "process.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	var st procState
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read job %s's process record: %w", spec.ID, err)
	}
	pp := st.Ports
	if pp == nil { // recorded by an agent from before ports were
		for _, b := range spec.Ports {
			pp = append(pp, agent.PortBinding{Container: b.Container, Host: b.Container})
		}
	}
	return r.newProc(spec, dir, st, pp), true, nil
}

// command is the job's argv: the entrypoint followed by the commands, or
// the commands run by the shell.
func command(spec agent.JobSpec) ([]string, error) {
	switch {
	case len(spec.Entrypoint) > 0:
		return append(slices.Clone(spec.Entrypoint), spec.Commands...), nil
	case len(spec.Commands) > 0:
		return spec.ShellCommand(), nil
	}
	return nil, errors.New("the job has neither commands nor an entrypoint")
}

// ports checks the spec's ports: a host process binds its own ports, so
// the host port is the job's port.
func ports(spec []agent.PortBinding) ([]agent.PortBinding, error) {
	out := make([]agent.PortBinding, 0, len(spec))
	for _, p := range spec {
		if p.Host != 0 && p.Host != p.Container {
			return nil, fmt.Errorf("port %d cannot be published as %d: on the host runtime a job binds its ports itself", p.Container, p.Host)
		}
		out = append(out, agent.PortBinding{Container: p.Container, Host: p.Container})
	}
	return out, nil
}

// claimPorts gives a job its ports: each its own number when that is
// free on the host, else another free port (a second replica of a
// service on one machine). The job learns it from $PORT (its only port)
// and $DSTACK_PORT_<port>. A port counts as taken while a live job of
// this runtime holds it, or while something on the host listens on it.
// release frees the claim of a job that did not start.
func (r *Runtime) claimPorts(want []agent.PortBinding) (_ []agent.PortBinding, release func()) {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	claim := &portClaim{}
	var claimed []int
	out := make([]agent.PortBinding, 0, len(want))
	for _, b := range want {
		port := b.Container
		if r.portTaken(port) {
			port = freePort(r.portTaken)
		}
		r.ports[port] = claim
		claimed = append(claimed, port)
		out = append(out, agent.PortBinding{Container: b.Container, Host: port})
	}
	return out, func() {
		r.portsMu.Lock()
		defer r.portsMu.Unlock()
		for _, p := range claimed {
			if r.ports[p] == claim {
				delete(r.ports, p)
			}
		}
	}
}

// portTaken reports whether port is held by a live job or in use on the
// host. portsMu is held.
func (r *Runtime) portTaken(port int) bool {
	if c := r.ports[port]; c != nil && (c.p == nil || c.p.alive()) {
		return true
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return true
	}
	ln.Close()
	return false
}

// freePort returns a port the kernel offers that taken does not refuse.
func freePort(taken func(int) bool) int {
	for range 100 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			break
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !taken(port) {
			return port
		}
	}
	return 0
}

// holdPorts records that p holds its ports.
func (r *Runtime) holdPorts(p *proc) {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	for _, b := range p.ports {
		r.ports[b.Host] = &portClaim{p: p}
	}
}

// withPortEnv tells the job where its ports are: $DSTACK_PORT_<port> for
// each, and $PORT for a job of one port (unless the job sets it to
// something else than its port).
func withPortEnv(spec agent.JobSpec, ports []agent.PortBinding) agent.JobSpec {
	if len(ports) == 0 {
		return spec
	}
	env := make(map[string]string, len(spec.Env)+len(ports)+1)
	maps.Copy(env, spec.Env)
	for _, b := range ports {
		env["DSTACK_PORT_"+strconv.Itoa(b.Container)] = strconv.Itoa(b.Host)
	}
	if len(ports) == 1 {
		if v, ok := env["PORT"]; !ok || v == strconv.Itoa(ports[0].Container) {
			env["PORT"] = strconv.Itoa(ports[0].Host)
		}
	}
	spec.Env = env
	return spec
}

// account is the user a job runs as.
type account struct {
	// cred switches to the user; nil when the job runs as the agent's
	// own user.
	cred *syscall.Credential
	// name and home are the user's from the user database; empty when
	// it has no entry there.
	name, home string
}

// credential resolves the spec's user ("name", "uid" or "uid:gid"); an
// empty one is the agent's own user.
func credential(spec string) (account, error) {
	if spec == "" {
		var a account
		if u, err := user.Current(); err == nil {
			a.name, a.home = u.Username, u.HomeDir
		}
		return a, nil
	}
	name, group, _ := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return account{}, fmt.Errorf("user %q: %w", spec, err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return account{}, fmt.Errorf("group %q: %w", group, err)
			}
		}
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	a := account{name: u.Username, home: u.HomeDir}
	if int(uid) == os.Geteuid() && group == "" {
		return a, nil
	}
	if os.Geteuid() != 0 {
		return account{}, fmt.Errorf("user %q: the host runtime switches users only when the agent runs as root", spec)
	}
	a.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				a.cred.Groups = append(a.cred.Groups, uint32(g))
			}
		}
	}
	return a, nil
}

// workDir makes the job's working directory: an absolute WorkingDir as
// is, anything else under dir/work. A job run as another user needs an
// absolute one that user can enter, as the agent's data dir is private to
// the agent; a working dir the runtime creates for it is the user's.
func (r *Runtime) workDir(dir, wd string, cred *syscall.Credential) (string, error) {
	if !filepath.IsAbs(wd) {
		if cred != nil {
			return "", errors.New("a job run as another user needs an absolute working_dir that the user can enter (the agent's data dir is private)")
		}
		if wd != "" && !filepath.IsLocal(wd) {
			return "", fmt.Errorf("working dir %q leaves the job's directory", wd)
		}
		path := filepath.Join(dir, "work", wd)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return "", fmt.Errorf("create working dir: %w", err)
		}
		return path, nil
	}
	if _, err := os.Stat(wd); err == nil {
		return wd, nil
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return "", fmt.Errorf("create working dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(wd, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("give the working dir to the job's user: %w", err)
		}
	}
	return wd, nil
}

// mount links each volume's path to its source. It returns the links made
// outside workDir, which Remove deletes.
func (r *Runtime) mount(volumes []agent.Mount, workDir string) ([]string, error) {
	var outside []string
	for _, v := range volumes {
		src := v.HostPath
		if v.Name != "" {
			src = filepath.Join(r.dir, "volumes", v.Name)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return outside, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		}
		dst := v.Path
		if !filepath.IsAbs(dst) {
			dst = filepath.Join(workDir, dst)
		}
		if filepath.Clean(dst) == filepath.Clean(src) {
			continue
		}
		if target, err := os.Readlink(dst); err == nil && target == src {
			continue // linked by an earlier job
		} else if _, err := os.Lstat(dst); err == nil {
			return outside, fmt.Errorf("volume at %s: the path exists; the host runtime mounts by linking the path to %s", v.Path, src)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return outside, fmt.Errorf("volume at %s: %w", v.Path, err)
		}
		if err := os.Symlink(src, dst); err != nil {
			return outside, fmt.Errorf("volume at %s: the host runtime mounts by linking the path to %s: %w", v.Path, src, err)
		}
		if rel, err := filepath.Rel(workDir, dst); err != nil || !filepath.IsLocal(rel) {
			outside = append(outside, dst)
		}
	}
	return outside, nil
}

// environ is the job's environment, made from its spec and nothing of
// the agent's: PATH (defaultPath), HOME, USER and LOGNAME of the job's
// user (from the user database; left out when it has no entry), then
// CUDA_VISIBLE_DEVICES from the spec's GPUs, then the spec's variables,
// which win. Commands run in the job (exec) get the same.
func environ(spec agent.JobSpec, acct account) []string {
	env := map[string]string{"PATH": defaultPath}
	if acct.home != "" {
		env["HOME"] = acct.home
	}
	if acct.name != "" {
		env["USER"], env["LOGNAME"] = acct.name, acct.name
	}
	if len(spec.GPUs) > 0 {
		env["CUDA_VISIBLE_DEVICES"] = strings.Join(spec.GPUs, ",")
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// Interface guards.
var (
	_ agent.Runtime = (*Runtime)(nil)
	_ agent.Cleaner = (*Runtime)(nil)
)
