package docker

// A job's SSH server and Docker access.
//
// SSH (spec.SSH, a dev environment): the runtime bind-mounts a static
// binary of the agent (the helper, which has the `sshd` command of package
// agent/sshd) read-only at HelperMountPath, and a directory of the job's
// own at SSHMountPath (authorized_keys, the server's host key, its
// activity file); once the container runs it starts the server with a
// detached `docker exec`, as the container's user, in its working
// directory, with its environment. The server lives as long as the
// container (and across agent restarts); the agent reads its activity
// file for the job's inactivity (Handle.Activity).
//
// Docker (spec.DockerSocket, a run's `docker: true`): the container gets
// the host Engine's socket at /var/run/docker.sock, plus the host's docker
// CLI at /usr/local/bin/docker when it is a static binary (a dynamically
// linked one would not start in another image). The containers it starts
// are the job's siblings on the host's Engine, not children of a daemon
// inside the job (dstack's own dind image runs one, which needs a
// privileged container): see the README's "Dev environments". The socket
// needs no privilege; spec.Privileged still makes the job privileged.

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/sshd"
)

const (
	// HelperMountPath is where the agent's static binary is mounted in a
	// container that needs it.
	HelperMountPath = "/.dstack/bin/dstack"
	// SSHMountPath is where a job's SSH directory is mounted.
	SSHMountPath = "/.dstack/ssh"
	// DockerCLIMountPath is where the host's static docker CLI is mounted
	// for a job with DockerSocket.
	DockerCLIMountPath = "/usr/local/bin/docker"
	// sshStartTimeout bounds how long the SSH server may take to listen.
	sshStartTimeout = 15 * time.Second
)

// WithHelper sets the static binary with the agent's `sshd` command that
// containers with an SSH server run (the agent's own executable, when it
// is static).
func WithHelper(path string) Option { return func(r *Runtime) { r.helper = path } }

// IsStatic reports whether the file at path is an ELF executable without
// a dynamic loader, which runs in any Linux image.
func IsStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// sshDir is the host directory of a job's SSH server, beside its log.
func sshDir(logPath string) string { return filepath.Join(filepath.Dir(logPath), "ssh") }

// addSSH prepares the job's SSH directory and mounts it and the helper.
func (r *Runtime) addSSH(spec agent.JobSpec, logPath string, hcfg *container.HostConfig) error {
	if spec.SSH == nil {
		return nil
	}
	if r.helper == "" || !IsStatic(r.helper) {
		return fmt.Errorf("docker: the job's SSH server needs a static agent binary to mount into the container, and %q is not one: build dstack with CGO_ENABLED=0 (make build does), or point DSTACK_CONTAINER_HELPER at such a build of ./cmd/dstack-agent", r.helper)
	}
	dir := sshDir(logPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("docker: creating the job's SSH directory: %w", err)
	}
	// The container's user may be anyone the image defines; the job's
	// directory around this one is private to the agent.
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	keys := strings.Join(spec.SSH.AuthorizedKeys, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, sshd.AuthorizedKeysFile), []byte(keys), 0o644); err != nil {
		return fmt.Errorf("docker: writing the job's authorized keys: %w", err)
	}
	hcfg.Mounts = append(hcfg.Mounts,
		mount.Mount{Type: mount.TypeBind, Source: r.helper, Target: HelperMountPath, ReadOnly: true},
		mount.Mount{Type: mount.TypeBind, Source: dir, Target: SSHMountPath})
	return nil
}

// DstackMountPath is where a job with DstackCLI finds the dstack CLI.
const DstackMountPath = "/usr/local/bin/dstack"

// addDstack mounts the agent's binary, the dstack CLI, for `dstack: true`.
func (r *Runtime) addDstack(spec agent.JobSpec, hcfg *container.HostConfig) error {
	if !spec.DstackCLI {
		return nil
	}
	if r.helper == "" || !IsStatic(r.helper) {
		return fmt.Errorf("docker: dstack: true needs a static dstack binary to mount into the container, and %q is not one: build dstack with CGO_ENABLED=0 (make build does)", r.helper)
	}
	hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mount.TypeBind, Source: r.helper, Target: DstackMountPath, ReadOnly: true})
	return nil
}

// addDocker gives the container the host's Engine.
func (r *Runtime) addDocker(spec agent.JobSpec, hcfg *container.HostConfig) error {
	if !spec.DockerSocket {
		return nil
	}
	sock, ok := strings.CutPrefix(r.cli.DaemonHost(), "unix://")
	if !ok {
		return fmt.Errorf("docker: docker: true needs the Engine's socket on this machine, and the Engine is at %s", r.cli.DaemonHost())
	}
	hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mount.TypeBind, Source: sock, Target: "/var/run/docker.sock"})
	if cli, err := exec.LookPath("docker"); err == nil {
		if abs, err := filepath.EvalSymlinks(cli); err == nil && IsStatic(abs) {
			hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mount.TypeBind, Source: abs, Target: DockerCLIMountPath, ReadOnly: true})
		}
	}
	return nil
}

// startSSH starts the job's SSH server in its running container and
// waits until it listens.
func (r *Runtime) startSSH(ctx context.Context, h *handle) error {
	dir := sshDir(h.logPath)
	_ = os.Remove(filepath.Join(dir, sshd.ActivityFile))
	logFile := SSHMountPath + "/sshd.log"
	cmd := []string{HelperMountPath, "agent", "sshd", "-listen", ":" + strconv.Itoa(h.spec.SSH.Port), "-dir", SSHMountPath, "-log", logFile}
	ex, err := r.cli.ContainerExecCreate(ctx, h.id, container.ExecOptions{Cmd: cmd, Detach: true})
	if err != nil {
		return fmt.Errorf("docker: starting the SSH server: %s", engineMsg(err))
	}
	if err := r.cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("docker: starting the SSH server: %s", engineMsg(err))
	}
	deadline := time.Now().Add(sshStartTimeout)
	for {
		if _, err := sshd.ReadActivity(filepath.Join(dir, sshd.ActivityFile)); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("docker: %w", err)
		}
		insp, err := r.cli.ContainerExecInspect(ctx, ex.ID)
		if err == nil && !insp.Running && (insp.Pid != 0 || insp.ExitCode != 0) {
			msg, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			return fmt.Errorf("docker: the SSH server exited with code %d: %s", insp.ExitCode, strings.TrimSpace(string(msg)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker: the SSH server did not start within %s", sshStartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Activity reports the SSH server's connections (agent.ActivityReporter).
func (h *Handle) Activity() (open int, last time.Time, ok bool) {
	if h.spec.SSH == nil {
		return 0, time.Time{}, false
	}
	a, err := sshd.ReadActivity(filepath.Join(sshDir(h.logPath), sshd.ActivityFile))
	if err != nil {
		return 0, time.Time{}, false
	}
	return a.Open, a.Last, true
}

var _ agent.ActivityReporter = (*Handle)(nil)
