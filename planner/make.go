package planner

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// Input is what a plan is made from.
type Input struct {
	// Config is the desired configuration; nil or empty destroys
	// everything in Destroy mode only.
	Config *lang.Config
	// Prior is the refreshed state (an empty state when none exists).
	Prior        *state.State
	StateExisted bool
	Workspace    string
	ToolVersion  string
	// Offers are what providers can make now, for placement.
	Offers []offers.Offer
	// HostsBackend is the backend that serves fleets of given hosts
	// (ssh_config): the registry's. A plan with such a fleet and none
	// is refused.
	HostsBackend string
	Mode         Mode
	// Targets limits the plan to these addresses and what they need; in
	// Destroy mode, to these addresses and what depends on them.
	Targets []string
	// TargetsAlone, in Destroy mode, plans the targets without what
	// depends on them: for a caller that orders the destruction itself
	// (Terraform's provider, which destroys one resource at a time, after
	// those that reference it).
	TargetsAlone bool
	// Replace forces these addresses to be replaced.
	Replace []string
	// RerunFinished runs again the tasks among Targets whose jobs have all
	// ended, though their configuration did not change: dstack's `apply
	// -f FILE`, which submits the run anew. Without it (a whole-directory
	// plan) a finished task stays as it is until its configuration
	// changes or it is replaced on request, as Terraform keeps what it
	// made.
	RerunFinished bool
	// Drift is what Refresh found.
	Drift []Drift
	// Now is the time retry windows are measured at; zero: the clock.
	Now time.Time
	// Control is what the control loop asks beyond the configuration
	// (see control.go); nil for a plan made by hand.
	Control *Control
}

// Error lists every reason a plan could not be made.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%d problems:\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// Make diffs the configuration against the prior state. The same input
// gives the same plan.
func Make(in Input) (*Plan, error) {
	if in.Prior == nil {
		in.Prior = state.New(in.ToolVersion)
	}
	if in.Config == nil {
		in.Config = lang.NewConfig()
	}
	if in.Mode == "" {
		in.Mode = Normal
	}
	p := &Plan{
		FormatVersion: FormatVersion, ToolVersion: in.ToolVersion, Mode: in.Mode, Workspace: in.Workspace,
		Lineage: in.Prior.Lineage, Serial: in.Prior.Serial, StateExisted: in.StateExisted,
		Prior: in.Prior, Targets: in.Targets, Replace: in.Replace, Drift: in.Drift,
		Sources: map[string]string{},
	}
	for name, src := range in.Config.Sources {
		p.Sources[name] = string(src)
	}
	if cycle := findCycle(in.Config); cycle != nil {
		return nil, &Error{Problems: []string{where(in.Config, cycle[0], "depends_on") + "Cycle in the configuration: " + strings.Join(cycle, " → ")}}
	}
	m := &maker{in: in, plan: p, hosts: map[string]*host{}, runHosts: map[string][]*host{}}
	if err := m.checkAddresses(); err != nil {
		return nil, err
	}
	if in.Mode == RefreshOnly {
		return p, nil
	}
	m.collectHosts()
	addrs := m.addresses()
	// Infrastructure first, so runs can be placed on the fleets planned.
	sort.SliceStable(addrs, func(i, j int) bool { return kindOrder(addrs[i]) < kindOrder(addrs[j]) })
	for _, a := range addrs {
		n := len(p.Changes)
		m.change(a)
		if len(p.Changes) > n {
			m.syncFleetHosts(p.Changes[n])
		}
	}
	m.checkSecrets()
	if len(m.problems) > 0 {
		return nil, &Error{Problems: m.problems}
	}
	slices.SortFunc(p.Changes, func(a, b *Change) int { return strings.Compare(a.Address, b.Address) })
	m.startupOrder()
	m.order()
	m.notes(addrs)
	if cyc := stepCycle(p.Steps); cyc != nil {
		return nil, &Error{Problems: []string{"Cycle in the action graph: " + strings.Join(cyc, " → ")}}
	}
	return p, nil
}

func kindOrder(addr string) int {
	a, _ := lang.ParseAddress(addr)
	switch a.Kind {
	case lang.KindVolume, lang.KindGateway:
		return 0
	case lang.KindFleet:
		return 1
	}
	return 2
}

type maker struct {
	in Input
	// allFleets are the configuration's fleets' names (fleetNames).
	allFleets []string
	plan      *Plan
	problems  []string
	// hosts are the fleet instances runs can be placed on, by token for
	// existing ones and by "step:N" for planned ones.
	hosts     map[string]*host
	hostOrder []*host
	// runHosts are the hosts a multi-node run's jobs were put on so far,
	// by the run's address: one job per host, all in one fleet.
	runHosts map[string][]*host
	// byAddress are the existing hosts by address ("fleet.a[0]").
	byAddress map[string]*host
	// noHostsBackend: a fleet of given hosts was planned without a
	// backend to serve it (reported once).
	noHostsBackend bool
}

// problem records a reason the plan cannot be made; the same reason
// given twice (for each job of a run) is kept once.
func (m *maker) problem(format string, args ...any) {
	if p := fmt.Sprintf(format, args...); !slices.Contains(m.problems, p) {
		m.problems = append(m.problems, p)
	}
}

func (m *maker) checkAddresses() error {
	var probs []string
	for _, list := range [][]string{m.in.Targets, m.in.Replace} {
		for _, a := range list {
			if _, err := lang.ParseAddress(a); err != nil {
				probs = append(probs, err.Error())
			}
		}
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// addresses are every address in the configuration or the state that the
// plan covers (all of them, or the targets and what they depend on).
func (m *maker) addresses() []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, r := range m.in.Config.Sorted() {
		add(r.Address.String())
	}
	for _, r := range m.in.Prior.Resources {
		add(r.Address)
	}
	sort.Strings(out)
	if len(m.in.Targets) == 0 {
		return out
	}
	want := map[string]bool{}
	var visit func(a string)
	visit = func(a string) {
		if want[a] {
			return
		}
		want[a] = true
		if pa, err := lang.ParseAddress(a); err == nil {
			if r := m.in.Config.Resources[pa]; r != nil {
				for _, d := range r.DependsOn {
					visit(d.To.String())
				}
			}
		}
	}
	if m.in.Mode == Destroy && !m.in.TargetsAlone {
		// Tearing a target down takes what depends on it down first (a
		// run cannot outlive its fleet), and leaves what it depends on.
		dependents := m.dependents()
		visit = func(a string) {
			if want[a] {
				return
			}
			want[a] = true
			for _, d := range dependents[a] {
				visit(d)
			}
		}
	}
	for _, t := range m.in.Targets {
		visit(t)
	}
	var kept []string
	for _, a := range out {
		if want[a] {
			kept = append(kept, a)
		}
	}
	return kept
}

// dependents maps each address to the addresses that depend on it, in
// the configuration or as the state records.
func (m *maker) dependents() map[string][]string {
	out := map[string][]string{}
	add := func(to, from string) {
		if !slices.Contains(out[to], from) {
			out[to] = append(out[to], from)
		}
	}
	for _, r := range m.in.Config.Sorted() {
		for _, d := range r.DependsOn {
			add(d.To.String(), r.Address.String())
		}
	}
	for _, r := range m.in.Prior.Resources {
		for _, d := range r.DependsOn {
			add(d, r.Address)
		}
	}
	return out
}

// desired is one configured resource, ready to diff.
type desired struct {
	res    *lang.Resource
	spec   json.RawMessage // unmasked
	masked json.RawMessage
	fields map[string]json.RawMessage // masked, by top-level field
	// sensitive is nil when nothing in the configuration is.
	sensitive *Sensitive
	hash      string
}

// newDesired encodes a resource once; its hash is lang's Resource.Hash
// of the same bytes. The masked fields are worked out only for resources
// that change (see load).
func newDesired(r *lang.Resource) (*desired, error) {
	raw, err := json.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", r.Address, err)
	}
	sum := sha256.Sum256(raw)
	return &desired{res: r, spec: raw, hash: hex.EncodeToString(sum[:])}, nil
}

// load splits the configuration into top-level fields with its
// sensitive values (lang.Resource.SensitivePaths: the model's tags and
// values from sensitive variables) masked.
func (d *desired) load() {
	if d.fields != nil {
		return
	}
	masked, fields, sens, err := maskSpec(d.spec, d.res.SensitivePaths())
	if err != nil {
		// The spec is our own encoding; it always decodes.
		panic(fmt.Sprintf("planner: decoding %s: %v", d.res.Address, err))
	}
	d.masked, d.fields, d.sensitive = masked, fields, sens
}

func (m *maker) configured(addr string) *lang.Resource {
	a, err := lang.ParseAddress(addr)
	if err != nil {
		return nil
	}
	return m.in.Config.Resources[a]
}

func (m *maker) change(addr string) {
	prior := m.in.Prior.Resource(addr)
	res := m.configured(addr)
	if m.in.Mode == Destroy {
		res = nil
	}
	lc := lang.Lifecycle{}
	if r := m.configured(addr); r != nil {
		lc = r.Lifecycle
	}
	switch {
	case res == nil && prior == nil:
		return
	case res == nil:
		if lc.PreventDestroy {
			m.problemAt(addr, "", "%s has lifecycle.prevent_destroy set, but this plan would tear it down. Remove prevent_destroy first, or leave it out with -target.", addr)
			return
		}
		reason := "not in configuration"
		if m.in.Mode == Destroy {
			reason = "destroy"
		}
		m.deleteChange(prior, reason)
		return
	}
	if unsupported(res) {
		m.problemAt(addr, "backend_options", "%s: backend_options is not supported on any backend yet: no backend reads it, so it would be ignored. Remove it.", addr)
		return
	}
	if m.notEnforced(addr, res.Spec) {
		return
	}
	d, err := newDesired(res)
	if err != nil {
		m.problemAt(addr, "", "%v", err)
		return
	}
	if prior == nil {
		m.createChange(d)
		return
	}
	m.updateChange(d, prior, lc)
}

// priorSpec returns the masked configuration recorded in state.
// priorSpec is the configuration state records for r, as JSON and by
// field; nil when state has none (an interrupted apply). A recorded
// configuration that is not an object is an error.
func priorSpec(r *state.Resource) (json.RawMessage, map[string]json.RawMessage, error) {
	v, ok := r.Attributes[AttrSpec]
	if !ok {
		return nil, nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the configuration recorded in state: %w", r.Address, err)
	}
	if _, ok := r.Attributes[attrSensitive]; !ok {
		// Recorded before sensitive values were tracked, when the mask
		// read "(sensitive)".
		raw = bytes.ReplaceAll(raw, []byte(`"(sensitive)"`), []byte(strconv.Quote(Masked)))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, fmt.Errorf("%s: the configuration recorded in state: %w", r.Address, err)
	}
	return raw, fields, nil
}

func (m *maker) addChange(c *Change) {
	m.plan.Changes = append(m.plan.Changes, c)
}

func (m *maker) newStep(s *Step) *Step {
	s.ID = len(m.plan.Steps)
	m.plan.Steps = append(m.plan.Steps, s)
	return s
}

func deps(r *lang.Resource) []string {
	var out []string
	for _, d := range r.DependsOn {
		out = append(out, d.To.String())
	}
	return out
}

func (m *maker) createChange(d *desired) {
	d.load()
	c := &Change{Address: d.res.Address.String(), Kind: d.res.Address.Kind, Action: Create, Reason: "new in configuration",
		After: d.masked, Spec: d.spec, Sensitive: d.sensitive, ConfigHash: d.hash, DependsOn: deps(d.res), Dir: configDir(d.res)}
	for _, f := range slices.Sorted(maps.Keys(d.fields)) {
		if f == "type" || f == "name" {
			continue
		}
		c.Fields = append(c.Fields, FieldChange{Field: f, After: rawValue(d.fields[f]), Sensitive: d.sensitive.wholly(f)})
	}
	if v, ok := d.res.Spec.(*lang.Volume); ok && v.VolumeID != "" {
		c.Action, c.Reason = Read, "registers the existing volume "+v.VolumeID
	}
	n := desiredCount(d.res.Spec, 0)
	m.addInstances(c, d, nil, n)
	c.InstancesAfter = n
	m.commit(c)
	m.addChange(c)
}

// desiredCount is how many instances, replicas or jobs a resource should
// have, given how many it has now. A task with a schedule has none until
// the control loop starts it at one of its times (see Control.Start).
func desiredCount(spec lang.Spec, current int) int {
	if t, ok := spec.(*lang.Task); ok && t.Schedule != nil && current == 0 {
		return 0
	}
	return countOf(spec, current)
}

// countOf is desiredCount without schedules: the jobs a run has when it
// runs.
func countOf(spec lang.Spec, current int) int {
	switch s := spec.(type) {
	case *lang.Fleet:
		if s.SSHConfig != nil {
			return len(s.SSHConfig.Hosts)
		}
		if s.Nodes == nil {
			return 1
		}
		n := current
		if s.Nodes.Target != nil && current == 0 {
			n = *s.Nodes.Target
		}
		n = max(n, s.Nodes.Min)
		if s.Nodes.Max != nil {
			n = min(n, *s.Nodes.Max)
		}
		return n
	case *lang.Service:
		lo, hi := replicaRange(s)
		return max(min(max(current, lo), hi), lo)
	case *lang.Task:
		if len(s.Groups) > 0 {
			n := 0
			for _, g := range s.Groups {
				n += max(g.Nodes, 1)
			}
			return n
		}
		if s.Nodes != nil {
			return *s.Nodes
		}
		return 1
	}
	return 1
}

func replicaRange(s *lang.Service) (lo, hi int) {
	if s.Replicas == nil {
		return 1, 1
	}
	if s.Replicas.Range != nil {
		r := s.Replicas.Range
		lo, hi = 1, 1<<30
		if r.Min != nil {
			lo = *r.Min
		}
		if r.Max != nil {
			hi = *r.Max
		}
		return lo, hi
	}
	hi = 0
	for _, g := range s.Replicas.Groups {
		gl, gh := 1, 1
		if g.Count != nil {
			gl, gh = 0, 1<<20
			if g.Count.Min != nil {
				gl = *g.Count.Min
			}
			if g.Count.Max != nil {
				gh = *g.Count.Max
			}
		}
		lo += gl
		hi += gh
	}
	return lo, hi
}

func objectKind(k lang.Kind) providers.ObjectKind {
	switch k {
	case lang.KindFleet:
		return providers.KindInstance
	case lang.KindVolume:
		return providers.KindVolume
	case lang.KindGateway:
		return providers.KindGateway
	}
	return providers.KindJob
}

// addInstances plans creates of n instances of c's resource at the
// lowest free indexes, after the steps in after.
func (m *maker) addInstances(c *Change, d *desired, keep []*state.Instance, n int) []int {
	used := map[int]bool{}
	for _, in := range keep {
		used[in.Index] = true
	}
	var ids []int
	for idx := 0; len(ids) < n; idx++ {
		if used[idx] {
			continue
		}
		s := m.instanceStep(c, d, idx)
		if s == nil {
			return ids
		}
		ids = append(ids, s.ID)
		c.Steps = append(c.Steps, s.ID)
	}
	return ids
}

func (m *maker) instanceStep(c *Change, d *desired, idx int) *Step {
	s := &Step{Op: OpCreate, Address: c.Address, Index: idx, Kind: objectKind(c.Kind), HostStep: -1}
	switch spec := d.res.Spec.(type) {
	case *lang.Fleet:
		if spec.SSHConfig != nil {
			h := spec.SSHConfig.Hosts[idx]
			o := m.sshOffer(c.Address, spec, h.Hostname)
			s.Backend, s.Offer = o.Backend, &o
			break
		}
		list := offers.Match(m.in.Offers, resourcesOf(spec.Resources), fleetFilter(spec))
		list = available(list)
		list = filterTypes(list, spec.InstanceTypes)
		if len(list) == 0 {
			m.problemAt(c.Address, "resources", "%s: no offer matches %s%s", c.Address, describeResources(spec.Resources), describeFilter(spec.Backends, spec.Regions, spec.SpotPolicy, spec.MaxPrice))
			return nil
		}
		s.Offer, s.Backend = &list[0], list[0].Backend
		s.Candidates = head(list[1:], 3)
		c.CostAfter += list[0].PricePerHour
	case *lang.Volume:
		s.Backend = spec.Backend
	case *lang.Gateway:
		s.Backend = spec.Backend
	default:
		if !m.place(c, d, s) || !m.checkRunFlags(c, d, s) {
			return nil
		}
	}
	return m.newStep(s)
}

func head[T any](list []T, n int) []T {
	if len(list) > n {
		list = list[:n]
	}
	return slices.Clone(list)
}

func available(list []offers.Offer) []offers.Offer {
	n := 0
	for i := range list {
		if list[i].Availability != offers.NoCapacity {
			n++
		}
	}
	if n == len(list) {
		return list
	}
	out := make([]offers.Offer, 0, n)
	for _, o := range list {
		if o.Availability != offers.NoCapacity {
			out = append(out, o)
		}
	}
	return out
}

func filterTypes(list []offers.Offer, types []string) []offers.Offer {
	if len(types) == 0 {
		return list
	}
	out := list[:0:0]
	for _, o := range list {
		if slices.ContainsFunc(types, func(t string) bool { return strings.EqualFold(t, o.InstanceType) }) {
			out = append(out, o)
		}
	}
	return out
}

// commit adds the step that records the change's configuration once its
// instances are made.
func (m *maker) commit(c *Change) {
	s := m.newStep(&Step{Op: OpCommit, Address: c.Address, HostStep: -1})
	c.Steps = append(c.Steps, s.ID)
}

func (m *maker) deleteChange(prior *state.Resource, reason string) {
	// A resource is torn down even when its recorded configuration does
	// not read: the change then lists no fields, and says why.
	before, fields, err := priorSpec(prior)
	if err != nil {
		reason += fmt.Sprintf(" (%v)", err)
	}
	c := &Change{Address: prior.Address, Action: Delete, Reason: reason, Before: before,
		InstancesBefore: len(prior.Instances), DependsOn: prior.DependsOn}
	if a, err := lang.ParseAddress(prior.Address); err == nil {
		c.Kind = a.Kind
	}
	sens := priorSensitive(prior)
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if f == "type" || f == "name" {
			continue
		}
		c.Fields = append(c.Fields, FieldChange{Field: f, Before: rawValue(fields[f]), Sensitive: sens.wholly(f)})
	}
	for _, in := range prior.Instances {
		c.CostBefore += price(in)
		s := m.deleteStep(prior.Address, in)
		c.Steps = append(c.Steps, s.ID)
	}
	s := m.newStep(&Step{Op: OpForget, Address: prior.Address, HostStep: -1})
	c.Steps = append(c.Steps, s.ID)
	m.addChange(c)
}

func (m *maker) deleteStep(addr string, in *state.Instance) *Step {
	_, pending := in.Attributes[attrPending]
	return m.newStep(&Step{Op: OpDelete, Address: addr, Index: in.Index, Kind: instanceKind(in),
		Backend: in.Provider, Token: in.Token, ProviderID: in.ProviderID, Pending: pending, HostStep: -1})
}

func (m *maker) updateChange(d *desired, prior *state.Resource, lc lang.Lifecycle) {
	addr := prior.Address
	// Jobs left on hosts that did not answer are not the run's: they are
	// only removed, once their host answers again.
	prior, abandoned := splitAbandoned(prior)
	cleanup := m.removableAbandoned(abandoned)
	if len(cleanup) == 0 && m.unchanged(d, prior) && !m.in.Control.touches(prior) {
		m.plan.NoChange++
		return
	}
	d.load()
	before, beforeFields, err := priorSpec(prior)
	if err != nil {
		m.problemAt(addr, "", "%v", err)
		return
	}
	c := &Change{Address: addr, Kind: d.res.Address.Kind, Before: before, After: d.masked, Spec: d.spec, Sensitive: d.sensitive,
		ConfigHash: d.hash, DependsOn: deps(d.res), InstancesBefore: len(prior.Instances), InstancesAfter: len(prior.Instances),
		Dir: configDir(d.res)}
	for _, in := range prior.Instances {
		c.CostBefore += price(in)
	}
	c.CostAfter = c.CostBefore
	replaceRequested := slices.Contains(m.in.Replace, addr)
	hostGone, silent := "", ""
	if c.Kind.IsRun() && !taskFinished(prior) {
		hostGone = m.onRemovedHost(prior)
		if hostGone == "" {
			silent = m.movesOffSilentHost(d.res.Spec, prior)
		}
	}
	interrupted := prior.ConfigHash == ""
	var recorded *lang.Fleet // the SSH fleet as state records it
	sshFleet := isSSHFleet(d.res.Spec)
	if sshFleet && len(before) > 0 {
		f, err := recordedFleet(unmaskRecorded(before, priorSensitive(prior), d))
		if err != nil {
			m.problemAt(addr, "", "%s: %v", addr, err)
			return
		}
		recorded = f
	}
	sshFleet = sshFleet && (interrupted || (recorded != nil && recorded.SSHConfig != nil))
	var forced []string
	scaled := false
	priorSens := priorSensitive(prior)
	if prior.ConfigHash != d.hash && !interrupted {
		for _, f := range unionKeys(beforeFields, d.fields) {
			if f == "type" || f == "name" || lc.Ignores(f) {
				continue
			}
			b, a := beforeFields[f], d.fields[f]
			fc := FieldChange{Field: f, Before: rawValue(b), After: rawValue(a), Sensitive: d.sensitive.wholly(f) && priorSens.wholly(f)}
			if jsonEqual(b, a) {
				// Masked alike: only the sensitive values can differ.
				if !sensitiveChanged(priorSens, d.sensitive, f) {
					continue
				}
				fc = FieldChange{Field: f, Sensitive: true}
			}
			switch {
			case sshFleet && f == "ssh_config":
				// Host by host: see sshHosts.
				fc.Scales = true
				scaled = true
			case sshFleet:
				// The hosts are what they are: an SSH fleet's other fields
				// (resources, blocks, env, placement, policies) only
				// steer the runs placed on them, so they change in place.
			case rule(c.Kind, f) == ruleReplace:
				fc.ForcesReplacement = true
				forced = append(forced, f)
			case rule(c.Kind, f) == ruleScale:
				fc.Scales = true
				scaled = true
			}
			c.Fields = append(c.Fields, fc)
		}
		if len(c.Fields) == 0 {
			// Only ignored fields changed: keep the recorded configuration.
			c.ConfigHash = prior.ConfigHash
		}
	}
	live := prior.Instances
	finished := c.Kind == lang.KindTask && taskFinished(prior)
	switch {
	case replaceRequested || len(forced) > 0 || hostGone != "" || silent != "" || m.rerun(prior) || (c.Kind == lang.KindTask && m.taskNeedsRerun(d, prior)) ||
		m.in.Control.starts(addr):
		if lc.PreventDestroy {
			m.problemAt(addr, "", "%s has lifecycle.prevent_destroy set, but this plan would replace it.", addr)
			return
		}
		c.Action = Replace
		switch {
		case replaceRequested:
			c.Reason = "replacement requested with -replace"
		case len(forced) > 0:
			c.Reason = "configuration changed: " + strings.Join(forced, ", ") + " cannot change in place"
		case hostGone != "":
			c.Reason = "its instance " + hostGone + " is being torn down"
		case silent != "":
			c.Reason = "its instance " + silent + " does not answer, and retry on interruption moves the run; " +
				"the job there is abandoned, and removed once the host answers again"
		case m.rerun(prior):
			c.Reason = "the task finished; apply -f runs it again"
		case m.taskRetryEvent(d, prior) == "interruption":
			c.Reason = "the task's job was interrupted and retry on interruption allows another attempt"
		case m.in.Control.starts(addr):
			c.Reason = "control loop: " + m.in.Control.Start[addr]
		default:
			c.Reason = "the task's jobs failed and retry allows another attempt"
		}
		c.CreateBeforeDestroy = c.Kind == lang.KindService
		if lc.CreateBeforeDestroy != nil {
			c.CreateBeforeDestroy = *lc.CreateBeforeDestroy
		}
		m.replace(c, d, prior, silent != "")
	case sshFleet:
		if !m.sshHosts(c, d, prior, recorded) {
			if len(c.Fields) == 0 {
				m.plan.NoChange++
				return
			}
			c.Action, c.Reason = Update, "configuration changed in place"
		}
		if interrupted {
			c.Action, c.Reason = Create, "finishing an interrupted apply"
		}
		m.commit(c)
	case interrupted:
		c.Action, c.Reason = Create, "finishing an interrupted apply"
		n := desiredCount(d.res.Spec, 0)
		m.scaleTo(c, d, prior, n)
		m.commit(c)
	default:
		n := len(live)
		if !finished {
			n = desiredCount(d.res.Spec, len(live))
		}
		workers := workersToStop(stopCriteria(d.res.Spec), prior)
		release, releaseWhy := m.idleOwnMachines(d.res.Spec, prior)
		switch {
		case !finished && len(c.Fields) == 0 && m.controlled(c, d, prior, n):
			m.commit(c)
		case n != len(live):
			c.Action = Scale
			c.Reason = fmt.Sprintf("%d → %d instances", len(live), n)
			if !scaled {
				c.Reason = fmt.Sprintf("drift: %d of %d instances are gone; %d → %d", desiredCount(d.res.Spec, 0)-len(live), desiredCount(d.res.Spec, 0), len(live), n)
			}
			m.scaleTo(c, d, prior, n)
			m.commit(c)
		case len(release) > 0:
			c.Action, c.Reason = Update, "releases its own machine: "+strings.Join(releaseWhy, "; ")
			for i, in := range release {
				c.Steps = append(c.Steps, m.releaseStep(c.Address, in, releaseWhy[i]).ID)
				c.CostAfter -= price(in)
			}
			m.commit(c)
		case len(c.Fields) > 0:
			c.Action, c.Reason = Update, "configuration changed in place"
			m.commit(c)
		case len(workers) > 0:
			c.Action = Update
			c.Reason = fmt.Sprintf("stop_criteria master-done: the master finished; stopping %d worker(s)", len(workers))
			for _, in := range workers {
				s := m.newStep(&Step{Op: OpStop, Address: c.Address, Index: in.Index, Kind: providers.KindJob, Backend: in.Provider,
					Token: in.Token, ProviderID: in.ProviderID, HostStep: -1})
				c.Steps = append(c.Steps, s.ID)
			}
			m.commit(c)
		case len(cleanup) > 0:
			c.Action = Update
			c.Reason = fmt.Sprintf("removes %d job(s) it left on a host that did not answer and now does", len(cleanup))
			m.commit(c)
		default:
			m.plan.NoChange++
			return
		}
	}
	for _, in := range cleanup {
		c.Steps = append(c.Steps, m.deleteStep(c.Address, in).ID)
	}
	m.addChange(c)
}

// unchanged is the quick answer for most resources of a large plan: the
// same configuration, the same number of instances, nothing asked.
func (m *maker) unchanged(d *desired, prior *state.Resource) bool {
	if prior.ConfigHash != d.hash || slices.Contains(m.in.Replace, prior.Address) {
		return false
	}
	kind := d.res.Address.Kind
	finished := kind == lang.KindTask && taskFinished(prior)
	if kind.IsRun() && !finished && (m.onRemovedHost(prior) != "" || m.movesOffSilentHost(d.res.Spec, prior) != "") {
		return false
	}
	if kind == lang.KindTask && (m.rerun(prior) || m.taskNeedsRerun(d, prior) || len(workersToStop(stopCriteria(d.res.Spec), prior)) > 0) {
		return false
	}
	if rel, _ := m.idleOwnMachines(d.res.Spec, prior); len(rel) > 0 {
		return false
	}
	return finished || desiredCount(d.res.Spec, len(prior.Instances)) == len(prior.Instances)
}

// rerun reports whether a finished task runs again because the plan was
// asked for it by file (Input.RerunFinished).
func (m *maker) rerun(prior *state.Resource) bool {
	if !m.in.RerunFinished || !slices.Contains(m.in.Targets, prior.Address) {
		return false
	}
	a, err := lang.ParseAddress(prior.Address)
	return err == nil && a.Kind == lang.KindTask && taskFinished(prior)
}

// taskNeedsRerun: a task whose jobs failed is run again when its retry
// policy allows the event (see taskRetryEvent).
func (m *maker) taskNeedsRerun(d *desired, prior *state.Resource) bool {
	return m.taskRetryEvent(d, prior) != ""
}

// taskRetryEvent is the event a task whose jobs failed is run again for,
// or "" when it is not: "interruption" for a job stopped by its
// machine's interruption notice (the agent's termination) or terminated
// outside dstack, "error" for one that failed otherwise (exited
// non-zero), if its retry policy allows that event (see retryAllows).
func (m *maker) taskRetryEvent(d *desired, prior *state.Resource) string {
	if _, ok := d.res.Spec.(*lang.Task); !ok {
		return ""
	}
	event := ""
	for _, in := range prior.Instances {
		if in.Status != providers.StatusFailed && in.Status != providers.StatusTerminated {
			continue
		}
		if attrString(in, AttrEndedOutside) != "" || attrString(in, providers.AttrTermination) == providers.TerminationInterruption {
			event = "interruption"
		} else if event == "" {
			event = "error"
		}
	}
	if event == "" || !m.retryAllows(d.res.Spec, event, prior) {
		return ""
	}
	return event
}

func (m *maker) now() time.Time {
	if m.in.Now.IsZero() {
		return time.Now()
	}
	return m.in.Now
}

func attrString(in *state.Instance, key string) string {
	s, _ := in.Attributes[key].(string)
	return s
}

func taskFinished(r *state.Resource) bool {
	if len(r.Instances) == 0 {
		return false
	}
	for _, in := range r.Instances {
		if !providers.Ended(in.Status) {
			return false
		}
	}
	return true
}

// replace deletes a run's or resource's instances and makes them anew;
// with abandonSilent, the jobs on hosts that do not answer are abandoned
// rather than deleted.
func (m *maker) replace(c *Change, d *desired, prior *state.Resource, abandonSilent bool) {
	n := desiredCount(d.res.Spec, len(prior.Instances))
	if m.in.Control.starts(c.Address) {
		n = countOf(d.res.Spec, 0)
	}
	c.CostAfter = 0
	var dels []int
	for _, in := range prior.Instances {
		var s *Step
		if h := m.hostFor(in); abandonSilent && h != nil && h.silent {
			s = m.abandonStep(c.Address, in)
		} else {
			s = m.deleteStep(c.Address, in)
		}
		dels = append(dels, s.ID)
		c.Steps = append(c.Steps, s.ID)
	}
	// The new instances are placed as if the old ones were gone.
	m.releaseHosts(prior)
	creates := m.addInstances(c, d, nil, n)
	if c.CreateBeforeDestroy && c.Kind == lang.KindService && !abandonSilent {
		m.roll(creates, dels)
		m.commit(c)
		c.InstancesAfter = n
		return
	}
	for _, cid := range creates {
		cs := m.plan.Steps[cid]
		if c.CreateBeforeDestroy {
			for _, did := range dels {
				m.plan.Steps[did].Deps = append(m.plan.Steps[did].Deps, cid)
			}
		} else {
			cs.Deps = append(cs.Deps, dels...)
		}
	}
	m.commit(c)
	c.InstancesAfter = n
}

// scaleTo creates or deletes instances to reach n, deleting the highest
// indexes first.
func (m *maker) scaleTo(c *Change, d *desired, prior *state.Resource, n int) {
	live := slices.Clone(prior.Instances)
	slices.SortFunc(live, func(a, b *state.Instance) int { return cmp.Compare(a.Index, b.Index) })
	if n > len(live) {
		m.addInstances(c, d, live, n-len(live))
	}
	for i := len(live) - 1; i >= n; i-- {
		s := m.deleteStep(c.Address, live[i])
		c.Steps = append(c.Steps, s.ID)
	}
	c.CostAfter = c.CostBefore
	for i := n; i < len(live); i++ {
		c.CostAfter -= price(live[i])
	}
	for _, id := range c.Steps {
		if s := m.plan.Steps[id]; s.Op == OpCreate && s.Offer != nil && s.HostStep < 0 && s.HostToken == "" {
			c.CostAfter += s.Offer.PricePerHour
		}
	}
	c.InstancesAfter = n
}

// sensitiveChanged reports whether the sensitive values of a top-level
// field changed. A resource recorded before sensitive values were
// tracked has no digests: a field with sensitive values is then taken to
// have changed, as the configuration's hash did.
func sensitiveChanged(prior, next *Sensitive, field string) bool {
	if prior == nil {
		return next.digest(field) != ""
	}
	return prior.digest(field) != next.digest(field)
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return string(ca) == string(cb)
}

func rawValue(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return string(r)
	}
	return v
}

func unionKeys(a, b map[string]json.RawMessage) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]json.RawMessage{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ErrStale is returned when a saved plan no longer matches the state.
//
//lint:ignore ST1005 the message is a sentence users see first on the line, as Terraform words it
var ErrStale = errors.New("Saved plan is stale: the state changed since the plan was made")

// workersToStop are the jobs of a distributed task with stop_criteria
// master-done that still run after its master (the job of rank 0) ended.
func workersToStop(criteria string, prior *state.Resource) []*state.Instance {
	if criteria != "master-done" || len(prior.Instances) < 2 {
		return nil
	}
	master := prior.Instances[0]
	for _, in := range prior.Instances {
		if in.Index < master.Index {
			master = in
		}
	}
	if !finishedJob(master) {
		return nil
	}
	var out []*state.Instance
	for _, in := range prior.Instances {
		if in != master && !finishedJob(in) && in.ProviderID != "" && in.Status != providers.StatusUnknown {
			out = append(out, in)
		}
	}
	return out
}

// unsupported reports whether a resource sets a field the model accepts
// (dstack's format has it) but that no backend acts on yet: planning it
// would silently ignore the field, so the plan refuses it instead.
func unsupported(r *lang.Resource) bool {
	switch s := r.Spec.(type) {
	case *lang.Task:
		return len(s.BackendOptions) > 0
	case *lang.Service:
		return len(s.BackendOptions) > 0
	case *lang.DevEnvironment:
		return len(s.BackendOptions) > 0
	case *lang.Fleet:
		return len(s.BackendOptions) > 0
	}
	return false
}
