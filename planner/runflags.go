package planner

import (
	"sort"
	"strings"
)

// noDocker lists the backends whose jobs run as the provider's own
// containers, which can be neither privileged nor given Docker: dstack's
// documentation names runpod, vastai and kubernetes for both `docker`
// and `privileged`. The backends that run jobs through dstack's agent
// (local, ssh, and the VM clouds) honour both.
var noDocker = map[string]bool{"runpod": true, "vastai": true, "kubernetes": true}

// checkRunFlags refuses a job placed on a backend that cannot honour the
// run's `docker` or `privileged`, naming the field where it is written.
func (m *maker) checkRunFlags(c *Change, d *desired, s *Step) bool {
	cfg, _ := runParts(d.res.Spec)
	if cfg == nil || !noDocker[s.Backend] {
		return true
	}
	var names []string
	for b := range noDocker {
		names = append(names, b)
	}
	sort.Strings(names)
	for _, f := range []struct {
		name string
		set  bool
	}{{"docker", cfg.Docker}, {"privileged", cfg.Privileged}} {
		if f.set {
			m.problemAt(c.Address, f.name, "%s: %s: true cannot be honoured on the %s backend, whose jobs run in its own containers (neither Docker nor privileged mode is available on %s); list other backends in backends:",
				c.Address, f.name, s.Backend, strings.Join(names, ", "))
			return false
		}
	}
	return true
}
