package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// Event is one line of apply's event stream.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // one of the Event* constants
	Step    int       `json:"step"`
	Op      StepOp    `json:"op,omitempty"`
	Address string    `json:"address,omitempty"`
	Index   int       `json:"index"`
	ID      string    `json:"provider_id,omitempty"`
	Message string    `json:"message,omitempty"`
	Elapsed float64   `json:"elapsed_seconds,omitempty"`
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Parallelism bounds the steps in flight (10 when zero).
	Parallelism int
	// RateLimit bounds calls per second to each backend (0: none).
	RateLimit float64
	// Stop, when closed, starts nothing new: steps in flight finish and
	// the state is saved (the first Ctrl-C). Cancelling ctx stops the
	// steps in flight too (the second).
	Stop <-chan struct{}
	// RetryInterval is how long a run whose retry policy lists
	// no-capacity waits before asking again (15s when zero).
	RetryInterval time.Duration
	// Events receives progress; it is called from many goroutines, one
	// call at a time.
	Events      func(Event)
	ToolVersion string
	// Fence, when set, is the lease on the state: no provider call that
	// makes, deletes or stops something starts unless it is valid (see
	// fence.go). Holder names this process in the intents recorded.
	Fence  Fence
	Holder Holder
	// SSHKeys are the applying user's public keys (authorized_keys
	// lines), which dev environments' SSH servers let in.
	SSHKeys []string
	// ConfigDir is the configuration's directory, which runs with
	// `dstack: true` get.
	ConfigDir string
	// Secrets are the team's secrets by name, opened: a job's
	// ${{ secrets.NAME }} takes its value from here when the job is made
	// (see interp.go). Masking them in what apply shows is the caller's.
	Secrets map[string]string
	// Environ looks up a bare env variable for ${{ env.NAME }}
	// (os.LookupEnv, as the providers do, when nil).
	Environ func(string) (string, bool)
}

// Result says what apply did.
type Result struct {
	Done, Failed, Skipped, NotStarted int
	// Errors are the failed steps' errors, in step order.
	Errors []StepError
	// Fenced, when not nil, is why apply stopped starting work before it
	// was done: a *FencedError.
	Fenced error
	State  *state.State
}

// StepError is a failed step.
type StepError struct {
	Step *Step
	Err  error
}

func (e StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step.Name(), e.Err) }

// Err summarizes the failures, nil when every step was done.
func (r *Result) Err() error {
	if r.Failed == 0 && r.Skipped == 0 && r.NotStarted == 0 && r.Fenced == nil {
		return nil
	}
	var errs []error
	if r.Fenced != nil {
		// The steps it failed said why as they ended; the cause is one.
		errs = append(errs, r.Fenced)
		if r.Failed > 0 {
			errs = append(errs, fmt.Errorf("%d steps failed", r.Failed))
		}
	} else {
		for _, e := range r.Errors {
			errs = append(errs, e)
		}
	}
	if r.NotStarted > 0 {
		errs = append(errs, fmt.Errorf("%d steps were not started (interrupted)", r.NotStarted))
	}
	if r.Skipped > 0 {
		errs = append(errs, fmt.Errorf("%d steps were skipped because a step they need failed", r.Skipped))
	}
	return errors.Join(errs...)
}

type executor struct {
	plan     *Plan
	set      providers.Set
	opts     ApplyOptions
	rec      *recorder
	changes  map[string]*Change
	external map[string]bool // tokens of objects dstack registered, not made
	limiters map[string]*rate.Limiter
	emitMu   sync.Mutex

	// stepTokens are the idempotency tokens of the create steps.
	stepTokens map[int]string
	// started0 is when the apply began.
	started0 time.Time
	// intentsUntil is the Until of the intents recorded before the walk.
	intentsUntil time.Time
	// halt is closed when the apply is fenced: it starts nothing more.
	halt     chan struct{}
	haltOnce sync.Once
	fenced   error

	mu      sync.Mutex
	created map[int]*state.Instance // by create step
	tokens  map[string]string       // instance token -> provider ID, for hosts
	started map[int]bool            // steps that began
	hostIPs map[string]string       // instance token -> IP, of instances in the prior state
	// blocked are the regions ("backend/region") where a quota that
	// holds for the whole region was met: their offers are skipped for
	// the rest of the apply.
	blocked map[string]error
}

func regionKey(o *offers.Offer) string { return strings.ToLower(o.Backend + "/" + o.Region) }

// blockedBy returns the error that blocked the offer's region, or nil.
func (x *executor) blockedBy(o *offers.Offer) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.blocked[regionKey(o)]
}

// block remembers that err, a quota of the whole region, was met on o.
func (x *executor) block(o *offers.Offer, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.blocked == nil {
		x.blocked = map[string]error{}
	}
	x.blocked[regionKey(o)] = err
}

// failsOver reports whether a create that failed with code moves on to
// the next offer: no capacity, a quota, or an offer the provider cannot
// make as asked.
func failsOver(code providers.Code) bool {
	return code == providers.NoCapacity || code == providers.Quota || code == providers.Unsupported
}

func (x *executor) ran(id int) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.started[id]
}

// Apply carries out a plan onto its prior state, recording every step in
// the store as it goes, and writes the final state. The plan's prior
// state becomes the result: Apply changes it.
func Apply(ctx context.Context, p *Plan, store *Store, set providers.Set, opts ApplyOptions) (*Result, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	// Every backend the plan uses must have a provider before anything
	// starts.
	for _, s := range p.Steps {
		if s.Op != OpCreate && s.Op != OpDelete && s.Op != OpStop || s.Backend == "" {
			continue
		}
		if _, err := set.For(s.Backend); err != nil {
			return nil, fmt.Errorf("cannot apply %s: %w", s.Name(), err)
		}
	}
	st := p.Prior
	Recall(st, set)
	external := map[string]bool{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			if in.Attributes[AttrExternal] == true {
				external[in.Token] = true
			}
		}
	}
	rec, err := newRecorder(ctx, store, st, opts.ToolVersion)
	if err != nil {
		return nil, err
	}
	x := &executor{plan: p, set: set, opts: opts, rec: rec, changes: map[string]*Change{}, external: external,
		limiters: map[string]*rate.Limiter{}, created: map[int]*state.Instance{}, tokens: map[string]string{},
		stepTokens: map[int]string{}, started: map[int]bool{}, hostIPs: map[string]string{}, started0: time.Now(),
		halt: make(chan struct{})}
	for _, c := range p.Changes {
		x.changes[c.Address] = c
	}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			x.tokens[in.Token] = in.ProviderID
			if ip, ok := in.Attributes[providers.AttrIP].(string); ok {
				x.hostIPs[in.Token] = ip
			}
		}
	}
	// Every create's intent, durable in one write before anything starts.
	if opts.Fence != nil {
		if err := opts.Fence.Valid(); err != nil {
			_ = rec.close(context.WithoutCancel(ctx))
			return nil, &FencedError{Cause: err}
		}
		x.intentsUntil = opts.Fence.Until().UTC()
	}
	var intents []*record
	for _, s := range p.Steps {
		if s.Op == OpCreate {
			x.stepTokens[s.ID] = newToken()
		}
	}
	for _, s := range p.Steps {
		if s.Op == OpCreate && !x.registers(s) {
			intents = append(intents, &record{Op: journalPutInstance, Address: s.Address, Instance: x.intent(s)})
		}
	}
	if len(intents) > 0 {
		if err := rec.write(intents...); err != nil {
			_ = rec.close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	res := x.walk(ctx)
	res.Fenced = x.fence()
	if res.Fenced != nil {
		// Nothing more is written: the state may no longer be this
		// apply's. Its intents stay for the next holder to resolve.
		_ = rec.close(context.WithoutCancel(ctx))
		return res, nil
	}
	// Creates that never ran leave no intent behind.
	for _, s := range p.Steps {
		if s.Op == OpCreate && !x.registers(s) && !x.ran(s.ID) {
			x.forget(s, x.stepTokens[s.ID])
		}
	}
	if err := rec.close(context.WithoutCancel(ctx)); err != nil {
		return res, err
	}
	res.State = st
	x.emit(Event{Type: EventApplyDone, Message: fmt.Sprintf("%d done, %d failed, %d skipped, %d not started", res.Done, res.Failed, res.Skipped, res.NotStarted)})
	return res, nil
}

func (x *executor) emit(e Event) {
	if x.opts.Events == nil {
		return
	}
	e.Time = time.Now().UTC()
	x.emitMu.Lock()
	defer x.emitMu.Unlock()
	x.opts.Events(e)
}

type outcome struct {
	id  int
	err error
}

// walk runs the steps in dependency order, at most Parallelism at once.
func (x *executor) walk(ctx context.Context) *Result {
	steps := x.plan.Steps
	res := &Result{}
	waiting := make([]int, len(steps))
	next := make([][]int, len(steps))
	for _, s := range steps {
		waiting[s.ID] = len(s.Deps)
		for _, d := range s.Deps {
			next[d] = append(next[d], s.ID)
		}
	}
	var ready []int
	for _, s := range steps {
		if waiting[s.ID] == 0 {
			ready = append(ready, s.ID)
		}
	}
	skipped := make([]bool, len(steps))
	var skip func(id int)
	skip = func(id int) {
		for _, n := range next[id] {
			if !skipped[n] {
				skipped[n] = true
				res.Skipped++
				x.emit(Event{Type: EventStepSkipped, Step: n, Op: steps[n].Op, Address: steps[n].Address, Index: steps[n].Index})
				skip(n)
			}
		}
	}
	results := make(chan outcome)
	inFlight, calls, finished := 0, 0, 0
	stopped := false
	for {
		if !stopped && x.opts.Stop != nil {
			select {
			case <-x.opts.Stop:
				stopped = true
			default:
			}
		}
		halted := x.halted()
		if ctx.Err() != nil || halted {
			stopped = true
		}
		for len(ready) > 0 {
			id := ready[0]
			record := steps[id].Op.isRecord()
			// Records change nothing outside: they take no slot of the
			// parallelism, and once stopped they still run, to finish
			// what is already made (not once fenced: the state may no
			// longer be this apply's).
			if (!record && (stopped || calls >= x.opts.Parallelism)) || (record && (ctx.Err() != nil || halted)) {
				break
			}
			ready = ready[1:]
			inFlight++
			if !record {
				calls++
			}
			go func() { results <- outcome{id, x.run(ctx, steps[id])} }()
		}
		if inFlight == 0 {
			break
		}
		var o outcome
		if !stopped {
			select {
			case o = <-results:
			case <-x.stopCh():
				stopped = true
				continue
			case <-x.halt:
				stopped = true
				continue
			}
		} else {
			o = <-results
		}
		inFlight--
		if !steps[o.id].Op.isRecord() {
			calls--
		}
		finished++
		if o.err != nil {
			res.Failed++
			res.Errors = append(res.Errors, StepError{steps[o.id], o.err})
			skip(o.id)
			continue
		}
		res.Done++
		for _, n := range next[o.id] {
			if waiting[n]--; waiting[n] == 0 && !skipped[n] {
				// Records go first: they are quick, and a resource whose
				// every step is done should be committed before an
				// interruption can leave it half-recorded.
				if steps[n].Op.isRecord() {
					ready = append([]int{n}, ready...)
				} else {
					ready = append(ready, n)
				}
			}
		}
	}
	res.NotStarted = len(steps) - res.Done - res.Failed - res.Skipped
	slices.SortFunc(res.Errors, func(a, b StepError) int { return a.Step.ID - b.Step.ID })
	return res
}

func (x *executor) run(ctx context.Context, s *Step) error {
	x.mu.Lock()
	x.started[s.ID] = true
	x.mu.Unlock()
	start := time.Now()
	x.emit(Event{Type: EventStepStart, Step: s.ID, Op: s.Op, Address: s.Address, Index: s.Index})
	id, err := x.do(ctx, s)
	if err != nil {
		x.emit(Event{Type: EventStepFailed, Step: s.ID, Op: s.Op, Address: s.Address, Index: s.Index, Message: err.Error(), Elapsed: time.Since(start).Seconds()})
		return err
	}
	x.emit(Event{Type: EventStepDone, Step: s.ID, Op: s.Op, Address: s.Address, Index: s.Index, ID: id, Elapsed: time.Since(start).Seconds()})
	return nil
}

func (x *executor) do(ctx context.Context, s *Step) (string, error) {
	switch s.Op {
	case OpCreate:
		return x.create(ctx, s)
	case OpDelete:
		return s.ProviderID, x.delete(ctx, s)
	case OpStop:
		return s.ProviderID, x.stop(ctx, s)
	case OpCommit:
		c := x.changes[s.Address]
		var spec any
		if len(c.After) > 0 {
			if err := json.Unmarshal(c.After, &spec); err != nil {
				return "", fmt.Errorf("%s: recording its configuration: %w", s.Address, err)
			}
		}
		return "", x.rec.write(&record{Op: journalPutResource, Address: s.Address, ConfigHash: c.ConfigHash, DependsOn: c.DependsOn, Spec: spec, Sensitive: c.Sensitive})
	case OpForget:
		return "", x.rec.write(&record{Op: journalForget, Address: s.Address})
	case OpAbandon:
		return s.ProviderID, x.rec.write(&record{Op: journalAbandonInstance, Address: s.Address, Token: s.Token,
			At: x.started0.UTC().Format(time.RFC3339)})
	}
	return "", fmt.Errorf("unknown step %q", s.Op)
}

func newToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("planner: reading random bytes: %v", err))
	}
	return hex.EncodeToString(b[:])
}

func (x *executor) limiter(backend string) *rate.Limiter {
	if x.opts.RateLimit <= 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	l := x.limiters[backend]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(x.opts.RateLimit), max(1, int(x.opts.RateLimit)))
		x.limiters[backend] = l
	}
	return l
}

// intent is the record of an object about to be made: its token, and
// what it is meant to be. All of a plan's intents are recorded, in one
// durable write, before the first step starts (see Apply), so a create
// never waits for a record before asking the provider.
func (x *executor) intent(s *Step) *state.Instance {
	in := &state.Instance{Index: s.Index, Provider: s.Backend, Token: x.stepTokens[s.ID], Status: "creating",
		Attributes: map[string]any{AttrKind: string(s.Kind)}}
	if x.opts.Fence != nil {
		in.Attributes[attrIntent] = toAttr(intent{Lock: x.opts.Holder.Lock, Host: x.opts.Holder.Host, PID: x.opts.Holder.PID,
			Until: x.intentsUntil})
	}
	if s.Kind == providers.KindJob {
		in.Attributes[AttrCreatedAt] = x.started0.UTC().Format(time.RFC3339)
	}
	if s.Demand != nil {
		in.Attributes[AttrDemand] = toAttr(s.Demand)
	}
	switch {
	case s.HostStep >= 0:
		in.Attributes[AttrHost] = x.stepTokens[s.HostStep]
		in.Attributes[AttrHostAddress] = s.HostAddress
	case s.HostToken != "":
		in.Attributes[AttrHost] = s.HostToken
		in.Attributes[AttrHostAddress] = s.HostAddress
	case s.Offer != nil:
		in.Attributes[AttrOffer] = toAttr(s.Offer)
		in.Attributes[AttrPrice] = s.Offer.PricePerHour
	}
	return in
}

// registers reports whether a create step records an existing object
// (a volume_id) rather than making one.
func (x *executor) registers(s *Step) bool {
	c := x.changes[s.Address]
	return c != nil && c.Action == Read && s.Kind == providers.KindVolume
}

func (x *executor) create(ctx context.Context, s *Step) (string, error) {
	c := x.changes[s.Address]
	in := x.intent(s)
	if x.registers(s) {
		spec, err := lang.DecodeSpec(c.Spec)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Address, err)
		}
		v, ok := spec.(*lang.Volume)
		if !ok {
			return "", fmt.Errorf("%s: registering a %s, not a volume", s.Address, spec.Kind())
		}
		in.ProviderID, in.Status = v.VolumeID, providers.StatusRunning
		in.Attributes[AttrExternal] = true
		return in.ProviderID, x.put(s, in)
	}
	req := providers.CreateRequest{Kind: s.Kind, Token: in.Token, Address: fmt.Sprintf("%s[%d]", s.Address, s.Index), Spec: c.Spec, Dir: c.Dir,
		Project: x.plan.Lineage}
	if s.Kind == providers.KindJob {
		req.Env = x.jobEnv(c, s)
		req.SSHKeys = x.opts.SSHKeys
		req.ConfigDir = x.opts.ConfigDir
		spec, err := x.expandJob(c.Spec, req.Env)
		if err != nil {
			x.forget(s, in.Token)
			return "", fmt.Errorf("%s: %w", s.Address, err)
		}
		req.Spec = spec
	}
	req.Progress = func(msg string) {
		x.emit(Event{Type: EventProgress, Step: s.ID, Op: s.Op, Address: s.Address, Index: s.Index, Message: msg})
	}
	// The first interrupt ends a wait for readiness too, not only the
	// steps not yet started.
	req.Stop = x.stopCh()
	if s.HostStep >= 0 || s.HostToken != "" {
		x.mu.Lock()
		if s.HostStep >= 0 {
			if h := x.created[s.HostStep]; h != nil {
				req.Host = h.ProviderID
			}
		} else {
			req.Host = x.tokens[s.HostToken]
		}
		x.mu.Unlock()
		if req.Host == "" {
			x.forget(s, in.Token)
			return "", fmt.Errorf("its instance %s does not exist", s.HostAddress)
		}
	}
	prov, err := x.set.For(s.Backend)
	if err != nil {
		x.forget(s, in.Token)
		return "", err
	}
	candidates := []*offers.Offer{s.Offer}
	for i := range s.Candidates {
		candidates = append(candidates, &s.Candidates[i])
	}
	retry, err := retryPolicy(c.Spec)
	if err != nil {
		x.forget(s, in.Token)
		return "", fmt.Errorf("%s: %w", s.Address, err)
	}
	deadline := time.Now().Add(retry.window)
	for {
		obj, err := x.tryOffers(ctx, s, req, in, prov, candidates)
		code := providers.CodeOf(err)
		if err == nil || (code != providers.NoCapacity && code != providers.Quota) || !retry.onNoCapacity || time.Now().Add(x.retryInterval()).After(deadline) {
			if err == nil {
				return obj.ID, nil
			}
			if ctx.Err() == nil && code != "" {
				// The provider said no: nothing was made.
				x.forget(s, in.Token)
			}
			return "", err
		}
		x.emit(Event{Type: EventRetry, Step: s.ID, Address: s.Address, Index: s.Index,
			Message: fmt.Sprintf("%v; retrying in %s (retry on no-capacity, until %s)", err, x.retryInterval(), deadline.Format(time.Kitchen))})
		select {
		case <-time.After(x.retryInterval()):
		case <-ctx.Done():
			return "", err
		case <-x.stopCh():
			x.forget(s, in.Token)
			return "", fmt.Errorf("%w (stopped while waiting for capacity)", err)
		}
	}
}

// retryInterval is how long apply waits before asking for capacity again.
func (x *executor) retryInterval() time.Duration {
	if x.opts.RetryInterval > 0 {
		return x.opts.RetryInterval
	}
	return 15 * time.Second
}

func (x *executor) stopCh() <-chan struct{} {
	if x.opts.Stop == nil {
		return nil
	}
	return x.opts.Stop
}

// retrying is what a run's retry policy asks of apply.
type retrying struct {
	onNoCapacity bool
	window       time.Duration
}

// retryPolicy reads a run's (or a fleet's) retry policy: on no-capacity,
// apply keeps asking for a machine within the policy's duration (an hour
// without one).
func retryPolicy(data json.RawMessage) (retrying, error) {
	if len(data) == 0 {
		return retrying{}, nil
	}
	spec, err := lang.DecodeSpec(data)
	if err != nil {
		return retrying{}, err
	}
	var r *lang.Retry
	if _, prof := runParts(spec); prof != nil {
		r = prof.Retry
	} else if f, ok := spec.(*lang.Fleet); ok {
		r = f.Retry
	}
	if r == nil || !slices.Contains(r.OnEvents, "no-capacity") {
		return retrying{}, nil
	}
	out := retrying{onNoCapacity: true, window: time.Hour}
	if r.Duration != nil && *r.Duration > 0 {
		out.window = time.Duration(*r.Duration) * time.Second
	}
	return out, nil
}

// tryOffers asks for the object on each offer in turn, failing over on
// capacity and quota errors.
func (x *executor) tryOffers(ctx context.Context, s *Step, req providers.CreateRequest, in *state.Instance, prov providers.Provider, candidates []*offers.Offer) (providers.Object, error) {
	var lastErr error
	var err error
	for i, o := range candidates {
		if s.HostStep < 0 && s.HostToken == "" && o != nil {
			if berr := x.blockedBy(o); berr != nil {
				// A region-wide quota met earlier in this apply: no need
				// to ask again.
				if lastErr == nil {
					lastErr = berr
				}
				x.emit(Event{Type: EventFailover, Step: s.ID, Address: s.Address, Index: s.Index,
					Message: fmt.Sprintf("skipping %s %s %s: its region's quota was reached earlier in this apply", o.Backend, o.Region, o.InstanceType)})
				continue
			}
			req.Offer = o
			in.Attributes[AttrOffer] = toAttr(o)
			in.Attributes[AttrPrice] = o.PricePerHour
			in.Provider = o.Backend
			if o.Backend != s.Backend {
				if prov, err = x.set.For(o.Backend); err != nil {
					return providers.Object{}, err
				}
			}
		}
		if err := x.admit(s, in); err != nil {
			return providers.Object{}, err
		}
		var obj providers.Object
		err := x.call(ctx, s, prov.Name(), func() error {
			var err error
			obj, err = prov.Create(ctx, req)
			return err
		})
		code := providers.CodeOf(err)
		if err != nil && code == providers.Quota && providers.ScopeOf(err) == providers.ScopeRegion && o != nil && s.HostStep < 0 && s.HostToken == "" {
			x.block(o, err)
		}
		if err != nil && failsOver(code) && i+1 < len(candidates) {
			lastErr = err
			nextO := candidates[i+1]
			x.emit(Event{Type: EventFailover, Step: s.ID, Address: s.Address, Index: s.Index,
				Message: fmt.Sprintf("%v; trying %s %s %s", err, nextO.Backend, nextO.Region, nextO.InstanceType)})
			continue
		}
		if err != nil {
			if lastErr != nil {
				err = fmt.Errorf("%w (after %d offers)", err, i+1)
			}
			return providers.Object{}, err
		}
		in.ProviderID, in.Status = obj.ID, obj.Status
		if obj.Offer != nil && s.Kind == providers.KindInstance && s.HostStep < 0 && s.HostToken == "" {
			// What the machine turned out to be (an SSH host's inventory).
			in.Attributes[AttrOffer] = toAttr(obj.Offer)
		}
		for k, v := range obj.Attributes {
			in.Attributes[k] = v
		}
		delete(in.Attributes, attrIntent)
		// Durable before anything that depends on it starts: a write
		// that fails stops the apply (the object's token is in its
		// recorded intent, so the next holder adopts it).
		if err := x.put(s, in); err != nil {
			_ = x.fail(err)
			return providers.Object{}, fmt.Errorf("made %s, but could not record it (its token is in the recorded intent): %w", obj.ID, err)
		}
		x.mu.Lock()
		x.created[s.ID] = in
		x.tokens[in.Token] = in.ProviderID
		x.mu.Unlock()
		return obj, nil
	}
	return providers.Object{}, lastErr
}

// jobEnv is dstack's environment of a job: its rank among the run's
// jobs, their number, GPUs, and the addresses of their hosts where they
// are known (jobs on fleet instances).
func (x *executor) jobEnv(c *Change, s *Step) map[string]string {
	var jobs []*Step
	for _, id := range c.Steps {
		if st := x.plan.Steps[id]; st.Op == OpCreate && st.Kind == providers.KindJob {
			jobs = append(jobs, st)
		}
	}
	slices.SortFunc(jobs, func(a, b *Step) int { return a.Index - b.Index })
	env := map[string]string{
		"DSTACK_NODE_RANK": fmt.Sprint(slices.Index(jobs, s)),
		"DSTACK_NODES_NUM": fmt.Sprint(len(jobs)),
	}
	if s.Demand != nil {
		env["DSTACK_GPUS_PER_NODE"] = fmt.Sprint(s.Demand.GPUs)
		env["DSTACK_GPUS_NUM"] = fmt.Sprint(s.Demand.GPUs * len(jobs))
	}
	var ips []string
	for _, j := range jobs {
		ip := x.hostIP(j)
		if ip == "" {
			return env
		}
		ips = append(ips, ip)
	}
	if len(ips) > 0 {
		env["DSTACK_MASTER_NODE_IP"] = ips[0]
		env["DSTACK_NODES_IPS"] = strings.Join(ips, "\n")
	}
	return env
}

// hostIP is the address of the instance a job runs on, when known.
func (x *executor) hostIP(s *Step) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.HostStep >= 0 {
		if h := x.created[s.HostStep]; h != nil {
			ip, _ := h.Attributes[providers.AttrIP].(string)
			return ip
		}
		return ""
	}
	if s.HostToken != "" {
		return x.hostIPs[s.HostToken]
	}
	return ""
}

// forget drops the intent of a create that made nothing. A write that
// fails leaves the intent, which the next refresh drops; it also stops
// the apply (see fail).
func (x *executor) forget(s *Step, token string) {
	if err := x.rec.write(&record{Op: journalRemoveInstance, Address: s.Address, Token: token}); err != nil {
		_ = x.fail(err)
	}
}

// put records an instance and waits until the record is durable.
func (x *executor) put(s *Step, in *state.Instance) error {
	return x.rec.write(&record{Op: journalPutInstance, Address: s.Address, Instance: x.snapshot(in)})
}

// snapshot copies an instance, so later changes to it are not seen by the
// recorder before they are written.
func (x *executor) snapshot(in *state.Instance) *state.Instance {
	cp := *in
	cp.Attributes = make(map[string]any, len(in.Attributes))
	for k, v := range in.Attributes {
		cp.Attributes[k] = v
	}
	return &cp
}

func (x *executor) delete(ctx context.Context, s *Step) error {
	if !x.external[s.Token] {
		prov, err := x.set.For(s.Backend)
		if err != nil {
			return err
		}
		id := s.ProviderID
		if id == "" && s.Token != "" {
			// Recorded as an intent only: find out whether it was made.
			objs, err := describe(ctx, prov, []string{s.Token})
			if err != nil {
				return err
			}
			id = objs[s.Token].ID
		}
		if id == "" && s.Pending {
			return fmt.Errorf("%s[%d] may still be made by an apply that lost its lock (%s); it is kept until then: "+
				"run this again once that apply has ended", s.Address, s.Index, s.Token)
		}
		if id != "" {
			if err := x.admit(s, nil); err != nil {
				return err
			}
			err := x.call(ctx, s, prov.Name(), func() error { return prov.Delete(ctx, s.Kind, id) })
			if err != nil && providers.CodeOf(err) != providers.NotFound {
				return err
			}
		}
	}
	if s.Release != "" {
		return x.rec.write(&record{Op: journalReleaseInstance, Address: s.Address, Token: s.Token,
			At: time.Now().UTC().Format(time.RFC3339)})
	}
	return x.rec.write(&record{Op: journalRemoveInstance, Address: s.Address, Token: s.Token})
}

// call runs a provider call under the backend's rate limit, backing off
// and retrying while the provider says it is rate-limited.
func (x *executor) call(ctx context.Context, s *Step, backend string, fn func() error) error {
	lim := x.limiter(backend)
	attempt := 0
	return withRetry(ctx, func() error {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		err := fn()
		if providers.CodeOf(err) == providers.RateLimited {
			attempt++
			x.emit(Event{Type: EventRetry, Step: s.ID, Address: s.Address, Index: s.Index, Message: fmt.Sprintf("rate limited (attempt %d): %v", attempt, err)})
		}
		return err
	})
}

// withRetry retries fn while it fails with a rate-limit error: after the
// provider's Retry-After, or an exponential backoff from 50 ms, up to 8
// attempts.
func withRetry(ctx context.Context, fn func() error) error {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if providers.CodeOf(err) != providers.RateLimited || attempt >= 8 {
			return err
		}
		wait := providers.RetryAfter(err)
		if wait <= 0 {
			wait = delay
			delay = min(delay*2, 5*time.Second)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// stop stops a running job through its provider, which keeps it (and its
// output) until the run is deleted; the next refresh records how it ended.
func (x *executor) stop(ctx context.Context, s *Step) error {
	prov, err := x.set.For(s.Backend)
	if err != nil {
		return err
	}
	jc, ok := prov.(providers.JobControl)
	if !ok {
		return fmt.Errorf("the %s backend cannot stop a job", s.Backend)
	}
	if err := x.admit(s, nil); err != nil {
		return err
	}
	return x.call(ctx, s, prov.Name(), func() error { return jc.StopJob(ctx, s.ProviderID, false) })
}

// admit says whether a provider call for step s may start (see fence.go):
// not once the apply is fenced, nor once the lease is no longer valid.
// For a create (in, its instance), the intent's recorded Until must not
// have passed: if it has while the lease is still valid (it was renewed
// since), the intent is recorded again, durably, with the lease's new end.
func (x *executor) admit(s *Step, in *state.Instance) error {
	if err := x.fence(); err != nil {
		return errNotStarted
	}
	if x.opts.Fence == nil {
		return nil
	}
	if err := x.opts.Fence.Valid(); err != nil {
		_ = x.fail(err)
		return errNotStarted
	}
	if in == nil {
		return nil
	}
	it, ok := decodeAttr[intent](in, attrIntent)
	if ok && time.Now().Before(it.Until) {
		return nil
	}
	it = intent{Lock: x.opts.Holder.Lock, Host: x.opts.Holder.Host, PID: x.opts.Holder.PID, Until: x.opts.Fence.Until().UTC()}
	in.Attributes[attrIntent] = toAttr(it)
	if err := x.put(s, in); err != nil {
		_ = x.fail(err)
		return errNotStarted
	}
	return nil
}

// errNotStarted is the error of a step that apply did not start once
// fenced.
var errNotStarted = errors.New("not started: this apply no longer holds the state")

// fail fences the apply: it starts nothing more. It returns the
// *FencedError, the first cause kept.
func (x *executor) fail(cause error) error {
	x.mu.Lock()
	if x.fenced == nil {
		var fe *FencedError
		if !errors.As(cause, &fe) {
			fe = &FencedError{Cause: cause}
		}
		x.fenced = fe
	}
	err := x.fenced
	x.mu.Unlock()
	x.haltOnce.Do(func() { close(x.halt) })
	return err
}

// fence is the error that fenced the apply, or nil.
func (x *executor) fence() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.fenced
}

func (x *executor) halted() bool {
	select {
	case <-x.halt:
		return true
	default:
		return false
	}
}
