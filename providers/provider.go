// Package providers is the contract between the planner and the places
// that make things: cloud backends, on-prem fleets, the local machine.
//
// A provider makes four kinds of objects: instances (machines of a
// fleet), volumes, gateways, and jobs (a run's container, either on an
// existing instance or on a machine made for it). Every object is created
// with an idempotency token that the provider tags it with; Describe finds
// objects by token, so an object whose creation the planner recorded as an
// intent but never saw finish is adopted, not orphaned. Errors are typed
// (see [Error]) so that the planner, not the provider, decides between
// failing over, backing off and giving up.
package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/dstackai/dstack-go/providers/offers"
)

// ObjectKind is what an object is.
type ObjectKind string

// The kinds of objects.
const (
	KindInstance ObjectKind = "instance"
	KindVolume   ObjectKind = "volume"
	KindGateway  ObjectKind = "gateway"
	KindJob      ObjectKind = "job"
)

// Statuses an object reports.
const (
	StatusProvisioning = "provisioning"
	StatusRunning      = "running"
	StatusDone         = "done"       // a job that exited 0
	StatusFailed       = "failed"     // a job that exited non-zero, an instance that broke
	StatusTerminated   = "terminated" // gone: deleted, or interrupted
	// StatusStopped is a job stopped on purpose: on request (dstack
	// stop, a master-done run's workers), for its max_duration, or for
	// its inactivity_duration. Like a failed one it has ended, but it is
	// no error: a retry policy does not run it again.
	StatusStopped = "stopped"
	// StatusUnknown is a job whose host cannot say for now (an SSH host
	// whose agent is down): neither gone nor ended.
	StatusUnknown = "unknown"
)

// Object is one thing a provider made.
type Object struct {
	Kind ObjectKind `json:"kind"`
	// ID is the provider's name for it ("i-0abc...").
	ID string `json:"id"`
	// Token is the idempotency token it was created with.
	Token string `json:"token"`
	// Address is the dstack address it belongs to, with its index
	// ("fleet.trainers[1]"); providers tag objects with it.
	Address string `json:"address"`
	Status  string `json:"status"`
	// Reason says why the status is what it is ("spot interruption",
	// "exit code 3").
	Reason string `json:"reason,omitempty"`
	// Offer is the machine an instance or a job's own machine runs on.
	Offer *offers.Offer `json:"offer,omitempty"`
	// Host is the instance a job runs on, when it runs on a fleet's.
	Host string `json:"host,omitempty"`
	// Attributes are values learnt at creation (IP addresses, hostnames).
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Object attribute keys that providers set and the planner and the
// commands read (a provider may set others of its own).
const (
	AttrIP       = "ip"        // where the other machines of its network reach it
	AttrHostname = "hostname"  // the machine's name (a gateway's DNS name)
	AttrPorts    = "ports"     // a job's published ports: "HOST:CONTAINER,..."
	AttrExitCode = "exit_code" // a job's exit code, once it ended
	AttrRuntime  = "runtime"   // what runs a job: "docker" or "host"
	AttrHostID   = "host_id"   // a job's host instance's ID, for jobs recalled from state
	// AttrTermination is why a job ended, in one word: the agent's
	// termination ("exited", "interruption", ...). A failed job whose
	// termination is TerminationInterruption was stopped because its
	// machine was being taken away (a spot interruption notice): a retry
	// policy counts it as an "interruption", not an "error".
	AttrTermination = "termination"
	AttrFinishedAt  = "finished_at" // when a job ended, RFC 3339
	// AttrRegistered is "true" on a volume dstack did not make (volume_id,
	// claim_name): it is forgotten on destroy, never deleted.
	AttrRegistered = "registered"
)

// TerminationInterruption is the AttrTermination of a job stopped for
// its machine's interruption notice.
const TerminationInterruption = "interruption"

// Live reports whether the object still exists and works.
func (o Object) Live() bool {
	return o.Status != StatusTerminated && o.Status != StatusFailed && o.Status != StatusStopped
}

// Ended reports whether a job of this status has ended and is kept as a
// record: done, failed or stopped.
func Ended(status string) bool {
	return status == StatusDone || status == StatusFailed || status == StatusStopped
}

// CreateRequest asks for one object.
type CreateRequest struct {
	Kind    ObjectKind
	Token   string
	Address string
	// Offer is the machine to make (an instance, or the machine of a job
	// that has no Host).
	Offer *offers.Offer
	// Host is the instance a job runs on.
	Host string
	// Spec is the resource's configuration as JSON.
	Spec json.RawMessage
	// Dir is the directory relative local paths in Spec (a run's repos
	// and files) are resolved against: the configuration file's. Empty:
	// the working directory.
	Dir string
	// Env are variables the planner sets for a job: dstack's
	// DSTACK_NODE_RANK, DSTACK_NODES_NUM, DSTACK_MASTER_NODE_IP,
	// DSTACK_NODES_IPS, DSTACK_GPUS_PER_NODE, DSTACK_GPUS_NUM.
	Env map[string]string
	// Progress, when set, receives what a slow create is doing ("pulling
	// vllm/vllm-openai: 3/12 layers, 1.2GB/8GB").
	Progress func(string)
	// Stop, when closed, ends the waiting a create does after its calls
	// (a service replica's readiness): the provider removes what it made
	// for the request and returns a NotReady error. The calls themselves
	// run to their end; cancelling ctx is what stops those.
	Stop <-chan struct{}
	// SSHKeys are authorized_keys lines of the user applying: the keys
	// a dev environment's SSH server lets in.
	SSHKeys []string
	// ConfigDir is the directory of the configuration being applied,
	// which a run with `dstack: true` gets (local backend).
	ConfigDir string
	// Project identifies the project the object belongs to: the lineage
	// of the state it is recorded in, which every user of a shared state
	// sees alike. A cloud provider keys per-project secrets (the SSH key
	// its instances accept) by it; "" where there is no state.
	Project string
}

// Provider makes and finds objects. Implementations must be safe for
// concurrent use.
type Provider interface {
	// Name is the provider's name, for messages.
	Name() string
	// Offers lists the machines the provider can make now. A provider
	// without live offers returns the catalog's.
	Offers(ctx context.Context) ([]offers.Offer, error)
	// Create makes an object. A second call with the same token returns
	// the object the first one made.
	Create(ctx context.Context, req CreateRequest) (Object, error)
	// Describe returns the objects made with the given tokens, keyed by
	// token; a token whose object never existed is absent. Terminated
	// objects may be reported with StatusTerminated or left out.
	Describe(ctx context.Context, tokens []string) (map[string]Object, error)
	// Delete removes an object by ID. Deleting one that is already gone
	// is not an error.
	Delete(ctx context.Context, kind ObjectKind, id string) error
}

// Code classifies a provider error.
type Code string

// Error codes the planner acts on.
const (
	NoCapacity  Code = "no-capacity"  // fail over to the next offer
	Quota       Code = "quota"        // fail over to the next offer
	RateLimited Code = "rate-limited" // back off and retry
	Auth        Code = "auth"         // give up: credentials are wrong
	NotFound    Code = "not-found"    // the object is gone
	// Unsupported: the offer cannot be made as asked (an instance type
	// a zone does not offer, an image missing for its architecture); the
	// planner fails over to the next offer, as on capacity.
	Unsupported Code = "unsupported"
	// NotReady: the object was made but did not become ready (a service
	// replica whose probes did not pass), and the provider removed it:
	// nothing of the request is left.
	NotReady Code = "not-ready"
)

// Codes returns the codes the contract defines.
func Codes() []Code { return []Code{NoCapacity, Quota, RateLimited, Auth, NotFound, Unsupported} }

// Scope says how far a capacity or quota error reaches beyond the offer
// that met it.
type Scope string

// ScopeRegion: nothing more can be made in the offer's region (an
// account's instance or vCPU quota there), so the planner skips the
// region's other offers for the rest of the apply.
const ScopeRegion Scope = "region"

// Error is a classified provider error.
type Error struct {
	Code Code
	// RetryAfter is how long to wait before retrying a rate-limited call;
	// zero when the provider did not say.
	RetryAfter time.Duration
	// Scope, when set, says the error holds beyond the offer.
	Scope Scope
	Err   error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// CodeOf returns the code of err's *Error, or "" when it has none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ScopeOf returns the scope of err's *Error, or "".
func ScopeOf(err error) Scope {
	var e *Error
	if errors.As(err, &e) {
		return e.Scope
	}
	return ""
}

// RetryAfter returns how long a rate-limited err asks to wait, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Set maps backend names to the providers that serve them.
type Set interface {
	// For returns the provider of a backend, or an error saying why there
	// is none.
	For(backend string) (Provider, error)
	// Offers returns every offer of every provider, for placement.
	Offers(ctx context.Context) ([]offers.Offer, error)
}

// JobControl is implemented by providers whose jobs run through a host
// agent: their output and stopping them.
type JobControl interface {
	// Logs streams a job's output from byte offset since; with follow it
	// ends when the job has ended and its output is drained.
	Logs(ctx context.Context, id string, since int64, follow bool) (io.ReadCloser, error)
	// StopJob stops a job: SIGTERM, then SIGKILL after its grace period,
	// or SIGKILL at once with abort.
	StopJob(ctx context.Context, id string, abort bool) error
}

// Execer is implemented by providers that can run a command inside a
// running job (`dstack attach RUN -- CMD`).
type Execer interface {
	Exec(ctx context.Context, id string, command []string, tty bool, stdin io.Reader, stdout io.Writer) (exitCode int, err error)
}

// Recaller is implemented by providers that reach their objects through
// what the state recorded of them rather than through a cloud API (an
// SSH fleet's hosts: address, user, key, trusted host key). The planner
// and the CLI hand it the recorded objects (a job's Host is its
// instance's ID) before they describe, change or use them.
type Recaller interface {
	Recall(objs []Object)
}

// PortDialer is implemented by providers whose jobs' published ports are
// reached through a tunnel (an SSH fleet's hosts), for `dstack attach`.
type PortDialer interface {
	DialPort(ctx context.Context, jobID string, hostPort int) (net.Conn, error)
}

// SSHHop is one SSH server on the way to a job's host, as an OpenSSH
// client is told of it.
type SSHHop struct {
	Host         string
	Port         int
	User         string
	IdentityFile string // "": the client's own keys
	// HostKey is the server's key in authorized_keys format, which the
	// client checks.
	HostKey string
}

// SSHJumper is an optional capability of a provider whose jobs' ports are
// reached through SSH (a PortDialer): the hops, outermost first and the
// job's host last, through which an OpenSSH client reaches the loopback
// of the host of the job with ID jobID (`ssh RUN` to a dev environment).
type SSHJumper interface {
	SSHJumps(jobID string) ([]SSHHop, error)
}
