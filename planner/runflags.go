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
// run's `docker`, `privileged` or `dstack`, naming the field where it is
// written.
func (m *maker) checkRunFlags(c *Change, d *desired, s *Step) bool {
	cfg, _ := runParts(d.res.Spec)
	if cfg == nil {
		return true
	}
	if cfg.Dstack && s.Backend != "local" {
		m.problemAt(c.Address, "dstack", "%s: dstack: true is supported on the local backend only (the run gets the directory of this configuration, on this machine), and the run is placed on %s; use backends: [local], or drop dstack", c.Address, s.Backend)
		return false
	}
	if !noDocker[s.Backend] {
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
