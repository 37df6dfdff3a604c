package planner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// host is a fleet instance runs can be placed on.
type host struct {
	key     string // the instance's token, or "step:N" for a planned one
	address string // fleet.f[0]
	fleet   string // the fleet's name
	token   string
	step    int
	backend string
	// given is a host given by its address (an SSH fleet's), which stays
	// the same machine when its instance is made again.
	given   bool
	cap     offers.Offer
	used    Demand
	removed bool
	// silent is a host that did not answer the last refresh: nothing new
	// is placed on it.
	silent bool
	// blocks splits the host into that many equal slices (its fleet's or
	// its own `blocks`); runs take whole blocks. 0 or 1: undivided.
	blocks int
}

func (h *host) free() Demand {
	d := Demand{CPUs: h.cap.CPUs - h.used.CPUs, MemoryMB: int(h.cap.Memory) - h.used.MemoryMB}
	if h.cap.GPU != nil {
		d.GPUs = h.cap.GPU.Count - h.used.GPUs
	}
	return d
}

// Instance attribute keys the planner records (beside the provider's
// object attributes, such as providers.AttrIP), which the commands read.
const (
	AttrKind         = "kind"          // the object's providers.ObjectKind
	AttrOffer        = "offer"         // the offers.Offer a machine was made from
	AttrHost         = "host"          // a job's host instance's token
	AttrHostAddress  = "host_address"  // a job's host instance's address ("fleet.a[0]")
	AttrDemand       = "demand"        // the Demand a job takes of its host
	AttrPrice        = "price"         // USD per hour
	AttrExternal     = "external"      // an object dstack did not make (imported)
	AttrCreatedAt    = "created_at"    // when apply made a job
	AttrEndedOutside = "ended_outside" // why a task's job ended outside dstack
	AttrAbandonedAt  = "abandoned_at"  // when a job was left on a host that did not answer
	AttrReleasedAt   = "released_at"   // when a finished job's own machine was released (its record kept)
	attrIntent       = "intent"        // who may still be making an object not yet seen (see fence.go)
	attrPending      = "pending_until" // an intent kept while its writer may still make it
)

// AttrSpec is the resource attribute that holds its configuration, as
// JSON with sensitive values masked.
const AttrSpec = "spec"

func instanceKind(in *state.Instance) providers.ObjectKind {
	s, _ := in.Attributes[AttrKind].(string)
	return providers.ObjectKind(s)
}

func price(in *state.Instance) float64 {
	if Released(in) {
		return 0 // its machine is gone
	}
	switch v := in.Attributes[AttrPrice].(type) {
	case float64:
		return v
	case json.Number:
		f, _ := v.Float64()
		return f
	}
	return 0
}

func hostOf(in *state.Instance) string {
	s, _ := in.Attributes[AttrHost].(string)
	return s
}

func decodeAttr[T any](in *state.Instance, key string) (T, bool) {
	var out T
	v, ok := in.Attributes[key]
	if !ok {
		return out, false
	}
	b, err := json.Marshal(v)
	if err != nil || json.Unmarshal(b, &out) != nil {
		return out, false
	}
	return out, true
}

func toAttr(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// collectHosts lists the live fleet instances of the prior state and
// what the runs that stay take from them.
func (m *maker) collectHosts() {
	for _, r := range m.in.Prior.Resources {
		a, err := lang.ParseAddress(r.Address)
		if err != nil || a.Kind != lang.KindFleet {
			continue
		}
		// A fleet of given hosts (an SSH fleet), as state records it; a
		// recorded configuration that does not read is reported where
		// the fleet is planned.
		_, fields, _ := priorSpec(r)
		given := len(fields["ssh_config"]) > 0 && string(fields["ssh_config"]) != "null"
		for _, in := range r.Instances {
			o, ok := decodeAttr[offers.Offer](in, AttrOffer)
			if !ok || in.Token == "" {
				continue
			}
			m.addHost(&host{key: in.Token, address: fmt.Sprintf("%s[%d]", r.Address, in.Index), fleet: a.Name,
				token: in.Token, step: -1, backend: in.Provider, given: given || o.Given, cap: o, silent: in.Status == providers.StatusUnknown})
		}
	}
	m.byAddress = map[string]*host{}
	for _, h := range m.hostOrder {
		m.byAddress[h.address] = h
	}
	for _, r := range m.in.Prior.Resources {
		if m.in.Mode == Destroy || m.configured(r.Address) == nil {
			continue
		}
		for _, in := range r.Instances {
			if h := m.hostFor(in); h != nil && !finishedJob(in) {
				d, _ := decodeAttr[Demand](in, AttrDemand)
				h.used = h.used.plus(d)
			}
		}
	}
}

// hostFor is the fleet instance a job runs on: by the instance's token,
// or, when that instance was made again since (an SSH host whose agent
// was repaired), the one at the same address, which is the same machine.
func (m *maker) hostFor(in *state.Instance) *host {
	if h := m.hosts[hostOf(in)]; h != nil {
		return h
	}
	addr, _ := in.Attributes[AttrHostAddress].(string)
	if h := m.byAddress[addr]; h != nil && h.given {
		return h
	}
	return nil
}

func finishedJob(in *state.Instance) bool {
	return providers.Ended(in.Status)
}

func (d Demand) plus(o Demand) Demand {
	return Demand{CPUs: d.CPUs + o.CPUs, MemoryMB: d.MemoryMB + o.MemoryMB, GPUs: d.GPUs + o.GPUs}
}

func (d Demand) minus(o Demand) Demand {
	return Demand{CPUs: d.CPUs - o.CPUs, MemoryMB: d.MemoryMB - o.MemoryMB, GPUs: d.GPUs - o.GPUs}
}

func (m *maker) addHost(h *host) {
	h.blocks = m.blocksOf(h)
	m.hosts[h.key] = h
	m.hostOrder = append(m.hostOrder, h)
}

// releaseHosts gives back what a run being replaced or deleted takes.
func (m *maker) releaseHosts(prior *state.Resource) {
	for _, in := range prior.Instances {
		if h := m.hostFor(in); h != nil && !finishedJob(in) {
			d, _ := decodeAttr[Demand](in, AttrDemand)
			h.used = h.used.minus(d)
		}
	}
}

// syncFleetHosts updates the hosts after a fleet's change was planned:
// instances it deletes are no longer hosts, instances it creates are.
func (m *maker) syncFleetHosts(c *Change) {
	if c.Kind != lang.KindFleet {
		return
	}
	for _, id := range c.Steps {
		s := m.plan.Steps[id]
		switch s.Op {
		case OpDelete:
			if h := m.hosts[s.Token]; h != nil {
				h.removed = true
			}
		case OpCreate:
			if s.Offer == nil {
				continue
			}
			a, _ := lang.ParseAddress(s.Address)
			m.addHost(&host{key: fmt.Sprintf("step:%d", s.ID), address: fmt.Sprintf("%s[%d]", s.Address, s.Index),
				fleet: a.Name, step: s.ID, backend: s.Backend, given: s.Offer.Given, cap: *s.Offer})
		}
	}
}

// onRemovedHost reports whether any of a run's jobs is on a host this
// plan deletes, and which.
func (m *maker) onRemovedHost(prior *state.Resource) string {
	return m.hostWhere(prior, func(h *host, _ *state.Instance) bool { return h.removed })
}

// hostWhere is the address of the first fleet instance that one of a
// run's jobs runs on and for which is holds, or "".
func (m *maker) hostWhere(prior *state.Resource, is func(*host, *state.Instance) bool) string {
	for _, in := range prior.Instances {
		if h := m.hostFor(in); h != nil && is(h, in) {
			return h.address
		}
	}
	return ""
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

func resourcesOf(r *resources.Spec) resources.Spec {
	if r == nil {
		return resources.Spec{}.WithDefaults()
	}
	return r.WithDefaults()
}

func demandOf(spec resources.Spec) Demand {
	spec = spec.WithDefaults()
	d := Demand{}
	if spec.CPU != nil && spec.CPU.Count.Min != nil {
		d.CPUs = *spec.CPU.Count.Min
	}
	if spec.Memory != nil && spec.Memory.Min != nil {
		d.MemoryMB = int(*spec.Memory.Min)
	}
	if spec.GPU != nil && spec.GPU.Count.Min != nil {
		d.GPUs = *spec.GPU.Count.Min
	}
	return d
}

// fits says why h cannot take a job of spec (empty when it can).
func fits(h *host, spec resources.Spec, d Demand) string {
	free := h.free()
	switch {
	case free.CPUs < d.CPUs:
		return fmt.Sprintf("cpu: needs %d, %s has %d free", d.CPUs, hostName(h), free.CPUs)
	case free.MemoryMB < d.MemoryMB:
		return fmt.Sprintf("memory: needs %s, %s has %s free", resources.Memory(d.MemoryMB), hostName(h), resources.Memory(max(free.MemoryMB, 0)))
	case d.GPUs > 0 && h.cap.GPU == nil:
		return fmt.Sprintf("gpu: needs %s, %s has none", spec.GPU, hostName(h))
	case d.GPUs > free.GPUs:
		return fmt.Sprintf("gpu: needs %s, %s has %d of %s free", spec.GPU, hostName(h), max(free.GPUs, 0), h.cap.GPU)
	}
	if d.GPUs > 0 {
		// The model and memory per GPU must fit too: ask the offer matcher
		// about one GPU of the host.
		one := h.cap
		g := *h.cap.GPU
		g.Count = demandOf(spec).GPUs // what the job asks, not whole blocks
		if g.MemoryMB == 0 {
			// Not known yet (an SSH host before its agent reported it).
			g.MemoryMB = 1 << 30
		}
		one.GPU, one.CPUs, one.Memory, one.Disk = &g, max(one.CPUs, 1<<20), 1<<40, 1<<40
		probe := spec
		probe.CPU, probe.Memory, probe.Disk = nil, nil, nil
		if why := offers.Explain(one, probe); why != "" {
			return fmt.Sprintf("%s (on %s)", why, hostName(h))
		}
	}
	return ""
}

// place puts a job on a fleet instance with room, the tightest fit first,
// or else on a new machine from the cheapest matching offer.
func (m *maker) place(c *Change, d *desired, s *Step) bool {
	run, prof := runParts(d.res.Spec)
	if !m.missingFleets(c.Address, prof) {
		return false
	}
	spec := resourcesOf(run.Resources)
	demand := demandOf(spec)
	s.Demand = &demand
	vols := m.volumeSitesOf(run, s.Index)
	var best *host
	var reasons []string
	multi := multiNode(d.res.Spec)
	taken := m.runHosts[c.Address]
	for _, h := range m.hostOrder {
		if h.removed || (len(prof.Fleets) > 0 && !slices.Contains(prof.Fleets, h.fleet)) ||
			(len(prof.Backends) > 0 && !containsFold(prof.Backends, h.backend)) {
			continue
		}
		if h.silent {
			reasons = append(reasons, hostName(h)+" does not answer")
			continue
		}
		if why := vols.excludes(h.backend, h.cap.Region); why != "" {
			reasons = append(reasons, hostName(h)+": "+why)
			continue
		}
		if multi && len(taken) > 0 {
			// A distributed task's jobs: one per host, in one fleet.
			if slices.Contains(taken, h) {
				reasons = append(reasons, fmt.Sprintf("%s has another job of this run", hostName(h)))
				continue
			}
			if h.fleet != taken[0].fleet {
				continue
			}
		}
		if why := fits(h, spec, h.inBlocks(demand)); why != "" {
			reasons = append(reasons, why+h.blockNote())
			continue
		}
		if best == nil || tighter(h, best) {
			best = h
		}
	}
	if best != nil {
		d := best.inBlocks(demand)
		s.Demand = &d
		m.putOn(c, s, best, d)
		return true
	}
	if prof.CreationPolicy != "reuse" {
		if h := m.grow(c, spec, prof, vols, &reasons); h != nil {
			d := h.inBlocks(demand)
			s.Demand = &d
			m.putOn(c, s, h, d)
			return true
		}
	}
	if len(prof.Fleets) > 0 || prof.CreationPolicy == "reuse" {
		m.problemAt(c.Address, "resources", "%s: no fleet instance has room for %s: %s", c.Address, spec, reasonList(reasons, "no matching fleet instances"))
		return false
	}
	list := available(offers.Match(m.in.Offers, spec, offers.Filter{Backends: prof.Backends, Regions: prof.Regions,
		Spot: spotOf(prof.SpotPolicy), MaxPrice: deref(prof.MaxPrice)}))
	list = vols.filter(filterTypes(list, prof.InstanceTypes))
	if len(list) == 0 {
		m.problemAt(c.Address, "resources", "%s: no fleet instance has room and no offer matches %s%s%s (%s%s)", c.Address, spec,
			describeFilter(prof.Backends, prof.Regions, prof.SpotPolicy, prof.MaxPrice), vols.describe(), reasonList(reasons, "no fleet instances"),
			nodeReasons(m.in.Offers, spec, prof.Backends))
		return false
	}
	s.Offer, s.Backend = &list[0], list[0].Backend
	s.Candidates = head(list[1:], 3)
	c.CostAfter += list[0].PricePerHour
	return true
}

func (m *maker) putOn(c *Change, s *Step, h *host, demand Demand) {
	h.used = h.used.plus(demand)
	m.runHosts[c.Address] = append(m.runHosts[c.Address], h)
	s.HostAddress, s.Backend = h.address, h.backend
	if h.step >= 0 {
		s.HostStep = h.step
	} else {
		s.HostToken = h.token
	}
	fleet := "fleet." + h.fleet
	if !slices.Contains(c.DependsOn, fleet) {
		c.DependsOn = append(c.DependsOn, fleet)
		slices.Sort(c.DependsOn)
	}
}

// grow adds an instance to a configured cloud fleet that may grow (its
// nodes have room below their max) for a job no instance has room for,
// from the cheapest offer that fits both the fleet and the job.
func (m *maker) grow(c *Change, spec resources.Spec, prof *lang.Profile, vols volumeSites, reasons *[]string) *host {
	names := prof.Fleets
	if len(names) == 0 {
		names = m.fleetNames()
	}
	for _, name := range names {
		addr := lang.Address{Kind: lang.KindFleet, Name: name}
		r := m.in.Config.Resources[addr]
		if r == nil {
			continue
		}
		f := r.Spec.(*lang.Fleet)
		if f.SSHConfig != nil || f.Nodes == nil {
			continue
		}
		count, next := 0, 0
		for _, h := range m.hostOrder {
			if h.fleet == name {
				idx := indexOf(h.address)
				next = max(next, idx+1)
				if !h.removed {
					count++
				}
			}
		}
		if f.Nodes.Max != nil && count >= *f.Nodes.Max {
			*reasons = append(*reasons, fmt.Sprintf("%s is at its maximum of %d nodes", addr, *f.Nodes.Max))
			continue
		}
		list := available(offers.Match(m.in.Offers, resourcesOf(f.Resources), fleetFilter(f)))
		list = offers.Match(filterTypes(list, f.InstanceTypes), spec, offers.Filter{Backends: prof.Backends, Regions: prof.Regions, MaxPrice: deref(prof.MaxPrice)})
		if len(list) > 0 && len(vols.filter(list)) == 0 {
			*reasons = append(*reasons, fmt.Sprintf("%s could grow, but not%s", addr, vols.describe()))
			continue
		}
		list = vols.filter(list)
		if len(list) == 0 {
			*reasons = append(*reasons, fmt.Sprintf("%s could grow, but no offer fits both it and %s", addr, c.Address))
			continue
		}
		fc := m.changeFor(addr.String(), r)
		if fc == nil {
			continue
		}
		hs := m.newStep(&Step{Op: OpCreate, Address: addr.String(), Index: next, Kind: providers.KindInstance, HostStep: -1,
			Backend: list[0].Backend, Offer: &list[0], Candidates: head(list[1:], 3)})
		fc.Steps = append(fc.Steps, hs.ID)
		fc.InstancesAfter++
		fc.CostAfter += list[0].PricePerHour
		h := &host{key: fmt.Sprintf("step:%d", hs.ID), address: fmt.Sprintf("%s[%d]", hs.Address, hs.Index),
			fleet: name, step: hs.ID, backend: hs.Backend, cap: *hs.Offer}
		m.addHost(h)
		return h
	}
	return nil
}

func indexOf(instance string) int {
	i := strings.LastIndexByte(instance, '[')
	n := 0
	fmt.Sscanf(instance[i+1:], "%d]", &n)
	return n
}

// changeFor returns the plan's change of a fleet, turning a fleet left as
// it is into one that scales.
func (m *maker) changeFor(addr string, r *lang.Resource) *Change {
	for _, c := range m.plan.Changes {
		if c.Address == addr {
			if c.Action == Update || c.Action == NoOp {
				c.Action = Scale
			}
			if c.Action == Delete {
				return nil
			}
			return c
		}
	}
	prior := m.in.Prior.Resource(addr)
	if prior == nil {
		return nil
	}
	d, err := newDesired(r)
	if err != nil {
		return nil
	}
	d.load()
	before, _, err := priorSpec(prior)
	if err != nil {
		m.problemAt(addr, "", "%v", err)
		return nil
	}
	c := &Change{Address: addr, Kind: lang.KindFleet, Action: Scale, Before: before, After: d.masked, Spec: d.spec, Sensitive: d.sensitive,
		ConfigHash: prior.ConfigHash, DependsOn: prior.DependsOn, InstancesBefore: len(prior.Instances), InstancesAfter: len(prior.Instances)}
	for _, in := range prior.Instances {
		c.CostBefore += price(in)
	}
	c.CostAfter = c.CostBefore
	m.plan.NoChange--
	m.commit(c)
	m.addChange(c)
	return c
}

func reasonList(reasons []string, none string) string {
	if len(reasons) == 0 {
		return none
	}
	if len(reasons) > 5 {
		return strings.Join(reasons[:5], "; ") + fmt.Sprintf("; and %d more", len(reasons)-5)
	}
	return strings.Join(reasons, "; ")
}

// tighter orders hosts for best fit: fewer free GPUs, then fewer free
// CPUs, then address.
func tighter(a, b *host) bool {
	fa, fb := a.free(), b.free()
	return cmp.Or(cmp.Compare(fa.GPUs, fb.GPUs), cmp.Compare(fa.CPUs, fb.CPUs), strings.Compare(a.address, b.address)) < 0
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// spotOf maps a spot policy to an offer filter: on-demand unless spot or
// auto is asked for.
func spotOf(policy string) *bool {
	switch policy {
	case "spot":
		return new(true)
	case "auto":
		return nil
	}
	return new(false)
}

func fleetFilter(f *lang.Fleet) offers.Filter {
	return offers.Filter{Backends: f.Backends, Regions: f.Regions, Spot: spotOf(f.SpotPolicy), MaxPrice: deref(f.MaxPrice)}
}

func describeResources(r *resources.Spec) string {
	if r == nil {
		return "the default resources"
	}
	return resourcesOf(r).String()
}

func describeFilter(backends, regions []string, spot string, maxPrice *float64) string {
	var parts []string
	if len(backends) > 0 {
		parts = append(parts, "backends "+strings.Join(backends, ", "))
	}
	if len(regions) > 0 {
		parts = append(parts, "regions "+strings.Join(regions, ", "))
	}
	if spot != "" {
		parts = append(parts, "spot_policy "+spot)
	}
	if maxPrice != nil {
		parts = append(parts, fmt.Sprintf("max_price $%.2f", *maxPrice))
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, ", ")
}

// sshOffer describes a host of an SSH fleet (addr) until its agent
// reports its inventory: what the fleet's resources ask for at least, on
// the backend that serves given hosts.
func (m *maker) sshOffer(addr string, f *lang.Fleet, hostname string) offers.Offer {
	if m.in.HostsBackend == "" && !m.noHostsBackend {
		m.noHostsBackend = true
		m.problem("%s: no provider in this build serves fleets of given hosts (ssh_config)", addr)
	}
	spec := resourcesOf(f.Resources)
	d := demandOf(spec)
	o := offers.Offer{Backend: m.in.HostsBackend, Region: "on-prem", InstanceType: hostname, CPUs: d.CPUs,
		Memory: resources.Memory(d.MemoryMB), Availability: offers.Available, Given: true}
	if d.GPUs > 0 {
		g := &offers.GPU{Count: d.GPUs, Vendor: spec.GPU.EffectiveVendor()}
		if len(spec.GPU.Names) > 0 {
			g.Name = spec.GPU.Names[0]
		}
		if spec.GPU.Memory != nil && spec.GPU.Memory.Min != nil {
			g.MemoryMB = *spec.GPU.Memory.Min
		}
		o.GPU = g
	}
	return o
}

// multiNode reports whether spec is a task of several nodes.
func multiNode(spec lang.Spec) bool {
	t, ok := spec.(*lang.Task)
	return ok && countOf(t, 0) > 1
}

// hostName is how placement reasons name a host: "fleet.a[0]", with the
// machine's name for an SSH fleet's host ("fleet.a[0] (a100-1)").
func hostName(h *host) string {
	if h.given && h.cap.InstanceType != "" {
		return fmt.Sprintf("%s (%s)", h.address, h.cap.InstanceType)
	}
	return h.address
}

// startupOrder makes a distributed task's jobs start in the order its
// startup_order asks: the master (rank 0) before the workers, or after.
func (m *maker) startupOrder() {
	for _, c := range m.plan.Changes {
		r := m.configured(c.Address)
		if r == nil {
			continue
		}
		t, ok := r.Spec.(*lang.Task)
		if !ok || (t.StartupOrder != "master-first" && t.StartupOrder != "workers-first") {
			continue
		}
		var jobs []*Step
		for _, id := range c.Steps {
			if s := m.plan.Steps[id]; s.Op == OpCreate && s.Kind == providers.KindJob {
				jobs = append(jobs, s)
			}
		}
		if len(jobs) < 2 {
			continue
		}
		slices.SortFunc(jobs, func(a, b *Step) int { return a.Index - b.Index })
		master := jobs[0]
		for _, w := range jobs[1:] {
			if t.StartupOrder == "master-first" {
				w.Deps = append(w.Deps, master.ID)
			} else {
				master.Deps = append(master.Deps, w.ID)
			}
		}
	}
}

// blocksOf is how many blocks a host is split into: its own blocks (an
// SSH fleet's host), else its fleet's; "auto" is one per GPU.
func (m *maker) blocksOf(h *host) int {
	r := m.in.Config.Resources[lang.Address{Kind: lang.KindFleet, Name: h.fleet}]
	if r == nil {
		return 0
	}
	f := r.Spec.(*lang.Fleet)
	b := f.Blocks
	if f.SSHConfig != nil {
		if sh, ok := f.SSHConfig.ResolveHost(h.cap.InstanceType); ok && sh.Blocks != nil {
			b = sh.Blocks
		}
	}
	switch {
	case b == nil:
		return 0
	case b.Auto:
		if h.cap.GPU != nil {
			return h.cap.GPU.Count
		}
		return 0
	}
	return b.Count
}

// block is the size of one of h's blocks.
func (h *host) block() Demand {
	n := max(h.blocks, 1)
	d := Demand{CPUs: h.cap.CPUs / n, MemoryMB: int(h.cap.Memory) / n}
	if h.cap.GPU != nil {
		d.GPUs = h.cap.GPU.Count / n
	}
	return d
}

// inBlocks rounds what a job needs up to whole blocks of h (at least
// one): on a split host a job takes its blocks, GPUs, CPUs and memory
// together.
func (h *host) inBlocks(d Demand) Demand {
	if h.blocks <= 1 {
		return d
	}
	b := h.block()
	k := 1
	for _, need := range [][2]int{{d.GPUs, b.GPUs}, {d.CPUs, b.CPUs}, {d.MemoryMB, b.MemoryMB}} {
		if need[1] > 0 {
			k = max(k, (need[0]+need[1]-1)/need[1])
		}
	}
	return Demand{GPUs: k * b.GPUs, CPUs: k * b.CPUs, MemoryMB: k * b.MemoryMB}
}

// blockNote says, after a reason a job does not fit, that h is split.
func (h *host) blockNote() string {
	if h.blocks <= 1 {
		return ""
	}
	b := h.block()
	return fmt.Sprintf(" (in %d blocks of %d GPU, %d CPU, %s)", h.blocks, b.GPUs, b.CPUs, resources.Memory(b.MemoryMB))
}

// fleetNames are the configuration's fleets, sorted: listed once per
// plan, not once per run placed.
func (m *maker) fleetNames() []string {
	if m.allFleets == nil {
		m.allFleets = []string{}
		for _, r := range m.in.Config.Sorted() {
			if r.Address.Kind == lang.KindFleet {
				m.allFleets = append(m.allFleets, r.Address.Name)
			}
		}
	}
	return m.allFleets
}
