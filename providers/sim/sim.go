// Package sim is a SIMULATED cloud provider, for tests, demos and
// benchmarks of the planner. It makes no machines: its objects are files.
// It is never a default; it is used only where asked for by name.
//
// A simulated cloud lives in a directory, so that every process that
// opens the directory (several dstack runs, a test) sees the same cloud.
// One [Cloud] answers for every backend name: its offers are the embedded
// catalog's, of all backends, and [Set] hands it out for any backend.
// How the cloud behaves (latency, capacity, injected failures, a rate
// limit, how long tasks run) is set in dir/sim.json; see [Config].
//
// Layout of the directory:
//
//	sim.json      the Config (optional)
//	state.json    counters: objects made, live machines per offer,
//	              failures fired; flocked around every call
//	objects.log   the objects, append-only: a JSON line per object made
//	              and per change of one (terminated, interrupted), each
//	              the whole object after it; an object's last line is
//	              what it is now
//
// No call makes a file. Each process keeps every object in memory,
// decoded, and before each call, holding the flock, reads only the lines
// appended since it last looked; a change is appended, in one write per
// call, under the same flock.
//
// Deleted objects stay, terminated; a token used again after its object
// was terminated makes a new object, and the old one stays, under its ID.
// Nothing is synced: the sim survives its processes crashing (which it
// can simulate: see [CodeCrash]), not the machine crashing. A process
// killed in the middle of a change leaves at worst a machine counted
// against capacity that is not there, an ID never used, or a torn last
// line of objects.log, which readers skip and the next writer cuts off.
//
// Directories of older sims, with a file per object (index.log and
// objects/), are refused: make a new one.
package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Name is the provider's name.
const Name = "sim"

// Cloud is a simulated cloud opened on a directory. It is safe for
// concurrent use, by goroutines and by processes sharing the directory.
type Cloud struct {
	// Crash is called when an injected crash fires, after the operation
	// took effect and with no lock held. It must not return; the default
	// kills the process with SIGKILL. Tests replace it (before using the
	// Cloud), with one that panics for instance; if it returns, the
	// operation fails.
	Crash func()

	dir     string
	cfg     Config
	keys    []string // Failure.key of each of cfg.Failures
	catalog []offers.Offer
	limiter limiter

	mu    sync.Mutex // held with the flock, and guards what follows
	state *os.File   // state.json, flocked; nil once closed
	log   *os.File   // objects.log, opened to append
	idx   index      // what of objects.log was read
	rng   *rand.Rand
	// stateSize is the size of state.json as last read or written.
	stateSize int
}

var _ providers.Provider = (*Cloud)(nil)

// Open opens the simulated cloud in dir, creating the directory if it is
// missing, and reads its configuration from dir/sim.json (none means the
// zero Config). Close it when done.
func Open(dir string) (*Cloud, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, oldIndexFile)); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			err = fmt.Errorf("%s holds a cloud of an older sim, with a file per object, which this one does not read; use a new directory", dir)
		}
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	catalog, err := offers.Catalog()
	if err != nil {
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	st, err := os.OpenFile(filepath.Join(dir, stateFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	log, err := os.OpenFile(filepath.Join(dir, logFile), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("sim: open: %w", err)
	}
	c := &Cloud{
		Crash:   killSelf,
		dir:     dir,
		cfg:     cfg,
		catalog: catalog,
		limiter: limiter{rate: cfg.RateLimit, tokens: math.Max(cfg.RateLimit, 1)},
		state:   st,
		log:     log,
		idx:     newIndex(),
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed)),
	}
	for i, f := range cfg.Failures {
		c.keys = append(c.keys, f.key(i))
	}
	return c, nil
}

// killSelf is the default Crash: SIGKILL, as a machine or an OOM killer
// would, with no deferred calls run.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	for {
		time.Sleep(time.Hour) // the signal is on its way
	}
}

// Close closes the Cloud's files and drops its copy of the objects. The
// directory stays.
func (c *Cloud) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return nil
	}
	err := errors.Join(c.state.Close(), c.log.Close())
	c.state, c.log = nil, nil
	c.idx = index{}
	if err != nil {
		return fmt.Errorf("sim: close: %w", err)
	}
	return nil
}

// Dir is the directory the cloud lives in.
func (c *Cloud) Dir() string { return c.dir }

// Name returns "sim".
func (c *Cloud) Name() string { return Name }

// Offers returns the embedded catalog's offers, of every backend, each
// available unless its capacity (see [Config].Capacity) is used up.
func (c *Cloud) Offers(ctx context.Context) ([]offers.Offer, error) {
	if err := c.call(ctx); err != nil {
		return nil, err
	}
	var st state
	if err := c.locked(func(s *state) (bool, error) { st = *s; return false, nil }); err != nil {
		return nil, fmt.Errorf("sim: offers: %w", err)
	}
	out := make([]offers.Offer, len(c.catalog))
	for i, o := range c.catalog {
		if o.GPU != nil {
			g := *o.GPU
			o.GPU = &g
		}
		o.Availability = offers.Available
		if pool := poolOf(o); c.full(st, pool) {
			o.Availability = offers.NoCapacity
		}
		out[i] = o
	}
	return out, nil
}

// poolOf is the capacity key of an offer.
func poolOf(o offers.Offer) string {
	key := o.Backend + "/" + o.Region + "/" + o.InstanceType
	if o.Spot {
		key += "+spot"
	}
	return key
}

// full reports whether every machine of a capacity pool is in use.
func (c *Cloud) full(st state, pool string) bool {
	limit, ok := c.cfg.Capacity[pool]
	if !ok {
		limit, ok = c.cfg.Capacity["*"]
	}
	return ok && st.Used[pool] >= limit
}

// Create makes an object, or returns the live one already made with the
// request's token. An instance needs an Offer; a job needs a Host (the
// ID of a live instance) or an Offer for a machine of its own; volumes
// and gateways need neither. Instances and jobs get an "ip" attribute (a
// job on a host has the host's), gateways an "ip" and a "hostname".
// Machines count against their offer's capacity until they are deleted
// or interrupted.
func (c *Cloud) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if err := c.call(ctx); err != nil {
		return providers.Object{}, err
	}
	task, err := checkRequest(req)
	if err != nil {
		return providers.Object{}, fmt.Errorf("sim: create %s %q: %w", req.Kind, req.Token, err)
	}
	var (
		made  record
		fresh bool // made is new, not the index's: it shares nothing with it
		crash bool
	)
	err = c.locked(func(st *state) (changed bool, err error) {
		if old, found := c.byToken(req.Token); found && old.Status != providers.StatusTerminated {
			made = old
			return false, nil
		}
		var host record
		if req.Host != "" {
			h, ok := c.byID(req.Host)
			if !ok || h.Kind != providers.KindInstance || !h.Live() {
				return false, providers.Errorf(providers.NotFound, "sim: create job %q: no live instance %s", req.Token, req.Host)
			}
			host = h
		}
		if f := c.inject(st, OpCreate, target{req.Kind, req.Address}); f != nil {
			changed = true
			if f.Code != CodeCrash {
				return changed, injected(f, "create "+string(req.Kind)+" "+req.Address)
			}
			crash = true
		}
		r := record{
			Object: providers.Object{
				Kind:    req.Kind,
				Token:   req.Token,
				Address: req.Address,
				Status:  providers.StatusRunning,
				Host:    req.Host,
			},
			Created: time.Now(),
			Task:    task,
		}
		if req.Offer != nil && req.Host == "" && (req.Kind == providers.KindInstance || req.Kind == providers.KindJob) {
			o := *req.Offer
			r.Offer = &o
			r.Pool = poolOf(o)
			if c.full(*st, r.Pool) {
				return changed, providers.Errorf(providers.NoCapacity, "sim: create %s %q: no capacity left for %s", req.Kind, req.Token, r.Pool)
			}
		}
		st.Seq++
		r.ID = newID(r.Kind, r.Host, st.Seq)
		if r.Pool != "" {
			if st.Used == nil {
				st.Used = map[string]int{}
			}
			st.Used[r.Pool]++
		}
		switch {
		case req.Kind == providers.KindGateway:
			r.Attributes = map[string]string{providers.AttrIP: ip(st.Seq), providers.AttrHostname: r.ID + ".sim.invalid"}
		case req.Host != "":
			r.Attributes = map[string]string{providers.AttrIP: host.Attributes[providers.AttrIP]}
		case req.Kind != providers.KindVolume:
			r.Attributes = map[string]string{providers.AttrIP: ip(st.Seq)}
		}
		// Count it first: a process killed from here on leaves at worst a
		// machine counted that is not there, or an ID never used. A
		// terminated object of the token stays in the log, under its ID.
		if err := c.writeState(*st); err != nil {
			return false, err
		}
		if err := c.append(r); err != nil {
			return false, err
		}
		made, fresh = r, true
		return false, nil // written above
	})
	if err != nil {
		if providers.CodeOf(err) != "" {
			return providers.Object{}, err
		}
		return providers.Object{}, fmt.Errorf("sim: create %s %q: %w", req.Kind, req.Token, err)
	}
	if crash {
		c.Crash()
		return providers.Object{}, fmt.Errorf("sim: create %s %q: crash hook returned after making %s", req.Kind, req.Token, made.ID)
	}
	if fresh {
		return c.now(made), nil
	}
	return c.view(made), nil
}

// checkRequest validates req and reports whether it is a job of a task.
func checkRequest(req providers.CreateRequest) (task bool, err error) {
	if req.Token == "" {
		return false, errors.New("no token")
	}
	switch req.Kind {
	case providers.KindInstance:
		if req.Offer == nil {
			return false, errors.New("an instance needs an offer")
		}
	case providers.KindJob:
		if req.Host == "" && req.Offer == nil {
			return false, errors.New("a job needs a host or an offer")
		}
		if len(req.Spec) > 0 {
			spec, err := lang.DecodeSpec(req.Spec)
			if err != nil {
				return false, err
			}
			task = spec.Kind() == lang.KindTask
		}
	case providers.KindVolume, providers.KindGateway:
	default:
		return false, fmt.Errorf("unknown kind %q", req.Kind)
	}
	return task, nil
}

// newID is the ID of the nth object made, of the kind given, on host.
func newID(kind providers.ObjectKind, host string, n uint64) string {
	prefix := "i-"
	switch {
	case kind == providers.KindVolume:
		prefix = "vol-"
	case kind == providers.KindGateway:
		prefix = "gw-"
	case kind == providers.KindJob && host != "":
		prefix = "job-"
	}
	return fmt.Sprintf("%s%016x", prefix, mix(n))
}

// mix scrambles n one-to-one (the splitmix64 finalizer), so that IDs look
// like a cloud's and stay unique.
func mix(n uint64) uint64 {
	n ^= n >> 30
	n *= 0xbf58476d1ce4e5b9
	n ^= n >> 27
	n *= 0x94d049bb133111eb
	n ^= n >> 31
	return n
}

// ip is the private address of the nth object.
func ip(n uint64) string {
	return fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
}

// Describe returns the objects last made with tokens, live or terminated
// (with their Reason); tokens never used are absent. A job of a task
// reports done once the configured JobDuration has passed.
func (c *Cloud) Describe(ctx context.Context, tokens []string) (map[string]providers.Object, error) {
	if err := c.call(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]providers.Object, len(tokens))
	injects := c.injects(OpDescribe)
	var fired *Failure
	err := c.locked(func(st *state) (bool, error) {
		var targets []target
		for _, t := range tokens {
			if r, ok := c.byToken(t); ok {
				out[t] = c.view(r)
				if injects {
					targets = append(targets, target{r.Kind, r.Address})
				}
			}
		}
		if !injects {
			return false, nil
		}
		fired = c.inject(st, OpDescribe, targets...)
		return fired != nil, nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("sim: describe: %w", err)
	case fired == nil:
		return out, nil
	case fired.Code == CodeCrash:
		c.Crash()
		return nil, errors.New("sim: describe: crash hook returned")
	}
	return nil, injected(fired, "describe")
}

// Delete terminates the object with id; deleting an instance terminates
// the jobs on it too, with the reason "host instance terminated". An
// unknown or terminated ID is not an error; an ID of another kind is.
func (c *Cloud) Delete(ctx context.Context, kind providers.ObjectKind, id string) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	var crash bool
	err := c.locked(func(st *state) (changed bool, err error) {
		r, ok := c.byID(id)
		if ok && r.Kind != kind {
			return false, fmt.Errorf("%s is a %s, not a %s", id, r.Kind, kind)
		}
		if f := c.inject(st, OpDelete, target{kind, r.Address}); f != nil {
			changed = true
			if f.Code != CodeCrash {
				return changed, injected(f, "delete "+string(kind)+" "+id)
			}
			crash = true
		}
		if !ok || r.Status == providers.StatusTerminated {
			return changed, nil
		}
		return true, c.terminate(st, r, "deleted", "host instance terminated")
	})
	if err != nil {
		if providers.CodeOf(err) != "" {
			return err
		}
		return fmt.Errorf("sim: delete %s %s: %w", kind, id, err)
	}
	if crash {
		c.Crash()
		return fmt.Errorf("sim: delete %s %s: crash hook returned", kind, id)
	}
	return nil
}

// Interrupt terminates the object with id from outside, as a spot
// interruption or a machine failure would, with reason as its Reason;
// the jobs on an instance end with it, with the same reason. It is not a
// provider call: no latency, rate limit or failures apply. An unknown ID
// is a NotFound error; a terminated one is left as it is.
func (c *Cloud) Interrupt(id, reason string) error {
	err := c.locked(func(st *state) (bool, error) {
		r, ok := c.byID(id)
		if !ok {
			return false, providers.Errorf(providers.NotFound, "sim: interrupt: no object %s", id)
		}
		if r.Status == providers.StatusTerminated {
			return false, nil
		}
		return true, c.terminate(st, r, reason, reason)
	})
	if err != nil && providers.CodeOf(err) == "" {
		return fmt.Errorf("sim: interrupt %s: %w", id, err)
	}
	return err
}

// terminate marks r terminated with reason, and the live jobs on it
// with jobReason, in one append to the log, and frees their machines in
// st. The caller holds the lock and has refreshed the index.
func (c *Cloud) terminate(st *state, r record, reason, jobReason string) error {
	r.Status, r.Reason = providers.StatusTerminated, reason
	ended := []record{r}
	for _, id := range c.idx.jobs[r.ID] {
		if j, ok := c.byID(id); ok && j.Status != providers.StatusTerminated {
			j.Status, j.Reason = providers.StatusTerminated, jobReason
			ended = append(ended, j)
		}
	}
	if err := c.append(ended...); err != nil {
		return err
	}
	for _, e := range ended {
		if e.Pool != "" && st.Used[e.Pool] > 0 {
			st.Used[e.Pool]--
			if st.Used[e.Pool] == 0 {
				delete(st.Used, e.Pool)
			}
		}
	}
	return nil
}

// Objects returns every object the cloud ever made, terminated ones
// included, sorted by token (and by ID for a token used again), with
// statuses as Describe reports them.
func (c *Cloud) Objects() ([]providers.Object, error) {
	var all []providers.Object
	err := c.locked(func(*state) (bool, error) {
		all = make([]providers.Object, 0, len(c.idx.objs))
		for _, r := range c.idx.objs {
			all = append(all, c.view(*r))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sim: objects: %w", err)
	}
	slices.SortFunc(all, func(a, b providers.Object) int {
		return cmp.Or(cmp.Compare(a.Token, b.Token), cmp.Compare(a.ID, b.ID))
	})
	return all, nil
}

// Live returns the objects of Objects that are live (see
// providers.Object.Live: a done job still is).
func (c *Cloud) Live() ([]providers.Object, error) {
	all, err := c.Objects()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(o providers.Object) bool { return !o.Live() }), nil
}

// call is the start of every provider call: the context, the latency,
// and the rate limit.
func (c *Cloud) call(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d := time.Duration(c.cfg.Latency); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if wait := c.limiter.take(time.Now()); wait > 0 {
		return &providers.Error{
			Code:       providers.RateLimited,
			RetryAfter: wait,
			Err:        fmt.Errorf("sim: more than %v calls per second", c.cfg.RateLimit),
		}
	}
	return nil
}

// target is what a call is about, for matching failures.
type target struct {
	kind    providers.ObjectKind
	address string
}

// injects reports whether any failure is configured for op.
func (c *Cloud) injects(op string) bool {
	return slices.ContainsFunc(c.cfg.Failures, func(f Failure) bool { return f.Op == op })
}

// inject returns the first failure that fires for a call of op about
// targets, counting it in st, or nil. A failure with neither Kind nor
// Address matches any call of its op, even one about nothing. The caller
// holds c.mu.
func (c *Cloud) inject(st *state, op string, targets ...target) *Failure {
	for i := range c.cfg.Failures {
		f := &c.cfg.Failures[i]
		match := f.Op == op && f.Kind == "" && f.Address == ""
		for _, t := range targets {
			match = match || f.matches(op, t.kind, t.address)
		}
		if !match {
			continue
		}
		if f.Times > 0 && st.Fired[c.keys[i]] >= f.Times {
			continue
		}
		if f.Probability > 0 && c.rng.Float64() >= f.Probability {
			continue
		}
		if st.Fired == nil {
			st.Fired = map[string]int{}
		}
		st.Fired[c.keys[i]]++
		return f
	}
	return nil
}

// injected is the error of a failure that fired in what.
func injected(f *Failure, what string) error {
	e := providers.Errorf(f.Code, "sim: injected failure in %s", what)
	if f.Code == providers.RateLimited {
		e.RetryAfter = RetryAfter
	}
	return e
}

// limiter is a token bucket: rate calls a second, in bursts of up to
// max(rate, 1).
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

// take spends a token, or returns how long until there is one.
func (l *limiter) take(now time.Time) time.Duration {
	if l.rate <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = math.Min(math.Max(l.rate, 1), l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	return time.Duration(math.Ceil((1 - l.tokens) / l.rate * float64(time.Second)))
}

// Set is a providers.Set of one simulated cloud, which serves every
// backend name.
type Set struct {
	Cloud *Cloud
}

var _ providers.Set = Set{}

// For returns the cloud, whatever the backend.
func (s Set) For(backend string) (providers.Provider, error) {
	if s.Cloud == nil {
		return nil, fmt.Errorf("sim: no cloud for backend %q", backend)
	}
	return s.Cloud, nil
}

// Offers returns the cloud's offers.
func (s Set) Offers(ctx context.Context) ([]offers.Offer, error) {
	if s.Cloud == nil {
		return nil, errors.New("sim: no cloud")
	}
	return s.Cloud.Offers(ctx)
}
