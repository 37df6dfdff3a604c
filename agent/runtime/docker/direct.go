package docker

// Direct logs: a job's container writes its output into the job's log
// file itself, as the host runtime's processes do.
//
// The Engine's json-file logger costs a JSON encoding and a write per
// message and caps a container's output at a few tens of MB/s; reading it
// back (logs.go) costs as much again. So for a job whose commands run by
// its shell (Commands and no Entrypoint, the usual dstack job), the
// runtime bind-mounts the job's log file into the container at
// LogMountPath and starts the shell script with
//
//	exec >>/.dstack-log/output.log 2>&1
//
// so that the shell and everything it starts write to the file, opened for
// appending, with stdout and stderr interleaved exactly as written. The
// Engine's own log of such a container stays empty but for what the shell
// says before the redirection takes effect (it cannot open the file, say).
// Nothing needs copying while the job runs, output keeps flowing while the
// agent is down, and a re-attaching agent has nothing to resume: the file
// is complete. Wait returns once the container has stopped: by then every
// process of the container has exited (they die with its PID 1), so all of
// their writes are in the file; Wait then appends what the Engine's log
// holds (normally nothing), through the resumable follower of logs.go, so
// that an agent killed meanwhile neither loses nor repeats it.
//
// The manager's size cap punches holes in the log without changing its
// size, so a writer appending to it (O_APPEND) goes on at its end, as with
// the host runtime's processes.
//
// The file is a single-file bind mount of the log itself, not a directory
// of the agent's: the job's directory holds the job's record, which the
// container has no business seeing. It is made writable by every user
// (mode 0622, readable by the agent only), because the container's user
// may be anyone the image defines (or a user-namespace-mapped root); the
// manager keeps logs in a directory private to the agent, so no one else
// on the host can reach it.
//
// The redirection is not applied, and the container's output goes through
// the Engine's log as before, when:
//   - the job has an Entrypoint (with or without Commands): wrapping an
//     arbitrary program needs a shell the image may not have (distroless
//     images), and would turn Docker's "executable not found" start error
//     into an exit code 127 at run time;
//   - the job has neither (the image's own entrypoint and command run);
//   - the Engine is not local (DOCKER_HOST is not a unix socket), as a
//     bind mount names a path on the Engine's machine, or it was found
//     not to have the log's path (the agent runs in a container of its
//     own, with the Engine's socket): the first job that finds out is
//     created again without the mount;
//   - the runtime was made WithEngineLogs;
//   - a volume of the job is mounted at LogMountPath's directory.
//
// An agent in a container whose Engine has a file at the log's path, but
// another one than the agent's, must be run WithEngineLogs: the jobs
// would write to that other file.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/dstackai/dstack-go/agent"
)

const (
	// LogMountPath is where a direct-log job's log file is mounted in its
	// container.
	LogMountPath = "/.dstack-log/output.log"
	// LabelDirectLog is "true" on a container whose job writes its log
	// file directly; Reattach reads it.
	LabelDirectLog = "ai.dstack.direct-log"
	// directLogMode lets any container user append to the log.
	directLogMode = 0o622
)

// canLogDirectly says whether the runtime may bind-mount log files into
// containers: the Engine shares this machine's files.
func (r *Runtime) canLogDirectly() bool {
	if r.engineLogs || !strings.HasPrefix(r.cli.DaemonHost(), "unix://") {
		return false
	}
	_, denied := directDenied.Load(r.cli.DaemonHost())
	return !denied
}

// logDirectly changes the container's config so that the job's shell
// writes its output into the file logPath, and reports whether it did (see
// the comment at the top of this file for when it does not).
func logDirectly(spec agent.JobSpec, cfg *container.Config, hcfg *container.HostConfig, logPath string) bool {
	if len(spec.Entrypoint) > 0 || len(spec.Commands) == 0 {
		return false
	}
	dir := path.Dir(LogMountPath)
	for _, m := range spec.Volumes {
		if p := path.Clean(m.Path); p == dir || p == LogMountPath || p == "/" {
			return false
		}
	}
	cfg.Entrypoint = []string{spec.ShellPath(), "-c", "exec >>" + LogMountPath + " 2>&1\n" + spec.Script()}
	cfg.Cmd = []string{}
	cfg.Labels[LabelDirectLog] = "true"
	hcfg.Mounts = append(hcfg.Mounts, mount.Mount{Type: mount.TypeBind, Source: logPath, Target: LogMountPath})
	return true
}

// prepareDirectLog creates the job's log file if needed and lets the
// container's user append to it.
func prepareDirectLog(logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("docker: creating the job's log: %w", err)
	}
	err = f.Chmod(directLogMode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("docker: making the job's log writable by the container's user: %w", err)
	}
	return nil
}

// drainEngineLog appends what the Engine logged of a stopped direct-log
// container (what its shell said before redirecting its output, if
// anything) to the job's log, once: the follower's cursor makes a second
// drain, by this handle or after an agent restart, add nothing.
func (h *Handle) drainEngineLog(ctx context.Context) error {
	h.drainMu.Lock()
	defer h.drainMu.Unlock()
	if h.drained {
		return nil
	}
	insp, err := h.rt.cli.ContainerInspect(ctx, h.id)
	if err != nil {
		return fmt.Errorf("docker: inspecting container %s: %w", shortID(h.id), err)
	}
	f, err := newLogFollower(h.rt.cli, h.id, h.logPath, false, h.rt.engineLogFile(insp))
	if err != nil {
		return err
	}
	h.setFollower(f)
	f.start()
	select {
	case <-f.done:
	case <-ctx.Done():
		f.close()
		return ctx.Err()
	}
	switch {
	case f.err != nil:
		return fmt.Errorf("docker: copying the Engine's log of container %s: %w", shortID(h.id), f.err)
	case f.ctx.Err() != nil:
		return errors.New("docker: the handle was let go while copying the Engine's log")
	}
	h.drained = true
	return nil
}
