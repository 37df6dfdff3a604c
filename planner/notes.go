package planner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/lang"
)

// ServiceNote is what a plan says of a service: where it is reached and
// how many replicas it has now and after the plan.
type ServiceNote struct {
	Address string `json:"address"`
	// URL is where the gateway serves it: https://NAME.DOMAIN/ on a
	// gateway with a domain, else the gateway's path for it.
	URL string `json:"url"`
	// Model and ModelEndpoint: the model the service serves, and the
	// OpenAI-compatible endpoint it is reached at.
	Model         string `json:"model,omitempty"`
	ModelEndpoint string `json:"model_endpoint,omitempty"`
	// Replicas is the declared count or range ("2", "0..3").
	Replicas string `json:"replicas"`
	Current  int    `json:"current"`
	Planned  int    `json:"planned"`
}

// LoopNote is what the control loop (dstack server) will do about one
// resource on its own, between applies.
type LoopNote struct {
	Address string   `json:"address"`
	Does    []string `json:"does"`
}

// GatewayProject is the project path-based service URLs name.
const GatewayProject = "main"

// notes fills the plan's service and control-loop notes for the
// configured resources it covers.
func (m *maker) notes(addrs []string) {
	if m.in.Mode != Normal {
		return
	}
	changes := map[string]*Change{}
	for _, c := range m.plan.Changes {
		changes[c.Address] = c
	}
	for _, addr := range addrs {
		res := m.configured(addr)
		if res == nil {
			continue
		}
		if s, ok := res.Spec.(*lang.Service); ok {
			m.plan.Services = append(m.plan.Services, m.serviceNote(addr, s, changes[addr]))
		}
		if does := m.loopDoes(res.Spec); len(does) > 0 {
			m.plan.Loop = append(m.plan.Loop, LoopNote{Address: addr, Does: does})
		}
	}
}

func (m *maker) serviceNote(addr string, s *lang.Service, c *Change) ServiceNote {
	name := strings.TrimPrefix(addr, "service.")
	n := ServiceNote{Address: addr}
	lo, hi := replicaRange(s)
	n.Replicas = fmt.Sprint(lo)
	if hi != lo {
		n.Replicas = fmt.Sprintf("%d..%d", lo, hi)
		if hi >= 1<<20 {
			n.Replicas = fmt.Sprintf("%d..", lo)
		}
	}
	if prior := m.in.Prior.Resource(addr); prior != nil {
		n.Current = len(WithoutAbandoned(prior).Instances)
	}
	n.Planned = n.Current
	if c != nil {
		n.Planned = c.InstancesAfter
	}
	domain := m.gatewayDomain(s)
	scheme := "https"
	if s.HTTPS != nil && !s.HTTPS.Enabled && !s.HTTPS.Auto {
		scheme = "http"
	}
	if domain != "" {
		n.URL = fmt.Sprintf("%s://%s.%s/", scheme, name, domain)
	} else {
		n.URL = fmt.Sprintf("/proxy/services/%s/%s/ on the gateway", GatewayProject, name)
	}
	if s.Model != nil && s.Model.Name != "" {
		n.Model = s.Model.Name
		if domain != "" {
			n.ModelEndpoint = fmt.Sprintf("%s://gateway.%s/v1", scheme, domain)
		} else {
			n.ModelEndpoint = fmt.Sprintf("/proxy/models/%s/v1 on the gateway", GatewayProject)
		}
	}
	return n
}

// gatewayDomain is the domain of the gateway that serves s: the one it
// names, else the default one; "" without one or without a domain.
func (m *maker) gatewayDomain(s *lang.Service) string {
	if s.Gateway != nil && !s.Gateway.Enabled {
		return ""
	}
	var gws []*lang.Gateway
	for _, r := range m.in.Config.Sorted() {
		if g, ok := r.Spec.(*lang.Gateway); ok {
			if g.Name == "" {
				g2 := *g
				g2.Name = r.Address.Name
				g = &g2
			}
			gws = append(gws, g)
		}
	}
	for _, g := range gws {
		if s.Gateway != nil && s.Gateway.Name != "" {
			if g.Name == s.Gateway.Name && s.Gateway.Project == "" {
				return g.Domain
			}
			continue
		}
		if g.Default || len(gws) == 1 {
			return g.Domain
		}
	}
	return ""
}

// loopDoes says what the control loop does about a resource on its own.
func (m *maker) loopDoes(spec lang.Spec) []string {
	var does []string
	switch s := spec.(type) {
	case *lang.Service:
		lo, hi := replicaRange(s)
		if sc := s.Scaling; sc != nil && sc.Metric == "rps" && hi != lo {
			up, down := 300, 600
			if sc.ScaleUpDelay != nil {
				up = int(*sc.ScaleUpDelay)
			}
			if sc.ScaleDownDelay != nil {
				down = int(*sc.ScaleDownDelay)
			}
			rng := fmt.Sprintf("%d..%d", lo, hi)
			if hi >= 1<<20 {
				rng = fmt.Sprintf("%d..", lo)
			}
			does = append(does, fmt.Sprintf("scales %s on rps=%g (up after %s, down after %s)", rng, sc.Target, short(up), short(down)))
		}
		does = append(does, "makes dead replicas again")
		if slices.ContainsFunc(s.Probes, func(p lang.Probe) bool { return p.UntilReady == nil || !*p.UntilReady }) {
			does = append(does, "replaces replicas that keep failing their probes")
		}
	case *lang.Fleet:
		idle := cmp.Or(s.IdleDuration, s.TerminationIdleTime)
		if idle != nil && *idle > 0 && s.SSHConfig == nil {
			floor := 0
			if s.Nodes != nil {
				floor = s.Nodes.Min
			}
			does = append(does, fmt.Sprintf("tears down instances idle for %s (down to %d)", short(int(*idle)), floor))
		}
	}
	_, p := runParts(spec)
	if p == nil {
		return does
	}
	if p.Retry.Enabled() {
		var ev []string
		for _, e := range p.Retry.OnEvents {
			if e != "no-capacity" { // apply waits for capacity itself
				ev = append(ev, e)
			}
		}
		if len(ev) > 0 {
			d := "1h"
			if p.Retry.Duration != nil && *p.Retry.Duration > 0 {
				d = short(int(*p.Retry.Duration))
			}
			does = append(does, fmt.Sprintf("retries on %s for %s", strings.Join(ev, ", "), d))
		}
	}
	if sch := p.Schedule; sch != nil {
		for _, expr := range sch.Cron {
			line := fmt.Sprintf("starts at %q UTC", expr)
			if c, err := lang.ParseCron(expr); err == nil {
				if next, ok := c.Next(m.now()); ok {
					line += " (next " + next.Format("2006-01-02 15:04") + ")"
				}
			}
			does = append(does, line)
		}
	}
	if u := p.UtilizationPolicy; u != nil {
		does = append(does, fmt.Sprintf("stops it when its GPUs stay under %d%% utilization for %s", u.MinGPUUtilization, short(int(u.TimeWindow))))
	}
	if p.MaxDuration != nil && *p.MaxDuration > 0 {
		does = append(does, fmt.Sprintf("stops it after %s (its agent does)", short(int(*p.MaxDuration))))
	}
	return does
}

// short writes seconds as 90s, 5m, 2h or 1h30m.
func short(sec int) string {
	d := time.Duration(sec) * time.Second
	switch {
	case sec%3600 == 0:
		return fmt.Sprintf("%dh", sec/3600)
	case sec%60 == 0 && sec < 3600:
		return fmt.Sprintf("%dm", sec/60)
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	}
	return strings.TrimSuffix(d.String(), "0s")
}
