package agent

import "errors"

// Errors the Manager returns; the server maps each to an HTTP status.
// They are wrapped with the job's ID, so match them with errors.Is.
var (
	// ErrNotFound: no job has the ID (404).
	ErrNotFound = errors.New("job not found")
	// ErrNotRunning: the job has not started or has ended (409).
	ErrNotRunning = errors.New("job is not running")
	// ErrNoRuntime: the agent has no runtime for the job, such as an image
	// on a host without Docker (422).
	ErrNoRuntime = errors.New("no runtime on this host can run the job")
	// ErrClosed: the manager is shutting down (503).
	ErrClosed = errors.New("the agent is shutting down")
	// ErrInterrupted: the machine got an interruption notice, and the
	// agent takes no new jobs (503).
	ErrInterrupted = errors.New("the machine is being interrupted")
	// ErrNoGPUs: the job asks for more GPUs than are free on the host
	// (409).
	ErrNoGPUs = errors.New("not enough free GPUs")
)

// InvalidSpecError is a submitted spec that fails validation (400).
type InvalidSpecError struct{ Err error }

func (e *InvalidSpecError) Error() string { return "invalid job spec: " + e.Err.Error() }

func (e *InvalidSpecError) Unwrap() error { return e.Err }
