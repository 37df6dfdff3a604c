// Package docker is the agent's Docker runtime: it runs a job as a
// container on the local Docker Engine through github.com/docker/docker/client.
//
// Start pulls the image when it is missing (with registry auth and layer
// progress), creates the container (the job's commands run by its shell,
// entrypoint, env, working dir, user, privileged, shm size, ports, volumes,
// GPUs, memlock unlimited) labelled with the job's ID and starts it. A job
// whose commands run by its shell writes its output into the job's log
// file itself, through a bind mount (see direct.go); for other jobs the
// runtime follows the container's stdout and stderr from the Engine's log
// into the file (see logs.go). Reattach finds the container again by its
// label after an agent restart; the log then goes on where the file left
// off, without a gap or a repeated line.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"

	"github.com/dstackai/dstack-go/agent"
)

// Labels put on every container (and named volume) the runtime creates.
// Reattach finds a job's container by LabelJobID.
const (
	LabelJobID   = "ai.dstack.job-id"
	LabelRunName = "ai.dstack.run-name"
	LabelManaged = "ai.dstack.managed" // "true" on every container and volume the agent created
)

// DefaultBindAddress is the host address container ports are published on:
// like the agent's own API, jobs are reached from other machines through
// SSH tunnels, never directly.
const DefaultBindAddress = "127.0.0.1"

// Runtime runs jobs as Docker containers. It is safe for concurrent use.
type Runtime struct {
	cli        *client.Client
	noLogFile  bool   // follow output through the logs endpoint only
	engineLogs bool   // never let jobs write their log file directly
	helper     string // static agent binary for jobs' SSH servers (ssh.go)
}

var _ agent.Runtime = (*Runtime)(nil)

// Option configures New.
type Option func(*Runtime)

// New connects to the Docker Engine the environment points at (DOCKER_HOST,
// DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY; the local socket
// by default), negotiating the API version with it. It returns an error
// when the Engine does not answer, so that the agent can go on without the
// docker runtime.
func New(ctx context.Context, opts ...Option) (*Runtime, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker: engine at %s is unreachable: %w", cli.DaemonHost(), err)
	}
	cli.NegotiateAPIVersion(pctx)
	r := &Runtime{cli: cli}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Name is "docker".
func (r *Runtime) Name() string { return "docker" }

// Client is the Engine client the runtime uses.
func (r *Runtime) Client() *client.Client { return r.cli }

// Close closes the connection to the Engine. Handles must not be used
// afterwards; the containers keep running.
func (r *Runtime) Close() error { return r.cli.Close() }

// ContainerName is the name of a job's container: "dstack-" and the job's
// ID, with characters Docker does not allow in names replaced by "-".
func ContainerName(jobID string) string {
	return "dstack-" + badNameChars.ReplaceAllString(jobID, "-")
}

var badNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// Start runs spec as a new container whose output is appended to logPath:
// written there by the container itself, or followed from the Engine's log
// (see direct.go for which). progress is told about each phase: pulling (with a summary
// of the layers' progress, only when the image is missing) and creating. A
// failed pull is an error "image pull failed: <reason>". When ctx ends
// before the container runs, what Start made is removed and ctx's error
// returned.
//
// A container the job already has is an error, except one left created but
// never started (by an agent that died between create and start), which
// is replaced.
func (r *Runtime) Start(ctx context.Context, spec agent.JobSpec, logPath string, progress func(agent.JobState, string)) (agent.Handle, error) {
	if progress == nil {
		progress = func(agent.JobState, string) {}
	}
	h, err := r.start(ctx, spec, logPath, progress)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return h, err
}

func (r *Runtime) start(ctx context.Context, spec agent.JobSpec, logPath string, progress func(agent.JobState, string)) (agent.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if spec.ID == "" {
		return nil, errors.New("docker: job has no ID")
	}
	if spec.Image == "" {
		return nil, errors.New("docker: job has no image")
	}
	if err := r.removeUnstarted(ctx, spec.ID); err != nil {
		return nil, err
	}
	if err := r.ensureImage(ctx, spec, progress); err != nil {
		return nil, err
	}

	progress(agent.StateCreating, "creating container")
	for _, m := range spec.Volumes {
		if m.Name != "" {
			if err := r.ensureVolume(ctx, m.Name); err != nil {
				return nil, err
			}
		}
	}
	// Each failure the Engine's setup explains (see below) is learnt once
	// per Engine and retried without what it refused: at most twice.
	for {
		cfg, hcfg, direct, err := r.config(spec, logPath)
		if err != nil {
			return nil, err
		}
		h, err := r.createAndStart(ctx, spec, cfg, hcfg, logPath, direct)
		switch {
		case err != nil && hcfg.Ulimits != nil && isRlimitDenied(err):
			// The Engine may not raise RLIMIT_MEMLOCK (it lacks
			// CAP_SYS_RESOURCE, as in some sandboxes and rootless Docker):
			// jobs run with the Engine's own limit there.
			memlockDenied.Store(r.cli.DaemonHost(), true)
		case err != nil && direct && isBindSourceMissing(err):
			// The Engine does not see this machine's files (the agent runs
			// in a container of its own, say): output goes through the
			// Engine's log.
			directDenied.Store(r.cli.DaemonHost(), true)
		default:
			if err == nil && spec.SSH != nil {
				if err := r.startSSH(ctx, h.(*handle)); err != nil {
					r.removeQuietly(h.(*handle).id)
					return nil, err
				}
			}
			return h, err
		}
	}
}

// config builds the container's create request, letting it write the
// job's log directly where it can, and leaving out what the Engine was
// found to refuse.
func (r *Runtime) config(spec agent.JobSpec, logPath string) (*container.Config, *container.HostConfig, bool, error) {
	cfg, hcfg, err := containerConfig(spec, DefaultBindAddress, probeDevices("/"))
	if err != nil {
		return nil, nil, false, err
	}
	if err := r.addSSH(spec, logPath, hcfg); err != nil {
		return nil, nil, false, err
	}
	if err := r.addDocker(spec, hcfg); err != nil {
		return nil, nil, false, err
	}
	if err := r.addDstack(spec, hcfg); err != nil {
		return nil, nil, false, err
	}
	if _, denied := memlockDenied.Load(r.cli.DaemonHost()); denied {
		hcfg.Ulimits = nil
	}
	direct := r.canLogDirectly() && logDirectly(spec, cfg, hcfg, logPath)
	if direct {
		if err := prepareDirectLog(logPath); err != nil {
			return nil, nil, false, err
		}
	}
	return cfg, hcfg, direct, nil
}

// removeUnstarted makes way for a new container of the job: one that an
// agent left created but never started is removed; one that ran is an
// error.
func (r *Runtime) removeUnstarted(ctx context.Context, jobID string) error {
	old, found, err := r.find(ctx, jobID)
	if err != nil || !found {
		return err
	}
	if old.State != container.StateCreated {
		return fmt.Errorf("docker: job %s already has a container %s (%s); reattach to it instead", jobID, shortID(old.ID), old.State)
	}
	if err := r.removeContainer(ctx, old.ID, container.RemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("docker: removing the unstarted container of job %s: %w", jobID, err)
	}
	return nil
}

// createAndStart creates the container, sets up its log (unless the
// container writes it directly), starts it and reads back its ports; on
// any failure it removes what it made.
func (r *Runtime) createAndStart(ctx context.Context, spec agent.JobSpec, cfg *container.Config, hcfg *container.HostConfig, logPath string, direct bool) (agent.Handle, error) {
	created, err := r.cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, ContainerName(spec.ID))
	if err != nil {
		if ctx.Err() != nil {
			// The Engine may have made it all the same.
			if c, found, _ := r.find(context.WithoutCancel(ctx), spec.ID); found {
				r.removeQuietly(c.ID)
			}
		}
		return nil, fmt.Errorf("docker: creating the container: %s", engineMsg(err))
	}
	h := &handle{rt: r, id: created.ID, spec: spec, logPath: logPath, direct: direct}
	undo := func(err error) (agent.Handle, error) {
		if f := h.follower(); f != nil {
			f.close()
		}
		r.removeQuietly(created.ID)
		return nil, err
	}
	var f *logFollower
	if !direct {
		// The log is set up before the container starts, so that a fresh
		// cursor is on disk before the first line can be written.
		if f, err = newLogFollower(r.cli, created.ID, logPath, true, ""); err != nil {
			return undo(err)
		}
		h.setFollower(f)
	}
	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return undo(fmt.Errorf("docker: starting the container: %s", engineMsg(err)))
	}
	insp, err := r.cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		return undo(fmt.Errorf("docker: inspecting the started container: %w", err))
	}
	if f != nil {
		// The Engine's own log file is known once the container has started.
		if err := f.useFile(r.engineLogFile(insp)); err != nil {
			return undo(err)
		}
		f.start()
	}
	h.ports = publishedPorts(spec.Ports, insp)
	return h, nil
}

// memlockDenied holds the Engines (by address) found unable to lift
// RLIMIT_MEMLOCK, and directDenied those found unable to bind-mount this
// machine's files, so that only the first job on one pays for finding out.
var memlockDenied, directDenied sync.Map

// engineMsg is the Engine's message, without the client library's
// "Error response from daemon: ".
func engineMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "Error response from daemon: ")
}

// isBindSourceMissing tells the Engine's refusal to bind-mount a path it
// does not have from other create failures.
func isBindSourceMissing(err error) bool {
	return strings.Contains(err.Error(), "bind source path does not exist")
}

// isRlimitDenied tells runc's "error setting rlimit type 8: operation not
// permitted" (8 is RLIMIT_MEMLOCK) from other start failures.
func isRlimitDenied(err error) bool {
	s := err.Error()
	return strings.Contains(s, "rlimit type 8") && strings.Contains(s, "not permitted")
}

// Reattach finds the container of the job spec.ID (by LabelJobID) and,
// unless it writes logPath itself (LabelDirectLog), resumes following its
// output into logPath from where the file left off. ok is false when the job has no container, or only one that was created
// but never started.
func (r *Runtime) Reattach(ctx context.Context, spec agent.JobSpec, logPath string) (agent.Handle, bool, error) {
	c, found, err := r.find(ctx, spec.ID)
	if err != nil || !found || c.State == container.StateCreated {
		return nil, false, err
	}
	insp, err := r.cli.ContainerInspect(ctx, c.ID)
	if cerrdefs.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("docker: inspecting container %s: %w", shortID(c.ID), err)
	}
	direct := insp.Config != nil && insp.Config.Labels[LabelDirectLog] == "true"
	h := &handle{rt: r, id: c.ID, spec: spec, logPath: logPath, direct: direct}
	if !direct {
		f, err := newLogFollower(r.cli, c.ID, logPath, false, r.engineLogFile(insp))
		if err != nil {
			return nil, false, err
		}
		h.setFollower(f)
		f.start()
	}
	h.ports = publishedPorts(spec.Ports, insp)
	return h, true, nil
}

// find returns the newest container labelled with the job's ID.
func (r *Runtime) find(ctx context.Context, jobID string) (container.Summary, bool, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelJobID+"="+jobID)),
	})
	if err != nil {
		return container.Summary{}, false, fmt.Errorf("docker: listing containers: %w", err)
	}
	if len(list) == 0 {
		return container.Summary{}, false, nil
	}
	slices.SortFunc(list, func(a, b container.Summary) int { return int(b.Created - a.Created) })
	return list[0], true, nil
}

func (r *Runtime) removeQuietly(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

// ensureVolume creates the named volume unless it exists.
func (r *Runtime) ensureVolume(ctx context.Context, name string) error {
	_, err := r.cli.VolumeInspect(ctx, name)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspecting volume %s: %w", name, err)
	}
	_, err = r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{LabelManaged: "true"}})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("docker: creating volume %s: %w", name, err)
	}
	return nil
}

// devices says which device trees of the host the container may need.
type devices struct {
	nvidia     bool // /dev/nvidiactl: NVIDIA's driver
	kfd        bool // /dev/kfd: AMD GPUs (ROCm)
	dri        bool // /dev/dri
	infiniband bool // /dev/infiniband
}

func probeDevices(root string) devices {
	exists := func(p string) bool { _, err := os.Stat(root + p); return err == nil }
	return devices{nvidia: exists("dev/nvidiactl"), kfd: exists("dev/kfd"), dri: exists("dev/dri"), infiniband: exists("dev/infiniband")}
}

// containerConfig builds the create request for spec.
//
// Commands and entrypoint follow dstack: with commands and no entrypoint the
// container runs spec.ShellCommand(), `<shell> -c "set -e\n<commands joined
// by newlines>"`, in place of the image's entrypoint and command; with an
// entrypoint, it replaces the image's and the commands are its arguments,
// as with `docker run --entrypoint`; with neither, the image's own
// entrypoint and command run.
func containerConfig(spec agent.JobSpec, bindAddr string, dev devices) (*container.Config, *container.HostConfig, error) {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelJobID] = spec.ID
	labels[LabelRunName] = spec.RunName
	labels[LabelManaged] = "true"

	cfg := &container.Config{
		Image:      spec.Image,
		Env:        envList(spec.Env),
		WorkingDir: spec.WorkingDir,
		User:       spec.User,
		Labels:     labels,
	}
	switch {
	case len(spec.Entrypoint) > 0:
		cfg.Entrypoint = slices.Clone(spec.Entrypoint)
		cfg.Cmd = slices.Clone(spec.Commands)
		if cfg.Cmd == nil {
			// An entrypoint override with no arguments must not inherit the
			// image's CMD as arguments: docker run --entrypoint does the same.
			cfg.Cmd = []string{}
		}
	case len(spec.Commands) > 0:
		cfg.Entrypoint = spec.ShellCommand()
		cfg.Cmd = []string{}
	}
	if spec.StopGraceSeconds > 0 {
		t := spec.StopGraceSeconds
		cfg.StopTimeout = &t
	}

	hcfg := &container.HostConfig{
		Privileged: spec.Privileged,
		Resources: container.Resources{
			Ulimits: []*container.Ulimit{{Name: "memlock", Soft: -1, Hard: -1}},
		},
	}
	if spec.ShmSizeMB > 0 {
		hcfg.ShmSize = int64(spec.ShmSizeMB) * units.MiB
	}

	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hcfg.PortBindings = nat.PortMap{}
		for _, p := range spec.Ports {
			if p.Container <= 0 || p.Container > 65535 || p.Host < 0 || p.Host > 65535 {
				return nil, nil, fmt.Errorf("docker: invalid port binding %d:%d", p.Host, p.Container)
			}
			port := nat.Port(strconv.Itoa(p.Container) + "/tcp")
			cfg.ExposedPorts[port] = struct{}{}
			host := ""
			if p.Host != 0 {
				host = strconv.Itoa(p.Host)
			}
			hcfg.PortBindings[port] = append(hcfg.PortBindings[port], nat.PortBinding{HostIP: bindAddr, HostPort: host})
		}
	}

	for _, m := range spec.Volumes {
		if m.Path == "" || !strings.HasPrefix(m.Path, "/") {
			return nil, nil, fmt.Errorf("docker: volume mount path %q is not absolute", m.Path)
		}
		switch {
		case m.Name != "" && m.HostPath != "":
			return nil, nil, fmt.Errorf("docker: mount at %s names both a volume and a host path", m.Path)
		case m.Name != "":
			hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Path, ReadOnly: m.ReadOnly})
		case m.HostPath != "":
			// A bind through Binds, unlike Mounts, creates a missing host
			// directory, as dstack's instance volumes expect.
			if strings.Contains(m.HostPath, ":") || strings.Contains(m.Path, ":") {
				return nil, nil, fmt.Errorf("docker: bind mount %s:%s: paths must not contain ':'", m.HostPath, m.Path)
			}
			b := m.HostPath + ":" + m.Path
			if m.ReadOnly {
				b += ":ro"
			}
			hcfg.Binds = append(hcfg.Binds, b)
		default:
			return nil, nil, fmt.Errorf("docker: mount at %s has neither a volume name nor a host path", m.Path)
		}
	}

	if len(spec.GPUs) > 0 {
		if amdGPUs(spec, dev) {
			for _, d := range []string{"/dev/kfd", "/dev/dri"} {
				hcfg.Devices = append(hcfg.Devices, container.DeviceMapping{PathOnHost: d, PathInContainer: d, CgroupPermissions: "rwm"})
			}
			// ROCm needs these to map GPU memory; AMD's own docker guide
			// runs containers the same way.
			hcfg.SecurityOpt = append(hcfg.SecurityOpt, "seccomp=unconfined")
		} else {
			hcfg.DeviceRequests = []container.DeviceRequest{{
				Driver:       "nvidia",
				DeviceIDs:    slices.Clone(spec.GPUs),
				Capabilities: [][]string{{"gpu"}},
			}}
		}
	}
	if dev.infiniband {
		hcfg.Devices = append(hcfg.Devices, container.DeviceMapping{PathOnHost: "/dev/infiniband", PathInContainer: "/dev/infiniband", CgroupPermissions: "rwm"})
	}
	return cfg, hcfg, nil
}

// amdGPUs says whether the job's GPUs are AMD ones: the host has AMD's
// /dev/kfd and not NVIDIA's driver, and no GPU is named by an NVIDIA UUID
// ("GPU-...", or "MIG-..." for a MIG slice).
func amdGPUs(spec agent.JobSpec, dev devices) bool {
	if !dev.kfd || dev.nvidia {
		return false
	}
	for _, g := range spec.GPUs {
		if strings.HasPrefix(g, "GPU-") || strings.HasPrefix(g, "MIG-") {
			return false
		}
	}
	return true
}

func envList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// publishedPorts reads the host ports Docker bound (picking free ones for
// host port 0) from the inspected container.
func publishedPorts(want []agent.PortBinding, insp container.InspectResponse) []agent.PortBinding {
	if len(want) == 0 {
		return nil
	}
	out := make([]agent.PortBinding, 0, len(want))
	for _, p := range want {
		got := p
		if insp.NetworkSettings != nil {
			for _, b := range insp.NetworkSettings.Ports[nat.Port(strconv.Itoa(p.Container)+"/tcp")] {
				if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 {
					got.Host = n
					break
				}
			}
		}
		out = append(out, got)
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
