package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
)

// DefaultLogLimit caps the bytes of each job's log kept on disk.
const DefaultLogLimit = 64 << 20

// housekeepingInterval is how often running jobs' logs are checked against
// the size cap. A job that writes faster than the cap per interval
// overshoots it by at most one interval's output before the next check.
const housekeepingInterval = time.Second

// Options configure a Manager.
type Options struct {
	// DataDir holds the jobs (DataDir/jobs/<id>/job.json and output.log)
	// and the lock that keeps a second agent off them.
	DataDir string
	// Runtimes are the runtimes the manager may run jobs with, by Name.
	Runtimes []Runtime
	// Logger receives the manager's events; nil discards them.
	Logger *slog.Logger
	// LogLimit caps each job's log on disk, in bytes (DefaultLogLimit when
	// 0). See Manager for what happens at the cap.
	LogLimit int64
	// GPUs are the host's GPUs, among which jobs that ask for a GPUCount
	// get theirs.
	GPUs []GPU
	// BlobIdle is how long a blob (a repo's or files' archive) is kept
	// after its last use when no unfinished job needs it
	// (DefaultBlobIdle when 0).
	BlobIdle time.Duration
}

// Manager runs jobs through the runtimes and keeps their records.
//
// Every job lives in DataDir/jobs/<id>/: job.json is its spec (without the
// registry password) and status, rewritten atomically on every change, and
// output.log is its output. A new Manager on the same DataDir reloads the
// jobs and asks their runtime to Reattach the ones that had not ended;
// those the runtime cannot find become failed with the reason "lost while
// the agent was down". Closing a Manager leaves the jobs running.
//
// Logs: output.log is capped at LogLimit bytes. When a job's log grows past
// the cap, the manager keeps the newest three quarters of the cap (from a
// line start) and drops the rest by punching a hole in the file, so byte
// offsets stay valid for readers that resume, and the disk space is freed
// (Job.LogDropped says where the kept part starts). The cap is checked every
// second and when the job ends; output written while the agent is down is
// trimmed once the agent is back.
//
// A Manager is safe for concurrent use.
type Manager struct {
	dir      string
	runtimes map[string]Runtime
	log      *slog.Logger
	logLimit int64
	gpus     []GPU    // the host's, for jobs that ask for a GPUCount
	lock     *os.File // holds an exclusive flock on DataDir/agent.lock
	blobs    *blobStore
	blobIdle time.Duration

	// lifetime ends when Close is called. The goroutines that watch jobs
	// outlive the requests that start them, so they take their context
	// from here, as http.Server's handlers take theirs from BaseContext.
	lifetime       context.Context
	cancelLifetime context.CancelFunc
	watchers       sync.WaitGroup // watch goroutines and housekeeping
	starting       sync.WaitGroup // Runtime.Start calls in flight

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
	// interruption is the machine's interruption notice, once one came
	// (see Interrupt): no job is accepted after it.
	interruption *Interruption
}

// job is the manager's view of one job; its fields are guarded by
// Manager.mu, except done and dir, which never change.
type job struct {
	rec    record
	dir    string
	handle Handle // set once the job runs
	// cancelStart cancels the Start in flight; nil outside Start.
	cancelStart context.CancelFunc
	// stopGrace is the grace period of the latest stop request.
	stopGrace time.Duration
	// done is closed once the job's final state is recorded.
	done chan struct{}
	// warnedPunch is set once trimming failed to free space, to warn once.
	warnedPunch bool
	// indexed is the log's size at the time index's last entry (see
	// logtimes.go); warnedTimes is set once writing the index failed.
	indexed     int64
	warnedTimes bool
	// dropped mirrors rec.Job.LogDropped for log readers, which check it
	// after every read and should not wait for m.mu.
	dropped atomic.Int64
	// sessions counts who is attached (exec sessions, followed logs);
	// lastActive is when the last one ended (unix nanoseconds).
	sessions   atomic.Int32
	lastActive atomic.Int64
}

// Session records that someone is attached to a job until the returned
// function is called: while anyone is, the job is active (see
// JobSpec.InactivitySeconds).
func (m *Manager) Session(id string) func() {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return func() {}
	}
	j.sessions.Add(1)
	return func() {
		j.lastActive.Store(time.Now().UnixNano())
		j.sessions.Add(-1)
	}
}

// stopFor records why the manager stops a job (mark), then stops it with
// its grace period.
func (m *Manager) stopFor(j *job, h Handle, mark func(*record), why string) {
	m.mu.Lock()
	mark(&j.rec)
	m.persist(j)
	grace := j.rec.Job.Spec.StopGrace()
	id := j.rec.Job.Spec.ID
	m.mu.Unlock()
	m.log.Info(why, "job", id)
	if err := h.Stop(m.lifetime, grace); err != nil {
		m.log.Warn("stop failed", "job", id, "err", err)
	}
}

// watchInactivity stops a job nobody has been attached to for limit.
func (m *Manager) watchInactivity(j *job, h Handle, limit time.Duration) {
	tick := time.NewTicker(min(limit/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-j.done:
			return
		case <-m.lifetime.Done():
			return
		}
		m.mu.Lock()
		since := j.rec.Job.StartedAt
		m.mu.Unlock()
		if last := j.lastActive.Load(); last > since.UnixNano() {
			since = time.Unix(0, last)
		}
		open := j.sessions.Load() > 0
		if ar, ok := h.(ActivityReporter); ok {
			if n, last, ok := ar.Activity(); ok {
				open = open || n > 0
				if last.After(since) {
					since = last
				}
			}
		}
		if open || time.Since(since) < limit {
			continue
		}
		m.stopFor(j, h, func(r *record) { r.Inactive = true }, "job inactive")
		return
	}
}

// record is what job.json holds.
type record struct {
	Job Job `json:"job"`
	// Expired says the job was stopped for running past its max duration.
	Expired bool `json:"expired,omitempty"`
	// Inactive says the job was stopped for its inactivity.
	Inactive bool `json:"inactive,omitempty"`
	// StopRequested survives restarts so that a job stopped just before
	// the agent went down still ends as stopped.
	StopRequested bool `json:"stop_requested,omitempty"`
	// Interrupted is the interruption notice the job was stopped for
	// (see Manager.Interrupt); empty if none.
	Interrupted string `json:"interrupted,omitempty"`
}

func (j *job) logPath() string { return filepath.Join(j.dir, "output.log") }

// NewManager opens the jobs under opts.DataDir and re-attaches to the ones
// that had not ended. Only one Manager at a time may use a data dir; a
// second one (in any process) gets an error naming the dir.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.DataDir == "" {
		return nil, errors.New("agent: no data dir")
	}
	jobsDir := filepath.Join(opts.DataDir, "jobs")
	if err := os.MkdirAll(jobsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		dir:      opts.DataDir,
		runtimes: make(map[string]Runtime),
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		logLimit: cmp.Or(opts.LogLimit, DefaultLogLimit),
		lock:     lock,
		jobs:     make(map[string]*job),
		gpus:     slices.Clone(opts.GPUs),
	}
	for _, rt := range opts.Runtimes {
		m.runtimes[rt.Name()] = rt
	}
	// Absolute: the docker runtime bind-mounts blobs by their path.
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		m.lock.Close()
		return nil, fmt.Errorf("data dir: %w", err)
	}
	m.blobs = &blobStore{dir: filepath.Join(abs, "blobs"), log: m.log}
	m.blobIdle = cmp.Or(opts.BlobIdle, DefaultBlobIdle)
	m.lifetime, m.cancelLifetime = context.WithCancel(context.WithoutCancel(ctx))
	if err := m.load(ctx); err != nil {
		m.cancelLifetime()
		m.lock.Close()
		return nil, err
	}
	m.watchers.Add(2)
	go m.housekeeping()
	go m.indexLogs()
	return m, nil
}

// lockDir takes an exclusive, non-blocking flock on dir/agent.lock. The
// kernel drops it when the process dies, so a crashed agent leaves no stale
// lock behind.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another agent is using the data dir %s", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// load reads every job record and re-attaches to the unfinished jobs.
func (m *Manager) load(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(m.dir, "jobs"))
	if err != nil {
		return fmt.Errorf("read jobs: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(m.dir, "jobs", e.Name())
		data, err := os.ReadFile(filepath.Join(dir, "job.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a submit that died before its first write
		}
		var rec record
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil || rec.Job.Spec.ID != e.Name() {
			m.log.Warn("skipping unreadable job record", "dir", dir, "err", err)
			continue
		}
		j := &job{rec: rec, dir: dir, done: make(chan struct{})}
		j.dropped.Store(rec.Job.LogDropped)
		m.jobs[rec.Job.Spec.ID] = j
		if rec.Job.State.Finished() {
			close(j.done)
			continue
		}
		m.reattach(ctx, j)
	}
	return nil
}

// reattach finds an unfinished job's process or container again and starts
// watching it, or records the job as lost.
func (m *Manager) reattach(ctx context.Context, j *job) {
	spec := j.rec.Job.Spec
	rt, ok := m.runtimes[j.rec.Job.Runtime]
	if !ok {
		m.fail(j, TerminationLost, fmt.Sprintf("lost while the agent was down: the %s runtime is not available", j.rec.Job.Runtime))
		return
	}
	h, found, err := rt.Reattach(ctx, spec, j.logPath())
	if err != nil {
		m.log.Warn("reattach failed", "job", spec.ID, "err", err)
		m.fail(j, TerminationLost, "lost while the agent was down: "+err.Error())
		return
	}
	if !found {
		m.fail(j, TerminationLost, "lost while the agent was down")
		return
	}
	j.handle = h
	r := &j.rec.Job
	r.State = StateRunning
	r.Reason = ""
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now().UTC()
	}
	r.Ports = h.Ports()
	j.stopGrace = spec.StopGrace()
	m.trimLog(j)
	m.persist(j)
	m.log.Info("reattached job", "job", spec.ID, "runtime", rt.Name())
	stopping, grace := j.rec.StopRequested || j.rec.Interrupted != "", j.stopGrace
	m.watchers.Add(1)
	go func() {
		defer m.watchers.Done()
		if stopping {
			// The agent went down while stopping the job: finish that.
			if err := h.Stop(m.lifetime, grace); err != nil {
				m.log.Warn("stop after restart failed", "job", spec.ID, "err", err)
			}
		}
		m.watch(j, h)
	}()
}

// fail records a job that ended without an exit code. The caller holds
// m.mu or owns j exclusively (during load).
func (m *Manager) fail(j *job, term Termination, reason string) {
	r := &j.rec.Job
	r.State = StateFailed
	if j.rec.StopRequested {
		r.State = StateStopped
	}
	r.Termination = term
	r.Reason = reason
	r.FinishedAt = time.Now().UTC()
	m.persist(j)
	close(j.done)
}

// Runtimes lists the names of the manager's runtimes, sorted.
func (m *Manager) Runtimes() []string {
	names := make([]string, 0, len(m.runtimes))
	for name := range m.runtimes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// runtimeFor picks the runtime of a spec: host without an image, docker
// with one.
func (m *Manager) runtimeFor(spec JobSpec) (Runtime, error) {
	name := "host"
	if spec.Image != "" {
		name = "docker"
	}
	rt, ok := m.runtimes[name]
	if !ok {
		return nil, fmt.Errorf("%w: it needs the %s runtime", ErrNoRuntime, name)
	}
	return rt, nil
}

// Submit accepts a job and starts it in the background; it returns the job
// in its first state and created=true. Submitting an ID that exists returns
// that job as it is and created=false, whatever the new spec says, so a
// submitter can retry safely. Errors: *InvalidSpecError, ErrNoRuntime,
// ErrClosed, or a failure to write the job's record.
func (m *Manager) Submit(ctx context.Context, spec JobSpec) (Job, bool, error) {
	if err := spec.Validate(); err != nil {
		return Job{}, false, &InvalidSpecError{Err: err}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Job{}, false, ErrClosed
	}
	if j, ok := m.jobs[spec.ID]; ok {
		return j.snapshot(), false, nil
	}
	if m.interruption != nil {
		return Job{}, false, fmt.Errorf("job %s: %w (%s)", spec.ID, ErrInterrupted, m.interruption.Notice)
	}
	rt, err := m.runtimeFor(spec)
	if err != nil {
		return Job{}, false, err
	}
	if err := m.blobs.check(spec); err != nil {
		return Job{}, false, err
	}
	if spec.GPUCount > 0 && len(spec.GPUs) == 0 {
		if spec.GPUs, err = m.freeGPUs(spec.GPUCount); err != nil {
			return Job{}, false, fmt.Errorf("job %s: %w", spec.ID, err)
		}
	}
	dir := filepath.Join(m.dir, "jobs", spec.ID)
	// A directory without a readable record is debris of an earlier job.
	if err := os.RemoveAll(dir); err != nil {
		return Job{}, false, fmt.Errorf("job %s: clear old files: %w", spec.ID, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Job{}, false, fmt.Errorf("job %s: create dir: %w", spec.ID, err)
	}
	j := &job{
		rec: record{Job: Job{
			Spec:      spec.Redacted(),
			State:     StatePending,
			Runtime:   rt.Name(),
			CreatedAt: time.Now().UTC(),
		}},
		dir:       dir,
		done:      make(chan struct{}),
		stopGrace: spec.StopGrace(),
	}
	// The log exists from the start, so that readers can open it at once.
	if err := os.WriteFile(j.logPath(), nil, 0o600); err != nil {
		return Job{}, false, fmt.Errorf("job %s: create log: %w", spec.ID, err)
	}
	if err := m.write(j); err != nil {
		os.RemoveAll(dir)
		return Job{}, false, err
	}
	startCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j.cancelStart = cancel
	m.jobs[spec.ID] = j
	m.starting.Add(1)
	m.watchers.Add(1)
	go m.run(startCtx, j, rt, spec.runSpec(rt.Name(), m.blobs))
	m.log.Info("job submitted", "job", spec.ID, "run", spec.RunName, "runtime", rt.Name())
	return j.snapshot(), true, nil
}

// run starts a job and then watches it to its end.
func (m *Manager) run(ctx context.Context, j *job, rt Runtime, spec JobSpec) {
	defer m.watchers.Done()
	progress := func(state JobState, msg string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if j.rec.Job.State.Finished() || (state != StatePulling && state != StateCreating) {
			return
		}
		if j.rec.Job.State != state || j.rec.Job.Reason != msg {
			j.rec.Job.State, j.rec.Job.Reason = state, msg
			m.persist(j)
		}
	}
	h, err := rt.Start(ctx, spec, j.logPath(), progress)
	m.starting.Done()

	m.mu.Lock()
	j.cancelStart()
	j.cancelStart = nil
	if err != nil {
		defer m.mu.Unlock()
		if m.closed && ctx.Err() != nil && !j.rec.StopRequested {
			// Close gave up waiting for this start: leave the record as it
			// is, for the next agent's Reattach to settle.
			return
		}
		switch {
		case j.rec.StopRequested:
			m.fail(j, TerminationStopRequest, "stopped before it started")
		case j.rec.Interrupted != "":
			m.fail(j, TerminationInterruption, "interrupted before it started ("+j.rec.Interrupted+")")
		default:
			m.fail(j, TerminationStartFailed, err.Error())
		}
		m.log.Info("job failed to start", "job", spec.ID, "err", err)
		return
	}
	j.handle = h
	r := &j.rec.Job
	r.State = StateRunning
	r.Reason = ""
	r.StartedAt = time.Now().UTC()
	r.Ports = h.Ports()
	stop, grace := j.rec.StopRequested || j.rec.Interrupted != "", j.stopGrace
	m.persist(j)
	m.mu.Unlock()
	m.log.Info("job running", "job", spec.ID)

	if stop {
		if err := h.Stop(m.lifetime, grace); err != nil {
			m.log.Warn("stop failed", "job", spec.ID, "err", err)
		}
	}
	m.watch(j, h)
}

// watch waits for a running job to end and records how it ended. It
// returns early, recording nothing, when the manager closes.
func (m *Manager) watch(j *job, h Handle) {
	if limit := time.Duration(j.rec.Job.Spec.MaxDurationSeconds) * time.Second; limit > 0 {
		m.mu.Lock()
		started := j.rec.Job.StartedAt
		m.mu.Unlock()
		expire := time.NewTimer(time.Until(started.Add(limit)))
		defer expire.Stop()
		go func() {
			select {
			case <-expire.C:
			case <-j.done:
				return
			case <-m.lifetime.Done():
				return
			}
			m.stopFor(j, h, func(r *record) { r.Expired = true }, "job ran past its max duration")
		}()
	}
	if limit := time.Duration(j.rec.Job.Spec.InactivitySeconds) * time.Second; limit > 0 {
		go m.watchInactivity(j, h, limit)
	}
	code, reason, err := h.Wait(m.lifetime)
	if err != nil && m.lifetime.Err() != nil {
		return // closing: the job runs on, for the next agent to re-attach
	}
	m.mu.Lock()
	stopped := j.rec.StopRequested || j.rec.Inactive || j.rec.Expired || j.rec.Interrupted != ""
	m.mu.Unlock()
	if err == nil && stopped {
		// A stopped job is not coming back: free its container (or
		// working files) now rather than at Delete. Its output is in the
		// log file, which stays.
		if err := h.Remove(m.lifetime); err != nil {
			m.log.Warn("remove stopped job", "job", j.rec.Job.Spec.ID, "err", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.log.Warn("lost track of job", "job", j.rec.Job.Spec.ID, "err", err)
		m.fail(j, TerminationLost, "lost track of the job: "+err.Error())
		return
	}
	m.indexLog(j)
	m.trimLog(j)
	r := &j.rec.Job
	r.ExitCode = &code
	r.Reason = reason
	r.FinishedAt = time.Now().UTC()
	r.Termination = TerminationExited
	switch {
	case j.rec.StopRequested:
		r.State, r.Termination = StateStopped, TerminationStopRequest
		r.Reason = "stopped on request: " + reason
	case j.rec.Interrupted != "":
		// Failed, not stopped: the job did not get to finish, and its
		// retry policy decides whether it runs again elsewhere.
		r.State, r.Termination = StateFailed, TerminationInterruption
		r.Reason = "interrupted (" + j.rec.Interrupted + "): " + reason
	case j.rec.Inactive:
		r.State, r.Termination = StateStopped, TerminationInactivity
		r.Reason = fmt.Sprintf("stopped after %s without anyone attached: %s", time.Duration(r.Spec.InactivitySeconds)*time.Second, reason)
	case j.rec.Expired:
		r.State, r.Termination = StateStopped, TerminationMaxDuration
		r.Reason = fmt.Sprintf("stopped after its max duration of %s: %s", time.Duration(r.Spec.MaxDurationSeconds)*time.Second, reason)
	case code == 0:
		r.State = StateDone
	default:
		r.State = StateFailed
	}
	m.persist(j)
	close(j.done)
	m.log.Info("job ended", "job", r.Spec.ID, "state", r.State, "reason", r.Reason)
}

// housekeeping enforces the log cap of running jobs until Close.
func (m *Manager) housekeeping() {
	defer m.watchers.Done()
	t := time.NewTicker(housekeepingInterval)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-m.lifetime.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		inUse := map[string]bool{}
		for _, j := range m.jobs {
			if !j.rec.Job.State.Finished() {
				m.trimLog(j)
				for _, h := range j.rec.Job.Spec.blobs() {
					inUse[h] = true
				}
			}
		}
		m.mu.Unlock()
		if time.Since(swept) >= min(blobSweepInterval, m.blobIdle) {
			m.blobs.sweep(inUse, m.blobIdle)
			swept = time.Now()
		}
	}
}

// Get returns the job with the ID, or ErrNotFound.
func (m *Manager) Get(id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return j.snapshot(), nil
}

// List returns the jobs, oldest first; with runName set, only that run's.
func (m *Manager) List(runName string) []Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	jobs := make([]Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		if runName == "" || j.rec.Job.Spec.RunName == runName {
			jobs = append(jobs, j.snapshot())
		}
	}
	slices.SortFunc(jobs, func(a, b Job) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Spec.ID, b.Spec.ID))
	})
	return jobs
}

// Stop stops a job: SIGTERM, then SIGKILL after the grace period (the
// request's, or the spec's, or DefaultStopGrace; none with req.Abort). A
// job still starting is cancelled. Once the job has ended its runtime
// frees what it held (Handle.Remove: its container, its working files);
// its record and log stay until Delete. Stop returns the job once it has
// ended, in state stopped (or as it was, when it had already ended), or
// ctx's error if ctx ends first; the stop goes on regardless.
func (m *Manager) Stop(ctx context.Context, id string, req StopRequest) (Job, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	if !ok {
		m.mu.Unlock()
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if j.rec.Job.State.Finished() {
		defer m.mu.Unlock()
		return j.snapshot(), nil
	}
	if m.closed {
		m.mu.Unlock()
		return Job{}, ErrClosed
	}
	grace := j.rec.Job.Spec.StopGrace()
	if req.GraceSeconds != nil {
		grace = time.Duration(max(*req.GraceSeconds, 0)) * time.Second
	}
	if req.Abort {
		grace = 0
	}
	j.stopGrace = grace
	if !j.rec.StopRequested {
		j.rec.StopRequested = true
		m.persist(j)
	}
	h, cancelStart := j.handle, j.cancelStart
	if h != nil {
		m.watchers.Add(1) // under m.mu, so never after Close's Wait began
	}
	m.mu.Unlock()

	m.log.Info("stopping job", "job", id, "grace", grace)
	switch {
	case h != nil:
		// The stop runs to its end (SIGKILL after the grace period) even
		// if the caller stops waiting for it.
		go func() {
			defer m.watchers.Done()
			if err := h.Stop(m.lifetime, grace); err != nil && m.lifetime.Err() == nil {
				m.log.Error("stop failed", "job", id, "err", err)
			}
		}()
	case cancelStart != nil:
		cancelStart() // run records the job as stopped once Start returns
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return Job{}, fmt.Errorf("job %s: wait for the stop: %w", id, ctx.Err())
	}
	return m.Get(id)
}

// Delete stops the job if it runs (with its spec's grace period), frees
// what its runtime holds, and removes its record and log.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if _, err := m.Stop(ctx, id, StopRequest{}); err != nil {
		return err
	}
	m.mu.Lock()
	j, ok := m.jobs[id]
	if !ok {
		m.mu.Unlock()
		return nil // deleted meanwhile
	}
	h, spec, runtime := j.handle, j.rec.Job.Spec, j.rec.Job.Runtime
	m.mu.Unlock()

	if h == nil {
		// Loaded as ended after a restart: the runtime may still hold
		// something (a stopped container, a working dir) to free.
		if rt, ok := m.runtimes[runtime]; ok {
			found, ok, err := rt.Reattach(ctx, spec, j.logPath())
			if err != nil {
				return fmt.Errorf("job %s: find to remove: %w", id, err)
			}
			if ok {
				h = found
			} else if c, ok := rt.(Cleaner); ok {
				if err := c.Cleanup(ctx, spec); err != nil {
					return fmt.Errorf("job %s: clean up: %w", id, err)
				}
			}
		}
	}
	if h != nil {
		if err := h.Remove(ctx); err != nil {
			return fmt.Errorf("job %s: remove: %w", id, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs[id] == j {
		delete(m.jobs, id)
	}
	if err := os.RemoveAll(j.dir); err != nil {
		return fmt.Errorf("job %s: remove files: %w", id, err)
	}
	m.log.Info("job deleted", "job", id)
	return nil
}

// running returns a running job's handle and spec, or ErrNotFound or
// ErrNotRunning.
func (m *Manager) running(id string) (Handle, JobSpec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	switch {
	case !ok:
		return nil, JobSpec{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	case j.handle == nil || j.rec.Job.State != StateRunning:
		return nil, JobSpec{}, fmt.Errorf("job %s: %w", id, ErrNotRunning)
	}
	return j.handle, j.rec.Job.Spec, nil
}

// Metrics reports a running job's resource use, or ErrNotRunning.
func (m *Manager) Metrics(ctx context.Context, id string) (Metrics, error) {
	h, _, err := m.running(id)
	if err != nil {
		return Metrics{}, err
	}
	mt, err := h.Metrics(ctx)
	if err != nil {
		return Metrics{}, fmt.Errorf("job %s: metrics: %w", id, err)
	}
	return mt, nil
}

// Close stops watching the jobs, detaches their handles (see Detacher)
// and releases the data dir, leaving the jobs running for the next Manager
// to re-attach. It first lets the starts in flight finish, until ctx ends;
// then it cancels them.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()

	started := make(chan struct{})
	go func() { m.starting.Wait(); close(started) }()
	select {
	case <-started:
	case <-ctx.Done():
		m.mu.Lock()
		for _, j := range m.jobs {
			if j.cancelStart != nil {
				j.cancelStart()
			}
		}
		m.mu.Unlock()
		<-started
	}
	m.cancelLifetime()
	m.watchers.Wait()
	m.mu.Lock()
	for _, j := range m.jobs {
		if d, ok := j.handle.(Detacher); ok {
			d.Detach()
		}
	}
	m.mu.Unlock()
	if err := m.lock.Close(); err != nil {
		return fmt.Errorf("release data dir lock: %w", err)
	}
	return nil
}

// snapshot copies the job for a caller; the caller holds m.mu.
func (j *job) snapshot() Job {
	c := j.rec.Job
	c.Spec = c.Spec.Redacted()
	c.Ports = slices.Clone(c.Ports)
	if c.ExitCode != nil {
		code := *c.ExitCode
		c.ExitCode = &code
	}
	return c
}

// persist writes a job's record, logging a failure: the in-memory state
// stays right, and the next change writes again. The caller holds m.mu.
func (m *Manager) persist(j *job) {
	if err := m.write(j); err != nil {
		m.log.Error("write job record", "job", j.rec.Job.Spec.ID, "err", err)
	}
}

// write replaces job.json atomically: a reader (or the next agent) sees
// the old record or the new one, never a torn one.
func (m *Manager) write(j *job) error {
	data, err := json.MarshalIndent(j.rec, "", "  ")
	if err != nil {
		return fmt.Errorf("job %s: encode record: %w", j.rec.Job.Spec.ID, err)
	}
	if err := renameio.WriteFile(filepath.Join(j.dir, "job.json"), data, 0o600); err != nil {
		return fmt.Errorf("job %s: write record: %w", j.rec.Job.Spec.ID, err)
	}
	return nil
}

// freeGPUs picks n of the host's GPUs that no job that has not ended
// holds, lowest index first. m.mu is held.
func (m *Manager) freeGPUs(n int) ([]string, error) {
	held := map[string]bool{}
	for _, j := range m.jobs {
		if !j.rec.Job.State.Finished() {
			for _, g := range j.rec.Job.Spec.GPUs {
				held[g] = true
			}
		}
	}
	var free []string
	for _, g := range m.gpus {
		id := g.UUID
		if id == "" {
			id = strconv.Itoa(g.Index)
		}
		if !held[id] && !held[strconv.Itoa(g.Index)] {
			free = append(free, id)
		}
	}
	if len(free) < n {
		return nil, fmt.Errorf("%w: the job needs %d, %d of the host's %d are free", ErrNoGPUs, n, len(free), len(m.gpus))
	}
	return free[:n], nil
}
