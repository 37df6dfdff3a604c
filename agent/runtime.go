package agent

import (
	"context"
	"time"
)

// Runtime starts and finds jobs. The agent holds one Runtime per kind
// ("host", "docker") and picks one per job: host when the spec has no
// image, docker otherwise. A Runtime must be safe for concurrent use.
type Runtime interface {
	// Name is the runtime's name: "host" or "docker".
	Name() string
	// Start makes the job and starts it. It calls progress with
	// StatePulling and StateCreating (and a short message) as it goes, and
	// returns once the job runs, or an error whose text is the reason the
	// job failed to start ("image pull failed: ..."). When ctx ends before
	// the job runs, Start undoes what it made and returns ctx's error.
	//
	// The job's output (stdout and stderr, interleaved as written) is
	// appended to logPath, which Start creates if needed, by the runtime
	// itself or by the returned Handle; where possible output keeps flowing
	// into the file while the agent is down (the host runtime's processes
	// write to it directly).
	Start(ctx context.Context, spec JobSpec, logPath string, progress func(JobState, string)) (Handle, error)
	// Reattach finds a job that a Start of an earlier agent process
	// started: running, or ended while the agent was down. ok is false when
	// the job is gone without a trace. spec has no registry password.
	Reattach(ctx context.Context, spec JobSpec, logPath string) (h Handle, ok bool, err error)
}

// Handle is one started job. Its methods may be called concurrently.
type Handle interface {
	// Wait blocks until the job ends, and returns its exit code and a
	// reason: "exit code 3", "OOM killed", "killed by signal 9". It
	// returns after all of the job's output is in the log file. An error
	// means the runtime lost track of the job (or ctx ended); the job may
	// still be running.
	Wait(ctx context.Context) (exitCode int, reason string, err error)
	// Stop sends SIGTERM to the job, then SIGKILL once grace has passed
	// (at once when grace is 0), and returns when the job has ended. It is
	// not an error to stop a job that has ended.
	Stop(ctx context.Context, grace time.Duration) error
	// Remove frees what the job holds (its container, its working
	// directory); the log file stays. The job must have ended.
	Remove(ctx context.Context) error
	// Metrics reports the job's current resource use.
	Metrics(ctx context.Context) (Metrics, error)
	// Ports are the job's published ports with the host ports bound.
	Ports() []PortBinding
}

// Cleaner is an optional capability of a Runtime: freeing what a job left
// behind when Reattach could not find it (the job was lost while the agent
// was down, but its files remain). The manager calls it when such a job is
// deleted.
type Cleaner interface {
	Cleanup(ctx context.Context, spec JobSpec) error
}

// Detacher is an optional capability of a Handle: letting go of the job
// without touching it, as the agent shuts down (a handle that copies the
// job's output into the log stops doing so; the next agent's Reattach
// takes over). Manager.Close calls it on every handle it holds.
type Detacher interface {
	Detach()
}

// ActivityReporter is an optional capability of a Handle: reporting use
// of the job that does not go through the agent (SSH connections to the
// job's own SSH server). ok is false when the handle cannot tell (its
// server has not started). The manager's inactivity check treats open
// connections as someone attached, and last as the end of the latest.
type ActivityReporter interface {
	Activity() (open int, last time.Time, ok bool)
}
