package agent

import (
	"log/slog"
	"maps"
	"slices"
	"time"
)

// HeaderLogOffset is the response header of GET /jobs/{id}/logs that holds
// the byte offset in the job's log at which the response body starts. It can
// be larger than the requested offset when the log's size cap dropped the
// older part; the client's next offset is this value plus the bytes it read.
const HeaderLogOffset = "X-Log-Offset"

// DefaultStopGrace is how long a stopped job has between SIGTERM and SIGKILL
// when neither the job spec nor the stop request says otherwise.
const DefaultStopGrace = 10 * time.Second

// JobSpec is what a submitter asks the agent to run. The agent treats it as
// opaque beyond what the runtimes need: multi-node settings travel in Env.
type JobSpec struct {
	// ID identifies the job on this agent and makes POST /jobs idempotent:
	// submitting an ID that exists returns the existing job unchanged. It
	// must be 1-128 characters of [A-Za-z0-9_.-], not starting with a dot.
	ID      string `json:"id"`
	RunName string `json:"run_name,omitempty"`
	// Image is the container image; empty runs the job on the host runtime.
	Image string `json:"image,omitempty"`
	// Commands run in one shell as a script: `<shell> -c "set -e\ncmd1\ncmd2..."`,
	// so the job stops at the first failing command (with set -e's usual
	// exceptions: commands in conditions, and all but the last of a pipeline).
	Commands []string `json:"commands,omitempty"`
	// Shell runs Commands: "sh" (the default), "bash", or an absolute path.
	Shell string `json:"shell,omitempty"`
	// Entrypoint replaces the image's entrypoint. On the host runtime it is
	// the program to run, followed by Commands as its arguments when both
	// are set (like Docker's ENTRYPOINT and CMD).
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// WorkingDir is where the job starts. On the host runtime a relative
	// (or empty) path is taken inside the job's own working directory.
	WorkingDir string `json:"working_dir,omitempty"`
	User       string `json:"user,omitempty"`
	Privileged bool   `json:"privileged,omitempty"`
	ShmSizeMB  int    `json:"shm_size_mb,omitempty"`
	// Ports to publish; Host 0 asks for any free port, and the job's
	// Ports field reports the ports actually bound.
	Ports   []PortBinding `json:"ports,omitempty"`
	Volumes []Mount       `json:"volumes,omitempty"`
	// GPUs lists the GPUs (UUIDs or indexes) the job may use.
	GPUs []string `json:"gpus,omitempty"`
	// GPUCount asks for that many of the host's GPUs, when GPUs names
	// none: the agent picks ones no other running job holds, and the
	// job's spec then lists them in GPUs.
	GPUCount int `json:"gpu_count,omitempty"`
	// RegistryAuth is the image registry's credentials. The agent keeps
	// them in memory only while it starts the job: they are never written
	// to disk, logged, or returned.
	RegistryAuth *RegistryAuth `json:"registry_auth,omitempty"`
	// StopGraceSeconds is the time between SIGTERM and SIGKILL when the job
	// is stopped; 0 means DefaultStopGrace.
	StopGraceSeconds int `json:"stop_grace_seconds,omitempty"`
	// MaxDurationSeconds stops the job (with its grace period) once it
	// has run this long, its run's max_duration; 0: no limit.
	MaxDurationSeconds int `json:"max_duration_seconds,omitempty"`
	// InactivitySeconds stops the job once nobody has been attached to it
	// (exec sessions, followed logs) for this long, a dev environment's
	// inactivity_duration; 0: never.
	InactivitySeconds int               `json:"inactivity_seconds,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	// SSH starts an SSH server in the job's container (a dev
	// environment's): see package agent/sshd. Its open connections count
	// as someone attached for InactivitySeconds. Docker runtime only.
	SSH *SSHServer `json:"ssh,omitempty"`
	// DockerSocket gives the container the host's Docker Engine (its
	// socket at /var/run/docker.sock, and the host's docker CLI where it
	// is a static binary): a run's `docker: true`. Docker runtime only.
	DockerSocket bool `json:"docker_socket,omitempty"`
	// DstackCLI mounts the agent's static binary, which is the dstack CLI
	// too, at /usr/local/bin/dstack: a run's `dstack: true`. Docker
	// runtime only.
	DstackCLI bool `json:"dstack_cli,omitempty"`
	// Repo is the run's repository, unpacked from blobs (PUT
	// /blobs/{sha256}) before the commands run; see RepoArchive.
	Repo *RepoArchive `json:"repo,omitempty"`
	// Files are the run's files entries, put in place after Repo.
	Files []FileArchive `json:"files,omitempty"`
}

// SSHServer is the SSH server of a job's container.
type SSHServer struct {
	// Port is the port it listens on in the container; list it in Ports
	// too to publish it.
	Port int `json:"port"`
	// AuthorizedKeys are the public keys (authorized_keys lines) that may
	// log in.
	AuthorizedKeys []string `json:"authorized_keys"`
}

// PortBinding publishes a job's port on the host.
type PortBinding struct {
	Container int `json:"container"`
	// Host is the host port; 0 in a spec means any free port.
	Host int `json:"host"`
}

// Mount attaches storage to a job: a named volume (Name) or a host
// directory (HostPath), at Path inside the job.
type Mount struct {
	Name     string `json:"name,omitempty"`
	HostPath string `json:"host_path,omitempty"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// RegistryAuth holds the credentials to pull a job's image.
type RegistryAuth struct {
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
}

// String keeps the password out of formatted output.
func (a RegistryAuth) String() string { return a.Username + ":<redacted>" }

// LogValue keeps the password out of structured logs.
func (a RegistryAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", a.Username))
}

// Redacted returns a copy of the spec without the registry password, safe
// to persist and to return. The copy shares nothing mutable with s.
func (s JobSpec) Redacted() JobSpec {
	c := s
	c.Commands = slices.Clone(s.Commands)
	c.Entrypoint = slices.Clone(s.Entrypoint)
	c.Env = maps.Clone(s.Env)
	c.Ports = slices.Clone(s.Ports)
	c.Volumes = slices.Clone(s.Volumes)
	c.GPUs = slices.Clone(s.GPUs)
	c.Labels = maps.Clone(s.Labels)
	if s.SSH != nil {
		ssh := *s.SSH
		ssh.AuthorizedKeys = slices.Clone(s.SSH.AuthorizedKeys)
		c.SSH = &ssh
	}
	if s.Repo != nil {
		r := *s.Repo
		r.Deleted = slices.Clone(s.Repo.Deleted)
		c.Repo = &r
	}
	c.Files = slices.Clone(s.Files)
	if s.RegistryAuth != nil {
		c.RegistryAuth = &RegistryAuth{Username: s.RegistryAuth.Username}
	}
	return c
}

// StopGrace is the job's grace period between SIGTERM and SIGKILL.
func (s JobSpec) StopGrace() time.Duration {
	if s.StopGraceSeconds > 0 {
		return time.Duration(s.StopGraceSeconds) * time.Second
	}
	return DefaultStopGrace
}

// JobState is where a job is in its life.
type JobState string

// The states of a job, in order. A job ends in exactly one of done, failed
// and stopped.
const (
	StatePending  JobState = "pending"  // accepted, not started
	StatePulling  JobState = "pulling"  // pulling the image
	StateCreating JobState = "creating" // creating the container or process
	StateRunning  JobState = "running"
	StateDone     JobState = "done"    // exited with code 0
	StateFailed   JobState = "failed"  // failed to start, exited non-zero, was lost or interrupted
	StateStopped  JobState = "stopped" // stopped on request, for inactivity or its max duration
)

// Finished reports whether the job has ended.
func (s JobState) Finished() bool {
	return s == StateDone || s == StateFailed || s == StateStopped
}

// Termination is why a job ended.
type Termination string

// The ways a job ends.
const (
	// TerminationExited: its process exited by itself (state done, or
	// failed with a non-zero exit code).
	TerminationExited Termination = "exited"
	// TerminationStopRequest: stopped on request (state stopped).
	TerminationStopRequest Termination = "stop_request"
	// TerminationMaxDuration: stopped for running past its max duration.
	TerminationMaxDuration Termination = "max_duration"
	// TerminationInactivity: stopped for nobody being attached to it.
	TerminationInactivity Termination = "inactivity"
	// TerminationInterruption: stopped because the machine is being
	// taken away (a spot interruption notice; see Manager.Interrupt).
	// The job ends failed: it did not finish, and a retry policy that
	// lists "interruption" runs it again elsewhere.
	TerminationInterruption Termination = "interruption"
	// TerminationStartFailed: it could not start (image pull, container
	// creation, a missing program).
	TerminationStartFailed Termination = "start_failed"
	// TerminationLost: the agent lost track of it (it was gone after a
	// restart of the agent, or its runtime stopped answering).
	TerminationLost Termination = "lost"
)

// Interruption is a notice that the machine is being taken away, such
// as EC2's two-minute spot interruption notice.
type Interruption struct {
	// Notice says what and when, for people: "spot interruption notice:
	// terminate at 2026-01-02T15:04:05Z".
	Notice string `json:"notice"`
	// Deadline is when the machine goes; zero when the notice gives no
	// time. Jobs are killed by then, whatever their grace period.
	Deadline time.Time `json:"deadline,omitzero"`
	// At is when the agent learnt of it.
	At time.Time `json:"at"`
}

// Job is a job's spec and status, as GET /jobs/{id} returns it.
type Job struct {
	// Spec is the submitted spec without the registry password.
	Spec  JobSpec  `json:"spec"`
	State JobState `json:"state"`
	// ExitCode is set once the job's process has exited.
	ExitCode *int `json:"exit_code,omitempty"`
	// Reason says why the job is in its state: "exit code 3",
	// "killed by signal 9", "OOM killed", "image pull failed: ...",
	// "lost while the agent was down", or progress while it starts.
	Reason string `json:"reason,omitempty"`
	// Termination says why the job ended, in a word a program can branch
	// on (Reason says it for people); empty until it ends.
	Termination Termination `json:"termination,omitempty"`
	// Runtime is the name of the runtime that runs the job.
	Runtime    string    `json:"runtime"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Ports are the published ports with the host ports actually bound.
	Ports []PortBinding `json:"ports,omitempty"`
	// LogDropped is how many bytes at the start of the log the size cap has
	// dropped; logs are readable from this offset on.
	LogDropped int64 `json:"log_dropped,omitempty"`
}

// Inventory describes the host: what a fleet offers to the planner.
type Inventory struct {
	Hostname string `json:"hostname"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUs     int    `json:"cpus"`
	MemoryMB int64  `json:"memory_mb"`
	// DiskMB and DiskFreeMB are the size and free space of the file system
	// that holds the agent's data dir.
	DiskMB     int64 `json:"disk_mb"`
	DiskFreeMB int64 `json:"disk_free_mb"`
	GPUs       []GPU `json:"gpus,omitempty"`
	TPUs       []TPU `json:"tpus,omitempty"`
	// Docker reports whether the Docker Engine's socket answers.
	Docker bool `json:"docker"`
	// Runtimes are the names of the runtimes this agent can run jobs with.
	Runtimes []string `json:"runtimes"`
	// Addresses are the host's IP addresses, loopback and link-local
	// left out: where other hosts reach it (an SSH fleet's network picks
	// one).
	Addresses []string `json:"addresses,omitempty"`
}

// GPU is one GPU of the host.
type GPU struct {
	Vendor   string `json:"vendor"` // "nvidia" or "amd"
	Name     string `json:"name"`   // "NVIDIA H100 80GB HBM3"
	MemoryMB int64  `json:"memory_mb"`
	UUID     string `json:"uuid"`
	Driver   string `json:"driver,omitempty"`
	Index    int    `json:"index"`
}

// TPU is one Google TPU chip of the host, found as a PCI device with
// Google's vendor ID behind /dev/accel* or /dev/vfio/*.
type TPU struct {
	// Device is the device file that gives access to the chip.
	Device string `json:"device"`
	// PCIAddress is the chip's PCI address, such as "0000:00:04.0".
	PCIAddress string `json:"pci_address"`
	// DeviceID is the PCI device ID, such as "0x0063".
	DeviceID string `json:"device_id"`
	// Version is the TPU generation known for DeviceID ("v4", "v5e",
	// "v5p", "v6e"), empty when the ID is not known.
	Version string `json:"version,omitempty"`
}

// Metrics is a running job's resource use.
type Metrics struct {
	// CPUPercent is CPU time over wall time, in percent of one CPU (a job
	// busy on four CPUs reports 400).
	CPUPercent float64      `json:"cpu_percent"`
	MemoryMB   int64        `json:"memory_mb"`
	GPUs       []GPUMetrics `json:"gpus,omitempty"`
}

// GPUMetrics is the use of one of a job's GPUs.
type GPUMetrics struct {
	UUID               string  `json:"uuid"`
	UtilizationPercent float64 `json:"utilization_percent"`
	MemoryUsedMB       int64   `json:"memory_used_mb"`
}

// Health is the answer of GET /health.
type Health struct {
	Status   string   `json:"status"` // "ok"
	Version  string   `json:"version,omitempty"`
	Runtimes []string `json:"runtimes"`
	// Interruption is set once the machine got an interruption notice:
	// the agent has stopped its jobs and takes no new ones.
	Interruption *Interruption `json:"interruption,omitempty"`
}

// StopRequest is the optional body of POST /jobs/{id}/stop.
type StopRequest struct {
	// GraceSeconds overrides the job's grace period between SIGTERM and
	// SIGKILL.
	GraceSeconds *int `json:"grace_seconds,omitempty"`
	// Abort kills the job at once (SIGKILL, no grace period).
	Abort bool `json:"abort,omitempty"`
}

// ErrorResponse is the body of every error response.
type ErrorResponse struct {
	Error string `json:"error"`
}
