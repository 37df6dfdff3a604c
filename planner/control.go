package planner

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/state"
)

// Control is what the control loop (package controller) asks of a plan
// beyond keeping the state as the configuration declares it: it decides
// from what it observes between applies (request rates, failing probes,
// idle machines), and the plan carries its decisions out like any other
// change, under the lock, with fencing and in the state's history.
//
// Every decision stays within what the configuration allows, so a later
// `dstack plan` of the same configuration finds nothing to change: a
// service's replica count within its declared range, a fleet's instances
// down to its minimum.
type Control struct {
	// Replicas are the replica counts the autoscaler wants, by service
	// address; each is clamped to the service's declared range.
	Replicas map[string]Want
	// Recreate names replicas (by instance token) to replace with new
	// ones, and why (their probes fail).
	Recreate map[string]string
	// Release names fleet instances (by token) to tear down, and why
	// (idle for longer than the fleet's idle_duration); a fleet keeps at
	// least its nodes minimum.
	Release map[string]string
	// Start names tasks with a schedule to start now (one of their
	// times came), and why; a finished one runs again.
	Start map[string]string
	// Remove are jobs the refresh dropped from a run's state because
	// they died (a replica's container killed behind dstack's back), by
	// the run's address: what is left of them on their host (the
	// container, the agent's record) is removed.
	Remove map[string][]*state.Instance
	// Stop names running jobs (by token) to stop, and why (their run's
	// utilization_policy).
	Stop map[string]string
}

// starts reports whether the control starts the task at addr.
func (c *Control) starts(addr string) bool { return c != nil && c.Start[addr] != "" }

// Want is a replica count the control loop asks for, and why.
type Want struct {
	Count  int
	Reason string
}

// touches reports whether the control asks anything of prior.
func (c *Control) touches(prior *state.Resource) bool {
	if c == nil {
		return false
	}
	if _, ok := c.Replicas[prior.Address]; ok || c.Start[prior.Address] != "" || len(c.Remove[prior.Address]) > 0 {
		return true
	}
	for _, in := range prior.Instances {
		if c.Recreate[in.Token] != "" || c.Release[in.Token] != "" || c.Stop[in.Token] != "" {
			return true
		}
	}
	return false
}

// ReplicaRange is the range a service's replica count moves within: its
// replicas (a number, a range, or the sum of its groups' counts).
func ReplicaRange(s *lang.Service) (lo, hi int) { return replicaRange(s) }

// controlled plans what the control loop asks of an existing resource
// whose configuration did not change: it returns false when it asks
// nothing of it. live are the resource's instances; n is the count the
// configuration alone wants.
func (m *maker) controlled(c *Change, d *desired, prior *state.Resource, n int) bool {
	ctl := m.in.Control
	if ctl == nil {
		return false
	}
	var reasons []string
	want := n
	if s, ok := d.res.Spec.(*lang.Service); ok {
		if w, ok := ctl.Replicas[c.Address]; ok {
			lo, hi := replicaRange(s)
			if v := min(max(w.Count, lo), hi); v != len(prior.Instances) {
				want = v
				reasons = append(reasons, cmp.Or(w.Reason, fmt.Sprintf("%d → %d replicas", len(prior.Instances), v)))
			}
		}
	}
	live := slices.Clone(prior.Instances)
	slices.SortFunc(live, func(a, b *state.Instance) int { return cmp.Compare(a.Index, b.Index) })
	var recreate, release []*state.Instance
	for _, in := range live {
		if r := ctl.Recreate[in.Token]; r != "" && c.Kind == lang.KindService {
			recreate = append(recreate, in)
			reasons = append(reasons, fmt.Sprintf("replica %d: %s", in.Index, r))
		}
	}
	if f, ok := d.res.Spec.(*lang.Fleet); ok && f.SSHConfig == nil {
		floor := 0
		if f.Nodes != nil {
			floor = f.Nodes.Min
		}
		left := len(live)
		for _, in := range live {
			if r := ctl.Release[in.Token]; r != "" && left > floor {
				release = append(release, in)
				left--
				reasons = append(reasons, fmt.Sprintf("instance %d: %s", in.Index, r))
			}
		}
		if len(release) > 0 {
			want = left
		}
	}
	var stops []*state.Instance
	var why []string
	for _, in := range live {
		if r := ctl.Stop[in.Token]; r != "" && in.ProviderID != "" {
			stops = append(stops, in)
			why = append(why, fmt.Sprintf("stops job %d: %s", in.Index, r))
		}
	}
	if len(stops) > 0 {
		// The run ends: nothing else is asked of it.
		c.Action, c.Reason = Update, "control loop: "+strings.Join(why, "; ")
		for _, in := range stops {
			s := m.newStep(&Step{Op: OpStop, Address: c.Address, Index: in.Index, Kind: instanceKind(in), Backend: in.Provider,
				Token: in.Token, ProviderID: in.ProviderID, HostStep: -1})
			c.Steps = append(c.Steps, s.ID)
		}
		return true
	}
	dead := ctl.Remove[c.Address]
	for _, in := range dead {
		reasons = append(reasons, fmt.Sprintf("removes what is left of dead job %s", cmp.Or(in.ProviderID, in.Token)))
	}
	if len(reasons) == 0 {
		// Nothing asked, or only what the configuration wants anyway.
		return false
	}
	if want != len(live) && want == n && len(release) == 0 {
		reasons = append([]string{fmt.Sprintf("drift: %d → %d instances", len(live), want)}, reasons...)
	}
	for _, in := range dead {
		c.Steps = append(c.Steps, m.deleteStep(c.Address, in).ID)
	}
	c.Action = Scale
	if len(recreate) > 0 && want == len(live) {
		c.Action = Replace
	}
	c.Reason = "control loop: " + strings.Join(reasons, "; ")
	// The replicas to recreate: a new one first, ready before the old one
	// goes, one at a time (as a rolling deployment).
	taken := slices.Clone(live)
	gone := map[string]bool{}
	var prev []int
	for _, in := range recreate {
		ids := m.addInstances(c, d, taken, 1)
		del := m.deleteStep(c.Address, in)
		for _, id := range ids {
			m.plan.Steps[id].Deps = append(m.plan.Steps[id].Deps, prev...)
			del.Deps = append(del.Deps, id)
			taken = append(taken, &state.Instance{Index: m.plan.Steps[id].Index})
		}
		prev = []int{del.ID}
		c.Steps = append(c.Steps, del.ID)
		gone[in.Token] = true
	}
	for _, in := range release {
		c.Steps = append(c.Steps, m.deleteStep(c.Address, in).ID)
		gone[in.Token] = true
	}
	rest := keepOf(live, gone)
	switch {
	case want > len(rest)+len(recreate):
		m.addInstances(c, d, taken, want-len(rest)-len(recreate))
	case want < len(rest)+len(recreate):
		for i := len(rest) - 1; i >= 0 && i >= want-len(recreate); i-- {
			c.Steps = append(c.Steps, m.deleteStep(c.Address, rest[i]).ID)
		}
	}
	byToken := map[string]*state.Instance{}
	for _, in := range live {
		byToken[in.Token] = in
	}
	c.CostAfter = c.CostBefore
	for _, id := range c.Steps {
		s := m.plan.Steps[id]
		switch {
		case s.Op == OpDelete && byToken[s.Token] != nil:
			c.CostAfter -= price(byToken[s.Token])
		case s.Op == OpCreate && s.Offer != nil && s.HostStep < 0 && s.HostToken == "":
			c.CostAfter += s.Offer.PricePerHour
		}
	}
	c.InstancesAfter = want
	return true
}

// keepOf is live without the instances whose tokens gone holds.
func keepOf(live []*state.Instance, gone map[string]bool) []*state.Instance {
	var out []*state.Instance
	for _, in := range live {
		if !gone[in.Token] {
			out = append(out, in)
		}
	}
	return out
}

// notEnforced refuses the fields no part of dstack acts on yet, where
// they are written: accepting them would ignore them silently.
func (m *maker) notEnforced(addr string, spec lang.Spec) bool {
	_, p := runParts(spec)
	if p == nil {
		return false
	}
	bad := map[string]string{}
	if s, ok := spec.(*lang.Service); ok && s.Replicas != nil {
		for i, g := range s.Replicas.Groups {
			if g.Scaling != nil {
				bad[fmt.Sprintf("replicas[%d].scaling", i)] = "a replica group's own scaling is not enforced by the control loop yet (the service's scaling is)"
			}
		}
	}
	if _, isTask := spec.(*lang.Task); !isTask && p.IdleDuration != nil {
		// A task's idle_duration releases its own machine once it has
		// finished (ownmachine.go); a service or dev environment has no
		// such end the planner acts on yet.
		bad["idle_duration"] = fmt.Sprintf("idle_duration is not supported on a %s yet (a task's releases the machine made for it once it has finished)", spec.Kind())
	}
	for _, f := range slices.Sorted(maps.Keys(bad)) {
		m.problemAt(addr, f, "%s: %s; it would be ignored. Remove it.", addr, bad[f])
	}
	return len(bad) > 0
}

// roll orders a service's replacement as a rolling deployment: the first
// new replica is made (and passes its probes, which its create waits
// for), then the first old one is stopped, then the second new one is
// made, and so on. A new replica that fails stops the rollout there: the
// steps after it are skipped, so the old replicas not yet stopped keep
// serving. Old replicas beyond the new count go after the last new one.
func (m *maker) roll(creates, dels []int) {
	step := func(id int) *Step { return m.plan.Steps[id] }
	last := -1
	for i, cid := range creates {
		if last >= 0 {
			step(cid).Deps = append(step(cid).Deps, last)
		}
		last = cid
		if i < len(dels) {
			step(dels[i]).Deps = append(step(dels[i]).Deps, cid)
			last = dels[i]
		}
	}
	for _, did := range dels[min(len(creates), len(dels)):] {
		if last >= 0 {
			step(did).Deps = append(step(did).Deps, last)
		}
		last = did
	}
}

// RecordedConfig is the configuration the state records: each resource as
// the last apply recorded it, which is what the control loop keeps up
// (it never applies a configuration nobody applied). A resource left
// out is named in skipped, with why: one with sensitive values (the
// state holds them masked, so its jobs cannot be made from it), one an
// interrupted apply never recorded, or one whose record does not read.
func RecordedConfig(st *state.State) (cfg *lang.Config, skipped map[string]string) {
	cfg = lang.NewConfig()
	skipped = map[string]string{}
	for _, r := range st.Resources {
		a, err := lang.ParseAddress(r.Address)
		if err != nil {
			skipped[r.Address] = err.Error()
			continue
		}
		raw, _, err := priorSpec(r)
		switch {
		case err != nil:
			skipped[r.Address] = err.Error()
			continue
		case raw == nil || r.ConfigHash == "":
			skipped[r.Address] = "no configuration is recorded (an apply was interrupted); the next apply records it"
			continue
		case priorSensitive(r) != nil:
			skipped[r.Address] = "its configuration has sensitive values, which the state holds masked"
			continue
		}
		spec, err := lang.DecodeSpec(raw)
		if err != nil {
			skipped[r.Address] = fmt.Sprintf("the recorded configuration does not load: %v", err)
			continue
		}
		res := &lang.Resource{Address: a, Spec: spec, Syntax: "yaml"}
		for _, d := range r.DependsOn {
			if to, err := lang.ParseAddress(d); err == nil {
				res.DependsOn = append(res.DependsOn, lang.Dependency{To: to, Reason: "depends_on"})
			}
		}
		if res.Hash() != r.ConfigHash {
			skipped[r.Address] = "the recorded configuration is not the one its hash names (lifecycle ignore_changes, or an older dstack recorded it)"
			continue
		}
		cfg.Resources[a] = res
	}
	return cfg, skipped
}
