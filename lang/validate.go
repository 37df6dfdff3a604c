package lang

import (
	"fmt"
	"github.com/dstackai/dstack-go/lang/resources"
	"net"
	"path"
	"regexp"
	"strings"
	"sync"
)

// validator checks rules that span fields, after decoding. It finds the
// position of a field through the decoder's range table and falls back to
// the resource's head when the field was not written.
type validator struct {
	dec   *Decoder
	owner Range
	diags Diagnostics
}

// has reports whether the field at p was written.
func (v *validator) has(p string) bool {
	_, ok := v.dec.Range(p)
	return ok
}

func (v *validator) rangeOf(p string) Range {
	if r, ok := v.dec.KeyRange(p); ok {
		return r
	}
	if r, ok := v.dec.Range(p); ok {
		return r
	}
	return v.owner
}

func (v *validator) valueRange(p string) Range {
	if r, ok := v.dec.Range(p); ok {
		return r
	}
	return v.rangeOf(p)
}

// unknown reports whether the value at p, or a value inside or around it,
// is known only after apply (or failed to evaluate); rules are not
// checked against such values.
func (v *validator) unknown(p string) bool {
	for _, u := range v.dec.Unknown {
		if u == p || strings.HasPrefix(p, u+".") || strings.HasPrefix(p, u+"[") || strings.HasPrefix(u, p+"[") || strings.HasPrefix(u, p+".") {
			return true
		}
	}
	return false
}

// decodeFailed reports whether the decoder already reported an error for
// the field at p. Rules are not checked against such a field: its value
// is a placeholder (nodes is 0 after `nodes: two`), and a second error
// about it ("got 0") would be wrong, or noise.
func (v *validator) decodeFailed(p string) bool {
	if v.dec.misspelt[p] {
		return true
	}
	for _, d := range v.dec.Diags {
		if d.Severity == Error && d.Field == p {
			return true
		}
	}
	return false
}

func (v *validator) errorf(p, summary, format string, args ...any) {
	if v.unknown(p) || v.decodeFailed(p) {
		return
	}
	v.diags = append(v.diags, Errorf(v.rangeOf(p), p, summary, format, args...))
}

func (v *validator) valueErrorf(p, summary, format string, args ...any) {
	if v.unknown(p) || v.decodeFailed(p) {
		return
	}
	v.diags = append(v.diags, Errorf(v.valueRange(p), p, summary, format, args...))
}

func (v *validator) warnf(p, summary, format string, args ...any) {
	v.diags = append(v.diags, Warnf(v.rangeOf(p), p, summary, format, args...))
}

// exclusive reports an error on the second of two fields that cannot be
// set together.
func (v *validator) exclusive(a, b, why string) {
	if v.has(a) && v.has(b) {
		v.errorf(b, fmt.Sprintf("Conflicting fields %q and %q", a, b), "%q is set at %s; %s", a, v.rangeOf(a), why)
	}
}

// Backends lists the backend names dstack knows.
var Backends = []string{
	"aws", "azure", "gcp", "kubernetes", "lambda", "runpod", "vastai", "tensordock", "oci",
	"datacrunch", "verda", "cudo", "nebius", "vultr", "cloudrift", "hotaisle", "digitalocean", "amddevcloud",
	"crusoe", "dstack", "local", "ssh", "remote",
}

func (v *validator) backend(p, name string) {
	for _, b := range Backends {
		if b == name {
			return
		}
	}
	detail := fmt.Sprintf("Known backends: %s.", strings.Join(Backends, ", "))
	if s := Suggest(name, Backends); s != "" {
		detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
	}
	v.valueErrorf(p, fmt.Sprintf("Unknown backend %q", name), "%s", detail)
}

// projectNames checks names that may refer to another project's resource
// as "project/name".
func (v *validator) projectNames(p string, names []string, what string) {
	for i, n := range names {
		project, name := ProjectName(n)
		if !ValidName(name) || (project != "" && !ValidName(project)) {
			v.valueErrorf(indexPath(p, i), fmt.Sprintf("Invalid %s name %q", what, n), "Names are lower-case letters, digits and dashes, starting with a letter; a %s of another project is written project/name.", what)
		}
	}
}

func (v *validator) price(p string, price *float64) {
	if price != nil && *price <= 0 {
		v.valueErrorf(p, "Invalid max_price", "max_price must be a positive price per hour in USD, got %g.", *price)
	}
}

// tagKeyRE and domainRE are compiled on first use: their bounded
// repetitions compile to large programs, which cost every dstack command,
// `dstack version` included, start-up time when compiled at package
// initialisation.
var tagKeyRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,127}$`)
})

func (v *validator) tags(p string, tags map[string]string) {
	for k, val := range tags {
		if !tagKeyRE().MatchString(k) {
			v.errorf(joinPath(p, k), fmt.Sprintf("Invalid tag key %q", k), "Tag keys are 1-128 letters, digits and _.:/=+@- starting with a letter or digit.")
		}
		if len(val) > 256 {
			v.valueErrorf(joinPath(p, k), "Tag value too long", "Tag values are at most 256 characters.")
		}
	}
}

func (v *validator) run(r *RunConfig) {
	v.exclusive("image", "python", "a custom image brings its own Python; drop python or image.")
	v.exclusive("image", "nvcc", "nvcc selects dstack's base image; drop nvcc or image.")
	v.exclusive("docker", "image", "docker: true runs dstack's docker-in-docker image.")
	v.exclusive("docker", "python", "docker: true runs dstack's docker-in-docker image.")
	if r.Shell != "" && r.Shell != "sh" && r.Shell != "bash" && !path.IsAbs(r.Shell) {
		v.valueErrorf("shell", fmt.Sprintf("Invalid shell %q", r.Shell), "Use sh, bash, or an absolute path such as /bin/zsh.")
	}
	if r.Priority != nil && (*r.Priority < 0 || *r.Priority > 100) {
		v.valueErrorf("priority", "Invalid priority", "Priority must be between 0 and 100, got %d.", *r.Priority)
	}
	if v.has("home_dir") {
		v.warnf("home_dir", "home_dir is deprecated", "dstack ignores home_dir; the home directory comes from the image.")
	}
	v.gpuNames("resources", r.Resources)
	if r.RegistryAuth != nil && r.Image == "" {
		v.warnf("registry_auth", "registry_auth without image", "registry_auth is used only to pull a custom image.")
	}
	seen := map[string]int{}
	for i, m := range r.Volumes {
		if j, dup := seen[m.Path]; dup {
			v.valueErrorf(fmt.Sprintf("volumes[%d]", i), fmt.Sprintf("Duplicate mount path %q", m.Path), "volumes[%d] is mounted there already.", j)
		}
		seen[m.Path] = i
	}
}

func (v *validator) deprecated() {
	for _, f := range []string{"termination_idle_time", "termination_policy"} {
		if v.has(f) {
			v.warnf(f, fmt.Sprintf("%s is deprecated", f), "Use idle_duration: how long an idle instance is kept (\"off\" keeps it).")
		}
	}
}

func (v *validator) profile(p *Profile) {
	v.deprecated()
	for i, b := range p.Backends {
		v.backend(fmt.Sprintf("backends[%d]", i), b)
	}
	v.price("max_price", p.MaxPrice)
	v.projectNames("fleets", p.Fleets, "fleet")
	v.tags("tags", p.Tags)
	if u := p.UtilizationPolicy; u != nil {
		if u.MinGPUUtilization < 0 || u.MinGPUUtilization > 100 {
			v.valueErrorf("utilization_policy.min_gpu_utilization", "Invalid min_gpu_utilization", "It is a percentage between 0 and 100, got %d.", u.MinGPUUtilization)
		}
		if u.TimeWindow <= 0 {
			v.valueErrorf("utilization_policy.time_window", "Invalid time_window", "The time window must be a positive duration such as \"30m\".")
		}
	}
	if s := p.Schedule; s != nil {
		for i, c := range s.Cron {
			if f := strings.Fields(c); len(f) != 5 {
				v.valueErrorf(fmt.Sprintf("schedule.cron[%d]", i), fmt.Sprintf("Invalid cron expression %q", c), "A cron expression has five fields: minute hour day-of-month month day-of-week.")
			} else if _, err := ParseCron(c); err != nil {
				v.valueErrorf(fmt.Sprintf("schedule.cron[%d]", i), fmt.Sprintf("Invalid cron expression %q", c), "%v.", err)
			}
		}
		if len(s.Cron) == 0 {
			v.valueErrorf("schedule.cron", "Empty schedule", "Give at least one cron expression.")
		}
	}
}

func (t *Task) validate(v *validator) {
	v.run(&t.RunConfig)
	v.profile(&t.Profile)
	v.exclusive("nodes", "groups", "groups declare their own node counts.")
	if t.Nodes != nil && *t.Nodes < 1 {
		v.valueErrorf("nodes", "Invalid nodes", "A task needs at least 1 node, got %d.", *t.Nodes)
	}
	if len(t.Commands) == 0 && t.Image == "" && !v.has("groups") {
		v.errorf("commands", "Missing commands", "A task without an image needs commands to run.")
	}
	v.reposFiles(&t.RunConfig, len(t.Commands) > 0 || len(t.Groups) > 0)
	seen := map[string]bool{}
	for i, g := range t.Groups {
		p := fmt.Sprintf("groups[%d]", i)
		if g.Name != "" && !ValidName(g.Name) {
			v.valueErrorf(p+".name", fmt.Sprintf("Invalid group name %q", g.Name), "Group names are lower-case letters, digits and dashes.")
		}
		if g.Name != "" && seen[g.Name] {
			v.valueErrorf(p+".name", fmt.Sprintf("Duplicate group %q", g.Name), "Group names must be unique within a task.")
		}
		seen[g.Name] = true
		v.gpuNames(p+".resources", g.Resources)
		if g.Nodes < 0 || (v.has(p+".nodes") && g.Nodes == 0) {
			v.valueErrorf(p+".nodes", "Invalid nodes", "A group needs at least 1 node.")
		}
		if len(g.Commands) == 0 && len(t.Commands) == 0 && t.Image == "" {
			v.errorf(p, "Missing commands", "Group %q has no commands and the task has none to inherit.", g.Name)
		}
	}
	if t.StartupOrder != "" && t.Nodes == nil && len(t.Groups) == 0 {
		v.warnf("startup_order", "startup_order on a single-node task", "startup_order applies to distributed tasks (nodes > 1).")
	}
}

func (s *Service) validate(v *validator) {
	v.run(&s.RunConfig)
	v.profile(&s.Profile)
	groups := s.Replicas != nil && s.Replicas.Groups != nil
	if len(s.Commands) == 0 && s.Image == "" && !groups {
		v.errorf("commands", "Missing commands", "A service without an image needs commands that start its server.")
	}
	v.reposFiles(&s.RunConfig, len(s.Commands) > 0 || groups)
	if groups {
		v.exclusive("replicas", "scaling", "replica groups each set their own scaling.")
		seen := map[string]int{}
		for i, g := range s.Replicas.Groups {
			p := indexPath("replicas", i)
			if g.Name != "" {
				if j, dup := seen[g.Name]; dup {
					v.valueErrorf(p+".name", fmt.Sprintf("Duplicate replica group %q", g.Name), "replicas[%d] has that name already.", j)
				}
				seen[g.Name] = i
			}
			if len(g.Commands) == 0 && len(s.Commands) == 0 && g.Image == "" && s.Image == "" {
				v.errorf(p, "Missing commands", "Replica group %d has no commands and the service has none to inherit.", i)
			}
			v.replicaRange(p+".count", g.Count, g.Scaling, p+".scaling")
			v.gpuNames(p+".resources", g.Resources)
		}
	} else {
		var r *resources.IntRange
		if s.Replicas != nil {
			r = s.Replicas.Range
		}
		v.replicaRange("replicas", r, s.Scaling, "scaling")
	}
	for i, rl := range s.RateLimits {
		p := fmt.Sprintf("rate_limits[%d]", i)
		if rl.RPS <= 0 {
			v.valueErrorf(p+".rps", "Invalid rps", "rps must be positive.")
		}
		if rl.Key != nil && rl.Key.Type == "header" && rl.Key.Header == "" {
			v.errorf(p+".key", "Missing header", "A rate limit keyed by header needs the header name.")
		}
		if rl.Prefix != "" && !strings.HasPrefix(rl.Prefix, "/") {
			v.valueErrorf(p+".prefix", "Invalid prefix", "A path prefix starts with /.")
		}
	}
	for i, pr := range s.Probes {
		if pr.URL != "" && !strings.HasPrefix(pr.URL, "/") {
			v.valueErrorf(fmt.Sprintf("probes[%d].url", i), "Invalid probe url", "The probe url is a path on the replica and starts with /.")
		}
	}
	if v.has("router") {
		v.warnf("router", "router on a service is deprecated", "Give the router as a replica group: replicas: [{router: {type: sglang}, ...}, ...].")
	}
	if s.HTTPS != nil && s.HTTPS.Enabled && s.Gateway != nil && !s.Gateway.Enabled {
		v.errorf("https", "https without a gateway", "https is served by the gateway; the service sets gateway: false.")
	}
}

// replicaRange checks a replica count against its scaling: a range needs
// scaling to move within it, and scaling needs a range to move in.
func (v *validator) replicaRange(p string, r *resources.IntRange, sc *Scaling, scalingPath string) {
	if r != nil {
		if r.Min == nil {
			v.valueErrorf(p, "Invalid replicas", "A replica range needs a minimum, e.g. \"0..4\".")
		}
		ranged := r.Min == nil || r.Max == nil || *r.Min != *r.Max
		if ranged && sc == nil {
			v.valueErrorf(p, "Replica range needs scaling", "%s %s is a range, so set scaling {metric, target} to say how to move within it.", p, r)
		}
		if !ranged && sc != nil {
			v.errorf(scalingPath, "scaling needs a replica range", "%s is fixed at %d; write a range such as \"1..4\" for scaling to act.", p, *r.Min)
		}
	} else if sc != nil {
		v.errorf(scalingPath, "scaling needs a replica range", "Set %s to a range such as \"1..4\".", p)
	}
	if sc != nil && sc.Target <= 0 {
		v.valueErrorf(scalingPath+".target", "Invalid scaling target", "The target must be positive.")
	}
}

func (d *DevEnvironment) validate(v *validator) {
	v.run(&d.RunConfig)
	v.profile(&d.Profile)
	v.reposFiles(&d.RunConfig, true)
	if d.Version != "" && d.IDE == "windsurf" {
		v.warnf("version", "version ignored", "A version pins the VS Code or Cursor server.")
	}
}

func (f *Fleet) validate(v *validator) {
	for i, b := range f.Backends {
		v.backend(fmt.Sprintf("backends[%d]", i), b)
	}
	v.price("max_price", f.MaxPrice)
	v.tags("tags", f.Tags)
	v.gpuNames("resources", f.Resources)
	v.deprecated()
	if f.SSHConfig != nil {
		for _, cloud := range []string{"nodes", "backends", "regions", "availability_zones", "instance_types", "spot_policy", "max_price", "reservation"} {
			if v.has(cloud) {
				v.errorf(cloud, fmt.Sprintf("%q does not apply to an SSH fleet", cloud), "An SSH fleet consists of the hosts in ssh_config; %q is for cloud fleets.", cloud)
			}
		}
		if len(f.SSHConfig.Hosts) == 0 && v.has("ssh_config.hosts") {
			v.valueErrorf("ssh_config.hosts", "No hosts", "An SSH fleet needs at least one host.")
		}
		seen := map[string]int{}
		for i, h := range f.SSHConfig.Hosts {
			if j, dup := seen[h.Hostname]; dup {
				v.valueErrorf(fmt.Sprintf("ssh_config.hosts[%d]", i), fmt.Sprintf("Duplicate host %q", h.Hostname), "It is listed already as hosts[%d].", j)
			}
			seen[h.Hostname] = i
			if h.InternalIP != "" && net.ParseIP(h.InternalIP) == nil {
				v.valueErrorf(fmt.Sprintf("ssh_config.hosts[%d].internal_ip", i), "Invalid internal_ip", "%q is not an IP address.", h.InternalIP)
			}
		}
		if n := f.SSHConfig.Network; n != "" {
			if _, _, err := net.ParseCIDR(n); err != nil {
				v.valueErrorf("ssh_config.network", "Invalid network", "%q is not a CIDR such as 10.0.0.0/24.", n)
			}
		}
		return
	}
	if f.Nodes == nil && !v.has("nodes") {
		v.errorf("nodes", "Missing nodes", "A cloud fleet needs nodes (a number, \"min..max\" or {min, target, max}); an on-prem fleet needs ssh_config.")
	}
	if f.Placement == "cluster" && f.Nodes != nil && f.Nodes.Max != nil && *f.Nodes.Max < 2 {
		v.warnf("placement", "cluster placement with one node", "placement: cluster interconnects several nodes.")
	}
}

func (vol *Volume) validate(v *validator) {
	if vol.Backend != "" {
		v.backend("backend", vol.Backend)
	}
	if vol.Region == "" && vol.Backend != "kubernetes" && !v.has("region") {
		v.errorf("region", "Missing required field \"region\"", "A volume lives in one region of its backend.")
	}
	if vol.Backend != "kubernetes" {
		for _, k8s := range []string{"claim_name", "storage_class_name", "access_modes"} {
			if v.has(k8s) {
				v.errorf(k8s, fmt.Sprintf("%q applies to kubernetes volumes", k8s), "This volume's backend is %q.", vol.Backend)
			}
		}
	}
	if vol.Size == nil && vol.VolumeID == "" && vol.ClaimName == "" {
		v.errorf("size", "Missing size", "Set size for a new volume, or volume_id to register an existing one.")
	}
	v.exclusive("volume_id", "size", "an existing volume keeps its size.")
	v.exclusive("claim_name", "size", "an existing claim keeps its size.")
	if vol.Size != nil && *vol.Size <= 0 {
		v.valueErrorf("size", "Invalid size", "The size must be positive.")
	}
	v.tags("tags", vol.Tags)
}

var domainRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
})

func (g *Gateway) validate(v *validator) {
	if g.Backend != "" {
		v.backend("backend", g.Backend)
	}
	if g.Domain != "" && !domainRE().MatchString(g.Domain) {
		v.valueErrorf("domain", fmt.Sprintf("Invalid domain %q", g.Domain), "Give a lower-case DNS name such as example.com or *.example.com.")
	}
	if c := g.Certificate; c != nil {
		if c.Type == "acm" && c.ARN == "" {
			v.errorf("certificate", "Missing certificate arn", "An ACM certificate needs its arn.")
		}
		if c.Type == "lets-encrypt" && g.Domain == "" {
			v.errorf("certificate", "Let's Encrypt needs a domain", "Set domain so a certificate can be issued for it.")
		}
		if c.Type == "lets-encrypt" && c.ARN != "" {
			v.errorf("certificate.arn", "arn with lets-encrypt", "arn applies to ACM certificates only.")
		}
	}
	v.tags("tags", g.Tags)
}
