package planner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// An SSH fleet's instances are its hosts, one per hostname: adding a host
// to ssh_config creates its instance, removing one deletes its instance
// (and moves the runs on it), and a host whose settings changed (its
// user, port, key, proxy jump, internal IP, blocks) is replaced; the
// other hosts, and the runs on them, are left alone.

func isSSHFleet(spec lang.Spec) bool {
	f, ok := spec.(*lang.Fleet)
	return ok && f.SSHConfig != nil
}

// recordedFleet reads the configuration state records for a fleet.
func recordedFleet(spec json.RawMessage) (*lang.Fleet, error) {
	s, err := lang.DecodeSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("the configuration recorded in state: %w", err)
	}
	f, ok := s.(*lang.Fleet)
	if !ok {
		return nil, fmt.Errorf("the configuration recorded in state is a %s, not a fleet", s.Kind())
	}
	return f, nil
}

// sshHostOf is the hostname an SSH fleet's instance is.
func sshHostOf(in *state.Instance) string {
	if o, ok := decodeAttr[offers.Offer](in, AttrOffer); ok && o.InstanceType != "" {
		return o.InstanceType
	}
	s, _ := in.Attributes[providers.AttrHostname].(string)
	return s
}

// resolvedHost is a host's settings with the fleet's filled in, as JSON,
// to compare a host's before and after.
func resolvedHost(cfg *lang.SSHConfig, hostname string) string {
	h, ok := cfg.ResolveHost(hostname)
	if !ok {
		return ""
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// sshHosts plans an SSH fleet host by host against its prior instances
// (old is the recorded configuration, nil when state has none). It
// reports whether any instance is created or deleted.
func (m *maker) sshHosts(c *Change, d *desired, prior *state.Resource, old *lang.Fleet) bool {
	f := d.res.Spec.(*lang.Fleet)
	var oldConfig *lang.SSHConfig
	if old != nil {
		oldConfig = old.SSHConfig
	}
	want := map[string]bool{}
	for _, h := range f.SSHConfig.Hosts {
		want[h.Hostname] = true
	}
	live := slices.Clone(prior.Instances)
	slices.SortFunc(live, func(a, b *state.Instance) int { return cmp.Compare(a.Index, b.Index) })
	have := map[string]bool{}
	used := map[int]bool{}
	var added, removed, changed []string
	for _, in := range live {
		hn := sshHostOf(in)
		if !want[hn] || have[hn] {
			s := m.deleteStep(c.Address, in)
			c.Steps = append(c.Steps, s.ID)
			removed = append(removed, cmp.Or(hn, fmt.Sprintf("[%d]", in.Index)))
			continue
		}
		have[hn] = true
		used[in.Index] = true
		if was := resolvedHost(oldConfig, hn); was != "" && was != resolvedHost(f.SSHConfig, hn) {
			// The same machine, reached another way: its agent is removed
			// before it is installed again.
			del := m.deleteStep(c.Address, in)
			c.Steps = append(c.Steps, del.ID)
			cs := m.sshStep(c, f, in.Index, hn)
			cs.Deps = append(cs.Deps, del.ID)
			changed = append(changed, hn)
		}
	}
	next := 0
	for _, h := range f.SSHConfig.Hosts {
		if have[h.Hostname] {
			continue
		}
		for used[next] {
			next++
		}
		used[next] = true
		m.sshStep(c, f, next, h.Hostname)
		added = append(added, h.Hostname)
	}
	c.InstancesAfter = len(f.SSHConfig.Hosts)
	if len(added)+len(removed)+len(changed) == 0 {
		return false
	}
	var parts []string
	if len(added) > 0 && len(c.Fields) == 0 {
		// The configuration did not change: the hosts are there, their
		// instances failed (an agent that died, a host that was down).
		parts = append(parts, "reinstalls and restarts the agent on "+strings.Join(added, ", "))
	} else if len(added) > 0 {
		parts = append(parts, "adds "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "removes "+strings.Join(removed, ", "))
	}
	if len(changed) > 0 {
		parts = append(parts, "replaces "+strings.Join(changed, ", ")+" (its SSH settings changed)")
	}
	c.Action, c.Reason = Scale, "hosts: "+strings.Join(parts, "; ")
	if len(c.Fields) == 0 {
		c.Reason = "drift: " + c.Reason
	}
	return true
}

// sshStep plans making host hostname the fleet's instance idx.
func (m *maker) sshStep(c *Change, f *lang.Fleet, idx int, hostname string) *Step {
	o := m.sshOffer(c.Address, f, hostname)
	s := m.newStep(&Step{Op: OpCreate, Address: c.Address, Index: idx, Kind: providers.KindInstance, HostStep: -1,
		Backend: o.Backend, Offer: &o})
	c.Steps = append(c.Steps, s.ID)
	return s
}
