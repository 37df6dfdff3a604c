package planner

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
)

// findCycle returns a dependency cycle among the configuration's
// resources as a list of addresses that starts and ends with the same
// one, or nil.
func findCycle(cfg *lang.Config) []string {
	const (
		unseen = iota
		active
		done
	)
	mark := map[lang.Address]int{}
	var stack []lang.Address
	var found []string
	var visit func(a lang.Address) bool
	visit = func(a lang.Address) bool {
		switch mark[a] {
		case active:
			i := slices.Index(stack, a)
			for _, s := range stack[i:] {
				found = append(found, s.String())
			}
			found = append(found, a.String())
			return true
		case done:
			return false
		}
		mark[a] = active
		stack = append(stack, a)
		if r := cfg.Resources[a]; r != nil {
			for _, d := range r.DependsOn {
				if visit(d.To) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		mark[a] = done
		return false
	}
	for _, r := range cfg.Sorted() {
		if visit(r.Address) {
			return found
		}
	}
	return nil
}

// order adds the graph's edges between steps: a change's commit after
// its other steps, a job after the instance it runs on, a resource's
// creates after the resources it needs, and deletes in reverse: a
// resource is torn down after what needed it, an instance after the jobs
// on it.
func (m *maker) order() {
	p := m.plan
	byAddr := map[string]*Change{}
	for _, c := range p.Changes {
		byAddr[c.Address] = c
	}
	deletesOf := func(c *Change) []int {
		var out []int
		for _, id := range c.Steps {
			if p.Steps[id].Op == OpDelete {
				out = append(out, id)
			}
		}
		return out
	}
	for _, c := range p.Changes {
		for _, id := range c.Steps {
			s := p.Steps[id]
			if s.Op == OpCommit || s.Op == OpForget {
				for _, other := range c.Steps {
					if other != id && (s.Op == OpCommit || p.Steps[other].Op == OpDelete) {
						s.Deps = append(s.Deps, other)
					}
				}
			}
			if s.HostStep >= 0 {
				s.Deps = append(s.Deps, s.HostStep)
			}
		}
		// The jobs of a multi-node run learn each other's addresses
		// (DSTACK_NODES_IPS): each waits for every one of their hosts.
		var hosts []int
		for _, id := range c.Steps {
			if s := p.Steps[id]; s.Op == OpCreate && s.HostStep >= 0 {
				hosts = append(hosts, s.HostStep)
			}
		}
		if len(hosts) > 1 {
			for _, id := range c.Steps {
				if s := p.Steps[id]; s.Op == OpCreate && s.HostStep >= 0 {
					s.Deps = append(s.Deps, hosts...)
				}
			}
		}
		// A resource's creates wait for what it needs to be made (not for
		// that resource's deletes: a fleet shrinking must not hold up a
		// run rolling off the instances it removes).
		for _, d := range c.DependsOn {
			dc := byAddr[d]
			if dc == nil {
				continue
			}
			for _, did := range dc.Steps {
				if p.Steps[did].Op != OpCreate {
					continue
				}
				for _, id := range c.Steps {
					if s := p.Steps[id]; s.Op == OpCreate {
						s.Deps = append(s.Deps, did)
					}
				}
			}
		}
	}
	// Deletes in reverse dependency order, by what the prior state
	// recorded.
	for _, r := range p.Prior.Resources {
		xc := byAddr[r.Address]
		if xc == nil {
			continue
		}
		xdel := deletesOf(xc)
		if len(xdel) == 0 {
			continue
		}
		for _, d := range append(slices.Clip(r.DependsOn), mountedVolumes(r)...) {
			if dc := byAddr[d]; dc != nil {
				for _, id := range deletesOf(dc) {
					p.Steps[id].Deps = append(p.Steps[id].Deps, xdel...)
				}
			}
		}
	}
	// An instance is deleted after the jobs on it.
	jobsOn := map[string][]int{}
	for _, s := range p.Steps {
		if s.Op != OpDelete {
			continue
		}
		if r := p.Prior.Resource(s.Address); r != nil {
			for _, in := range r.Instances {
				if in.Token == s.Token && hostOf(in) != "" {
					jobsOn[hostOf(in)] = append(jobsOn[hostOf(in)], s.ID)
				}
			}
		}
	}
	for _, s := range p.Steps {
		if s.Op == OpDelete && len(jobsOn[s.Token]) > 0 {
			s.Deps = append(s.Deps, jobsOn[s.Token]...)
		}
	}
	for _, s := range p.Steps {
		slices.Sort(s.Deps)
		s.Deps = slices.Compact(s.Deps)
	}
}

// stepCycle returns a cycle among steps, named, or nil.
func stepCycle(steps []*Step) []string {
	indeg := make([]int, len(steps))
	next := make([][]int, len(steps))
	for _, s := range steps {
		for _, d := range s.Deps {
			next[d] = append(next[d], s.ID)
			indeg[s.ID]++
		}
	}
	var queue []int
	for i, n := range indeg {
		if n == 0 {
			queue = append(queue, i)
		}
	}
	seen := 0
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		seen++
		for _, n := range next[id] {
			if indeg[n]--; indeg[n] == 0 {
				queue = append(queue, n)
			}
		}
	}
	if seen == len(steps) {
		return nil
	}
	// Walk back along dependencies among the steps left until one
	// repeats.
	start := slices.IndexFunc(indeg, func(n int) bool { return n > 0 })
	var path []int
	pos := map[int]int{}
	for id := start; ; {
		if i, ok := pos[id]; ok {
			var names []string
			for _, s := range path[i:] {
				names = append(names, steps[s].Name())
			}
			return append(names, steps[id].Name())
		}
		pos[id] = len(path)
		path = append(path, id)
		for _, d := range steps[id].Deps {
			if indeg[d] > 0 {
				id = d
				break
			}
		}
	}
}

// WriteDOT writes the plan's action graph in Graphviz DOT: one node per
// step, an edge from each step to the steps that wait for it.
func WriteDOT(w io.Writer, p *Plan) error {
	var b strings.Builder
	b.WriteString("digraph {\n  rankdir = \"LR\";\n  node [shape = box];\n")
	for _, s := range p.Steps {
		label := s.Name()
		if s.Offer != nil && s.Op == OpCreate && s.HostAddress == "" {
			label += fmt.Sprintf("\\n%s %s %s", s.Offer.Backend, s.Offer.Region, s.Offer.InstanceType)
		}
		if s.HostAddress != "" {
			label += "\\non " + s.HostAddress
		}
		fmt.Fprintf(&b, "  s%d [label = %q];\n", s.ID, label)
	}
	for _, s := range p.Steps {
		for _, d := range s.Deps {
			fmt.Fprintf(&b, "  s%d -> s%d;\n", d, s.ID)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteConfigDOT writes the configuration's resources and their
// dependencies in DOT, an edge from each resource to the ones needing it.
func WriteConfigDOT(w io.Writer, cfg *lang.Config) error {
	var b strings.Builder
	b.WriteString("digraph {\n  rankdir = \"LR\";\n  node [shape = box];\n")
	for _, r := range cfg.Sorted() {
		fmt.Fprintf(&b, "  %q;\n", r.Address.String())
	}
	for _, r := range cfg.Sorted() {
		for _, d := range r.DependsOn {
			fmt.Fprintf(&b, "  %q -> %q [label = %q];\n", d.To.String(), r.Address.String(), d.Reason)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
