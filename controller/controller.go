// Package controller is dstack's control loop: what `dstack server` runs
// beside a state, one loop per state (workspace). It keeps what was
// applied running between applies, the way an autoscaling group keeps its
// instances, and every action it takes is a plan carried out by the
// planner, like a person's apply:
//
//   - a tick takes the state's lock (a lease, as apply does), recovers a
//     journal, refreshes from the providers, plans, applies under the
//     lease's fencing, writes the state and releases the lock: the lock is
//     held only while it reconciles, so `dstack plan` and `apply` of
//     people and CI go on between ticks (they wait with -lock-timeout, and
//     a tick that finds the lock held waits for the next one);
//   - it plans the configuration the state records (planner.RecordedConfig),
//     never files on disk, so it applies nothing that nobody applied;
//   - what it decides from what it observes (planner.Control) stays within
//     what the configuration allows, so `dstack plan` afterwards shows no
//     change for it.
//
// What it does, each tick: replaces service replicas whose container died
// (the refresh finds them gone, the plan makes them again) and replicas
// whose probes fail a number of times in a row; re-runs tasks per their
// retry policy (interruption, error; no-capacity is waited out by apply);
// tears down fleet instances idle longer than the fleet's idle_duration,
// down to its nodes minimum; starts tasks with a schedule at their cron
// times; scales services with `scaling: {metric: rps}` on the request rate
// a RateSource (the gateway) reports, within their replica range, with
// scale_up_delay and scale_down_delay, down to zero where min is 0.
// max_duration is enforced by the agent that runs the job.
package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/interp"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
)

// Providers is what the loop reaches the clouds and agents through.
type Providers interface {
	providers.Set
	// HostsBackend is the backend of fleets of given hosts, "" for none.
	HostsBackend() string
}

// Options configure a Loop.
type Options struct {
	Backend   state.Backend
	Workspace string
	Providers Providers
	// Rates reports services' request rates (the gateway's); nil: services
	// with scaling keep their replica count.
	Rates RateSource
	// Interval is the time between ticks (10s when zero).
	Interval time.Duration
	// LockTTL is the lease's length (the backend's when zero).
	LockTTL time.Duration
	// ProbeFailures is how many probe rounds in a row a replica may fail
	// before it is replaced (3 when zero).
	ProbeFailures int
	// ProbeClient sends the probes (one with the probe's timeout when nil).
	ProbeClient *http.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logf reports what the loop does (nothing when nil).
	Logf func(format string, args ...any)
	// Config, when set, loads the configuration files (the directory the
	// server runs in): a resource whose loaded configuration is the one
	// the state records (the same hash) is planned from the file, with
	// its sensitive values, which the state holds masked. Anything else
	// in the files (not applied yet) is ignored.
	Config func() (*lang.Config, error)
	// Publish, when set, is called with the state after every tick that
	// changed it, so that what routes requests to the replicas (the
	// gateway) follows what the loop did. Its error is reported; the tick
	// stands.
	Publish func(ctx context.Context, st *state.State) error
	// OpenSecrets opens the named secrets of st (the team's key is the
	// caller's) for the jobs of a plan that references them; nil: a plan
	// that references secrets fails.
	OpenSecrets func(st *state.State, names []string) (map[string]string, error)
	// Events receives the apply events of the loop's plans, secret
	// values hidden.
	Events      func(planner.Event)
	ToolVersion string
}

// Loop is one state's control loop. Its methods are safe for concurrent
// use: Tick runs one at a time.
type Loop struct {
	opts Options

	tickMu sync.Mutex // one tick at a time

	mu sync.Mutex
	// firstSeen is when the loop first saw each resource; lastScale when
	// it last scaled each service.
	firstSeen map[string]time.Time
	lastScale map[string]time.Time
	// lastStart is when the loop last started each scheduled task.
	lastStart map[string]time.Time
	// lowSince is when each job's GPUs were first seen under its run's
	// utilization_policy.
	lowSince map[string]time.Time
	// deaths counts the times in a row each run's jobs died and were made
	// again, for the backoff of one that keeps dying.
	deaths map[string]deaths
	// idleSince is when each fleet instance was first seen idle.
	idleSince map[string]time.Time
	// probeFails counts each replica's failed probe rounds in a row.
	probeFails map[string]int
	// rates are the last request rates read, by service address.
	rates   map[string]float64
	history []Report
	st      *state.State
	// applyQ holds saved plans handed in through the API, applied by the
	// next tick.
	applyQ []*pendingApply
}

// New returns a loop; Run or Tick drive it.
func New(opts Options) *Loop {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.ProbeFailures <= 0 {
		opts.ProbeFailures = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ToolVersion == "" {
		opts.ToolVersion = "dev"
	}
	return &Loop{opts: opts, firstSeen: map[string]time.Time{}, lastScale: map[string]time.Time{}, lastStart: map[string]time.Time{},
		idleSince: map[string]time.Time{}, deaths: map[string]deaths{}, lowSince: map[string]time.Time{}, probeFails: map[string]int{}, rates: map[string]float64{}}
}

// Report is what one tick did.
type Report struct {
	Time time.Time `json:"time"`
	// Serial is the state's serial after the tick.
	Serial uint64 `json:"serial"`
	// Waited says why the tick did nothing this time (the lock was held).
	Waited string `json:"waited,omitempty"`
	// Changes are the plan's changes, "address: reason".
	Changes []string `json:"changes,omitempty"`
	Drift   []string `json:"drift,omitempty"`
	// Skipped are the resources the loop leaves alone, and why.
	Skipped map[string]string `json:"skipped,omitempty"`
	Error   string            `json:"error,omitempty"`
	Elapsed float64           `json:"elapsed_seconds"`
}

func (l *Loop) logf(format string, args ...any) {
	if l.opts.Logf != nil {
		l.opts.Logf(format, args...)
	}
}

// Run ticks every Interval until ctx ends. A tick's error is reported and
// the loop goes on.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		if _, err := l.Tick(ctx); err != nil && ctx.Err() == nil {
			l.logf("tick: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// lockInfo describes the loop's lock.
func (l *Loop) lockInfo() state.LockInfo {
	host, _ := os.Hostname()
	return state.LockInfo{Operation: "server", Who: "dstack server@" + host, Version: l.opts.ToolVersion,
		Path: l.opts.Workspace, Host: host, PID: os.Getpid()}
}

// Tick reconciles once: lock, recover, refresh, observe, plan, apply,
// unlock. A lock held by someone else is no error: the tick waits for
// the next one (Report.Waited).
func (l *Loop) Tick(ctx context.Context) (rep Report, err error) {
	l.tickMu.Lock()
	defer l.tickMu.Unlock()
	start := time.Now()
	rep.Time = l.opts.Now().UTC()
	defer func() {
		rep.Elapsed = time.Since(start).Seconds()
		if err != nil {
			rep.Error = err.Error()
		}
		l.mu.Lock()
		l.history = append(l.history, rep)
		if len(l.history) > 100 {
			l.history = l.history[len(l.history)-100:]
		}
		l.mu.Unlock()
	}()
	info := l.lockInfo()
	lease, err := state.Hold(ctx, l.opts.Backend, l.opts.Workspace, info, state.HoldOptions{TTL: l.opts.LockTTL})
	var locked *state.LockedError
	if errors.As(err, &locked) {
		rep.Waited = locked.Error()
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("locking the state: %w", err)
	}
	defer func() {
		if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = fmt.Errorf("releasing the lock: %w", rerr)
		}
	}()
	store := &planner.Store{Backend: l.opts.Backend, Workspace: l.opts.Workspace, LockID: lease.Info.ID}
	snap, _, err := planner.Recover(ctx, store, l.opts.ToolVersion)
	if err != nil {
		return rep, fmt.Errorf("reading the state: %w", err)
	}
	if snap == nil {
		return rep, l.applyQueued(ctx, lease, store, nil, &rep)
	}
	store.Version = snap.Version
	st := snap.State
	rep.Serial = st.Serial
	if len(l.queued()) > 0 {
		// A saved plan handed in through the API goes first, against the
		// state as stored (it was made against that).
		return rep, l.applyQueued(ctx, lease, store, snap, &rep)
	}
	before := map[string]int{}
	jobs := map[string]map[string]*state.Instance{} // the runs' jobs before the refresh
	for _, r := range st.Resources {
		before[r.Address] = len(r.Instances)
		if a, err := lang.ParseAddress(r.Address); err == nil && a.Kind.IsRun() {
			jobs[r.Address] = map[string]*state.Instance{}
			for _, in := range r.Instances {
				if in.ProviderID != "" && !planner.Abandoned(in) {
					cp := *in
					jobs[r.Address][in.Token] = &cp
				}
			}
		}
	}
	drift, err := planner.Refresh(ctx, st, l.opts.Providers, planner.RefreshOptions{Holder: lease.Info.ID, WriterGone: local.ProcessGone})
	if err != nil {
		return rep, fmt.Errorf("refreshing: %w", err)
	}
	for _, d := range drift {
		rep.Drift = append(rep.Drift, d.Message)
	}
	cfg, skipped := planner.RecordedConfig(st)
	if l.opts.Config != nil {
		loaded, err := l.opts.Config()
		if err != nil {
			l.logf("loading the configuration files (the recorded configuration serves): %v", err)
		}
		if loaded != nil {
			for a, r := range loaded.Resources {
				if prior := st.Resource(a.String()); prior != nil && prior.ConfigHash != "" && r.Hash() == prior.ConfigHash {
					cfg.Resources[a] = r
					delete(skipped, a.String())
				}
			}
		}
	}
	dead, stopped := l.dropped(ctx, st, jobs)
	now := l.opts.Now()
	// Runs left alone this tick: their dropped jobs' records stay (with
	// the status given), so that later ticks, of this process or the
	// next, find them again, and what refresh found about them is no
	// drift to record yet.
	held := map[string]bool{}
	hold := func(addr, status, why string) {
		r := st.Resource(addr)
		for _, in := range jobs[addr] {
			in.Status = status
			r.Instances = append(r.Instances, in)
		}
		slices.SortFunc(r.Instances, func(a, b *state.Instance) int { return a.Index - b.Index })
		if a, err := lang.ParseAddress(addr); err == nil {
			delete(cfg.Resources, a)
		}
		delete(dead, addr)
		skipped[addr] = why
		held[addr] = true
	}
	for addr, why := range stopped {
		hold(addr, providers.StatusStopped, "its jobs were stopped on purpose ("+why+"); the loop leaves it alone until it is applied again")
	}
	for addr := range dead {
		if wait, n := l.crashWait(addr, now); wait > 0 {
			hold(addr, providers.StatusFailed, fmt.Sprintf("its replicas died %d times in a row; the next attempt in %s", n, wait.Round(time.Second)))
		}
	}
	if len(held) > 0 {
		kept := drift[:0]
		rep.Drift = nil
		for _, d := range drift {
			if !held[d.Address] {
				kept = append(kept, d)
				rep.Drift = append(rep.Drift, d.Message)
			}
		}
		drift = kept
	}
	if len(skipped) > 0 {
		rep.Skipped = skipped
	}
	ctl := l.observe(ctx, st, before, cfg, now)
	if len(dead) > 0 {
		ctl.Remove = dead
	}
	var targets []string
	if len(skipped) > 0 {
		for _, r := range cfg.Sorted() {
			targets = append(targets, r.Address.String())
		}
		if len(targets) == 0 {
			l.setState(st)
			return rep, nil
		}
	}
	offs, err := l.opts.Providers.Offers(ctx)
	if err != nil {
		return rep, fmt.Errorf("listing offers: %w", err)
	}
	p, err := planner.Make(planner.Input{Config: cfg, Prior: st, StateExisted: true, Workspace: l.opts.Workspace,
		ToolVersion: l.opts.ToolVersion, Offers: offs, HostsBackend: l.opts.Providers.HostsBackend(), Mode: planner.Normal,
		Targets: targets, Drift: drift, Now: now, Control: ctl})
	if err != nil {
		return rep, fmt.Errorf("planning: %w", err)
	}
	if p.Empty() {
		l.setState(st)
		return rep, nil
	}
	for _, c := range p.Changes {
		rep.Changes = append(rep.Changes, c.Address+": "+c.Reason)
	}
	l.logf("applying: %s", strings.Join(append(slices.Clone(rep.Changes), rep.Drift...), "; "))
	res, err := l.apply(ctx, lease, store, p)
	if err != nil {
		return rep, fmt.Errorf("applying: %w", err)
	}
	l.afterApply(p, ctl, now)
	if res.State != nil {
		rep.Serial = res.State.Serial
		l.setState(res.State)
		l.publish(ctx, res.State)
	}
	return rep, res.Err()
}

func (l *Loop) apply(ctx context.Context, lease *state.Lease, store *planner.Store, p *planner.Plan) (*planner.Result, error) {
	info := lease.Info
	vals, err := l.secrets(p)
	if err != nil {
		return nil, err
	}
	events := l.opts.Events
	if r := lang.Scrubber(append(p.SensitiveValues(), slices.Collect(maps.Values(vals))...)); r != nil && events != nil {
		next := events
		events = func(e planner.Event) {
			e.Message, e.ID = r.Replace(e.Message), r.Replace(e.ID)
			next(e)
		}
	}
	return planner.Apply(ctx, p, store, l.opts.Providers, planner.ApplyOptions{Events: events, ToolVersion: l.opts.ToolVersion,
		Fence: lease, Holder: planner.Holder{Lock: info.ID, Host: info.Host, PID: info.PID}, Secrets: vals})
}

// secrets opens the secrets the jobs of p reference.
func (l *Loop) secrets(p *planner.Plan) (map[string]string, error) {
	var names []string
	for _, c := range p.Changes {
		if len(c.Spec) == 0 || c.Action == planner.Delete {
			continue
		}
		_, uses, err := interp.CheckSpec(c.Spec, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Address, err)
		}
		for _, u := range uses {
			if u.Ref.Namespace == interp.NSSecrets && !slices.Contains(names, u.Ref.Name) {
				names = append(names, u.Ref.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	if l.opts.OpenSecrets == nil {
		return nil, fmt.Errorf("the runs reference secrets (%s), and this server was given no key to open them", strings.Join(names, ", "))
	}
	vals, err := l.opts.OpenSecrets(p.Prior, names)
	if err != nil {
		return nil, fmt.Errorf("opening the secrets the runs reference: %w", err)
	}
	return vals, nil
}

// publish hands the state to Options.Publish.
func (l *Loop) publish(ctx context.Context, st *state.State) {
	if l.opts.Publish == nil {
		return
	}
	if err := l.opts.Publish(ctx, st); err != nil {
		l.logf("publishing the services' replicas: %v", err)
	}
}

func (l *Loop) setState(st *state.State) {
	l.mu.Lock()
	l.st = st
	l.mu.Unlock()
}

// State is the state as the last tick saw it (nil before the first).
func (l *Loop) State() *state.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// History is the reports of the last ticks, oldest first.
func (l *Loop) History() []Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.history)
}

// Rates are the request rates last read, by service address.
func (l *Loop) Rates() map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.rates)
}

// afterApply notes what the loop did, for the delays of the next ticks.
func (l *Loop) afterApply(p *planner.Plan, ctl *planner.Control, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range p.Changes {
		if _, ok := ctl.Replicas[c.Address]; ok && c.InstancesAfter != c.InstancesBefore {
			l.lastScale[c.Address] = now
		}
	}
	for tok := range ctl.Recreate {
		delete(l.probeFails, tok)
	}
	for addr := range ctl.Start {
		l.lastStart[addr] = now
	}
	for tok := range ctl.Stop {
		delete(l.lowSince, tok)
	}
	for addr := range ctl.Remove {
		d := l.deaths[addr]
		if now.Sub(d.last) > deathMemory {
			d.n = 0
		}
		d.n++
		d.last = now
		l.deaths[addr] = d
	}
	for tok := range ctl.Release {
		delete(l.idleSince, tok)
	}
}

// observe decides what the loop asks of the plan: replicas to recreate,
// replica counts, idle instances, scheduled starts.
// before counts each resource's instances before the refresh.
func (l *Loop) observe(ctx context.Context, st *state.State, before map[string]int, cfg *lang.Config, now time.Time) *planner.Control {
	ctl := &planner.Control{Replicas: map[string]planner.Want{}, Recreate: map[string]string{},
		Release: map[string]string{}, Start: map[string]string{}, Stop: map[string]string{}}
	l.mu.Lock()
	for _, r := range cfg.Sorted() {
		if _, ok := l.firstSeen[r.Address.String()]; !ok {
			l.firstSeen[r.Address.String()] = now
		}
	}
	l.mu.Unlock()
	busy := busyHosts(st)
	for _, r := range cfg.Sorted() {
		addr := r.Address.String()
		prior := st.Resource(addr)
		if prior == nil {
			continue
		}
		if _, p := runParts(r.Spec); p != nil && p.UtilizationPolicy != nil {
			l.utilization(ctx, addr, p.UtilizationPolicy, prior, now, ctl)
		}
		switch s := r.Spec.(type) {
		case *lang.Service:
			l.probeReplicas(ctx, s, prior, ctl)
			l.autoscale(ctx, addr, s, prior, before[addr], now, ctl)
		case *lang.Fleet:
			l.idleInstances(s, prior, busy, now, ctl)
		case *lang.Task:
			l.schedule(addr, s, prior, now, ctl)
		}
	}
	return ctl
}

// busyHosts are the tokens of fleet instances some run's unfinished job
// is on.
func busyHosts(st *state.State) map[string]bool {
	out := map[string]bool{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			if h, _ := in.Attributes[planner.AttrHost].(string); h != "" && !providers.Ended(in.Status) {
				out[h] = true
			}
		}
	}
	return out
}

// idleInstances asks to release the fleet's instances that ran nothing
// for longer than its idle_duration.
func (l *Loop) idleInstances(f *lang.Fleet, prior *state.Resource, busy map[string]bool, now time.Time, ctl *planner.Control) {
	idle := f.IdleDuration
	if idle == nil {
		idle = f.TerminationIdleTime
	}
	if idle == nil || *idle <= 0 || f.SSHConfig != nil {
		return
	}
	limit := time.Duration(*idle) * time.Second
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, in := range prior.Instances {
		if busy[in.Token] || in.Status != providers.StatusRunning {
			delete(l.idleSince, in.Token)
			continue
		}
		since, ok := l.idleSince[in.Token]
		if !ok {
			l.idleSince[in.Token] = now
			continue
		}
		if now.Sub(since) >= limit {
			ctl.Release[in.Token] = fmt.Sprintf("idle for %s (idle_duration %s)", now.Sub(since).Round(time.Second), limit)
		}
	}
}

// schedule starts a task at each of its cron times (UTC) that came since
// the loop first saw it or the task last started, unless it is running.
func (l *Loop) schedule(addr string, t *lang.Task, prior *state.Resource, now time.Time, ctl *planner.Control) {
	if t.Schedule == nil {
		return
	}
	l.mu.Lock()
	since := l.firstSeen[addr]
	if t, ok := l.lastStart[addr]; ok && t.After(since) {
		since = t
	}
	l.mu.Unlock()
	for _, in := range prior.Instances {
		if !providers.Ended(in.Status) {
			return // running
		}
		if at, err := time.Parse(time.RFC3339, attr(in, planner.AttrCreatedAt)); err == nil && at.After(since) {
			since = at
		}
	}
	for _, expr := range t.Schedule.Cron {
		c, err := lang.ParseCron(expr)
		if err != nil {
			l.logf("%s: schedule: %v", addr, err)
			continue
		}
		if at, ok := c.Next(since); ok && !at.After(now) {
			ctl.Start[addr] = fmt.Sprintf("its schedule %q came at %s", expr, at.Format(time.RFC3339))
			return
		}
	}
}

func attr(in *state.Instance, key string) string {
	s, _ := in.Attributes[key].(string)
	return s
}

// autoscale asks for the replica count a service's request rate needs.
// had is how many replicas the state recorded before the refresh: up to
// that many, a replica lost since is made again at once, with no delay.
func (l *Loop) autoscale(ctx context.Context, addr string, s *lang.Service, prior *state.Resource, had int, now time.Time, ctl *planner.Control) {
	if s.Scaling == nil || s.Scaling.Metric != "rps" || s.Scaling.Target <= 0 || l.opts.Rates == nil {
		return
	}
	window := time.Minute
	if s.Scaling.Window != nil && *s.Scaling.Window > 0 {
		window = time.Duration(*s.Scaling.Window) * time.Second
	}
	rate, err := l.opts.Rates.Rate(ctx, cmp.Or(s.Name, strings.TrimPrefix(addr, "service.")), window)
	if err != nil {
		l.logf("%s: reading its request rate: %v", addr, err)
		return
	}
	l.mu.Lock()
	l.rates[addr] = rate.RPS
	last, ok := l.lastScale[addr]
	if !ok {
		last = l.firstSeen[addr]
	}
	l.mu.Unlock()
	lo, hi := planner.ReplicaRange(s)
	cur := len(prior.Instances)
	want := int(math.Ceil(rate.RPS/s.Scaling.Target - 1e-9))
	if rate.Queued > 0 || rate.RPS > 0 {
		want = max(want, 1)
	}
	want = min(max(want, lo), hi)
	up, down := 300*time.Second, 600*time.Second // dstack's defaults
	if d := s.Scaling.ScaleUpDelay; d != nil {
		up = time.Duration(*d) * time.Second
	}
	if d := s.Scaling.ScaleDownDelay; d != nil {
		down = time.Duration(*d) * time.Second
	}
	reason := fmt.Sprintf("rps %.4g over %s, target %.4g per replica: %d → %d replicas", rate.RPS, window, s.Scaling.Target, cur, want)
	switch {
	case want > cur && (cur == 0 || want <= had || now.Sub(last) >= up):
		// From zero at once (requests are waiting), and lost replicas
		// at once (that is no scaling).
		ctl.Replicas[addr] = planner.Want{Count: want, Reason: reason}
	case want < cur && now.Sub(last) >= down:
		ctl.Replicas[addr] = planner.Want{Count: want, Reason: reason}
	case want != cur:
		l.logf("%s: %s after the delay (%s since the last scaling)", addr, reason, now.Sub(last).Round(time.Second))
	}
}

// dropped sorts the jobs the refresh dropped from the runs' state (jobs
// holds each run's jobs before it; afterwards, only those it dropped)
// into those that died, whose leftovers
// (container, agent record) the plan removes, and runs with a job that
// was stopped on purpose (by dstack stop, max_duration, inactivity: its
// provider says "stopped"), which the loop leaves alone: making them
// again would undo the stop.
func (l *Loop) dropped(ctx context.Context, st *state.State, jobs map[string]map[string]*state.Instance) (dead map[string][]*state.Instance, stopped map[string]string) {
	dead, stopped = map[string][]*state.Instance{}, map[string]string{}
	byBackend := map[string][]string{}
	for addr, was := range jobs {
		r := st.Resource(addr)
		if r == nil {
			delete(jobs, addr)
			continue
		}
		for _, in := range r.Instances {
			delete(was, in.Token)
		}
		for _, in := range was {
			byBackend[in.Provider] = append(byBackend[in.Provider], in.Token)
		}
	}
	found := map[string]providers.Object{}
	for b, tokens := range byBackend {
		prov, err := l.opts.Providers.For(b)
		if err != nil {
			continue
		}
		objs, err := prov.Describe(ctx, tokens)
		if err != nil {
			l.logf("asking the %s backend how its dropped jobs ended: %v", b, err)
			continue
		}
		maps.Copy(found, objs)
	}
	for addr, was := range jobs {
		for _, in := range was {
			if o, ok := found[in.Token]; ok && o.Status == providers.StatusStopped {
				stopped[addr] = cmp.Or(o.Reason, "stopped")
				continue
			}
			dead[addr] = append(dead[addr], in)
		}
		slices.SortFunc(dead[addr], func(a, b *state.Instance) int { return a.Index - b.Index })
		if len(dead[addr]) == 0 {
			delete(dead, addr)
		}
	}
	return dead, stopped
}

func runParts(spec lang.Spec) (*lang.RunConfig, *lang.Profile) {
	switch s := spec.(type) {
	case *lang.Task:
		return &s.RunConfig, &s.Profile
	case *lang.Service:
		return &s.RunConfig, &s.Profile
	case *lang.DevEnvironment:
		return &s.RunConfig, &s.Profile
	}
	return nil, nil
}

// utilization stops a run whose jobs' GPUs all stayed under the policy's
// utilization for its time window, as their hosts' agents measure it
// (each tick samples it once). Jobs without GPUs do not count; a run
// none of whose jobs reports GPUs is left running.
func (l *Loop) utilization(ctx context.Context, addr string, u *lang.UtilizationPolicy, prior *state.Resource, now time.Time, ctl *planner.Control) {
	window := time.Duration(u.TimeWindow) * time.Second
	var running []*state.Instance
	allLow, withGPUs := true, 0
	for _, in := range prior.Instances {
		if in.Status != providers.StatusRunning || in.ProviderID == "" {
			continue
		}
		running = append(running, in)
		prov, err := l.opts.Providers.For(in.Provider)
		if err != nil {
			continue
		}
		mr, ok := prov.(providers.MetricsReader)
		if !ok {
			l.logf("%s: utilization_policy: the %s backend reports no GPU utilization", addr, in.Provider)
			return
		}
		m, err := mr.JobMetrics(ctx, in.ProviderID)
		if err != nil {
			l.logf("%s[%d]: reading its GPU utilization: %v", addr, in.Index, err)
			return
		}
		if len(m.GPUs) == 0 {
			continue
		}
		withGPUs++
		top := 0.0
		for _, g := range m.GPUs {
			top = max(top, g.UtilizationPercent)
		}
		l.mu.Lock()
		if top >= float64(u.MinGPUUtilization) {
			delete(l.lowSince, in.Token)
			allLow = false
		} else if _, ok := l.lowSince[in.Token]; !ok {
			l.lowSince[in.Token] = now
		}
		if since := l.lowSince[in.Token]; since.IsZero() || now.Sub(since) < window {
			allLow = false
		}
		l.mu.Unlock()
	}
	if withGPUs == 0 || !allLow {
		return
	}
	for _, in := range running {
		ctl.Stop[in.Token] = fmt.Sprintf("its GPUs stayed under %d%% utilization for %s (utilization_policy)", u.MinGPUUtilization, window)
	}
}

type deaths struct {
	n    int
	last time.Time
}

// Backoff of a run whose jobs keep dying: after deathsFree deaths in a
// row (each within deathMemory of the one before), the next attempt
// waits deathBackoff, doubled each time, up to deathBackoffMax.
const (
	deathsFree      = 3
	deathMemory     = 10 * time.Minute
	deathBackoff    = 30 * time.Second
	deathBackoffMax = 10 * time.Minute
)

// crashWait is how long the loop still waits before making a run's dead
// jobs again, and how many times in a row they died.
func (l *Loop) crashWait(addr string, now time.Time) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.deaths[addr]
	if d.n < deathsFree || now.Sub(d.last) > deathMemory {
		return 0, d.n
	}
	wait := deathBackoff << min(d.n-deathsFree, 5)
	wait = min(wait, deathBackoffMax)
	return max(d.last.Add(wait).Sub(now), 0), d.n
}
