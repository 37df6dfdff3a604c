package lang

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
)

// Duration is a length of time in seconds. It is written as an integer
// (seconds) or a string with a unit: "30s", "15m", "2h", "1d", "1w", or
// combinations ("1h30m"). DurationOff ("off", or false) disables the
// limit it sets.
type Duration int64

// DurationOff is the value of a duration written as "off" or false.
const DurationOff Duration = -1

// durationUnits are the units of a duration string, largest first; each
// may appear once, in this order ("1h30m", not "30m1h").
var durationUnits = []struct {
	suffix byte
	secs   int64
}{{'w', 7 * 86400}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}

// ParseDuration parses the string form of a Duration.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" || s == "-1" {
		return DurationOff, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i >= 0 {
		return Duration(i), nil
	}
	bad := func() error {
		return fmt.Errorf("%q is not a duration: use seconds or a number with a unit (s, m, h, d, w), e.g. \"30m\" or \"2h\"", s)
	}
	var total int64
	rest, unit := s, 0
	for rest != "" {
		digits := 0
		for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
			digits++
		}
		if digits == 0 || digits == len(rest) || digits > 12 {
			return 0, bad()
		}
		for unit < len(durationUnits) && durationUnits[unit].suffix != rest[digits] {
			unit++
		}
		if unit == len(durationUnits) {
			return 0, bad()
		}
		n, _ := strconv.ParseInt(rest[:digits], 10, 64)
		total += n * durationUnits[unit].secs
		rest, unit = rest[digits+1:], unit+1
	}
	if s == "" {
		return 0, bad()
	}
	return Duration(total), nil
}

// String renders the canonical form: "off", or the largest whole units.
func (d Duration) String() string {
	if d == DurationOff {
		return "off"
	}
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	rest := int64(d)
	for _, u := range durationUnits {
		if rest >= u.secs {
			fmt.Fprintf(&b, "%d%c", rest/u.secs, u.suffix)
			rest %= u.secs
		}
	}
	return b.String()
}

// DecodeNode accepts integers, duration strings, "off" and false.
func (d *Duration) DecodeNode(dec *Decoder, n *Node, path string) {
	if n.Kind != ScalarNode {
		dec.typeError(n, reflectTypeOf[Duration](), path)
		return
	}
	if n.Type == Bool {
		if n.Text == "true" {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "A duration can be turned off with false or \"off\"; true has no meaning here, give a duration such as \"1h\".")
			return
		}
		*d = DurationOff
		return
	}
	v, err := ParseDuration(n.Text)
	if err != nil {
		dec.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "%s.", capitalize(err.Error()))
		return
	}
	*d = v
}

// DescribeType implements Describer.
func (Duration) DescribeType() string { return `a duration ("30m", "2h", seconds, or "off")` }

// MarshalText renders the canonical form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the string form.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = v
	return err
}

// EnvVar is one environment variable. A nil Value means the variable is
// taken from the caller's environment at apply time (a bare `KEY`).
type EnvVar struct {
	Name  string
	Value *string
	Range Range
}

// Env is a run's environment, in the order written. It is written as a
// mapping, or as a list of `KEY=value` and bare `KEY` items.
type Env []EnvVar

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DecodeNode accepts both forms.
func (e *Env) DecodeNode(dec *Decoder, n *Node, path string) {
	seen := map[string]bool{}
	add := func(name string, value *string, rng Range, p string) {
		if !envNameRE.MatchString(name) {
			dec.Errorf(rng, p, fmt.Sprintf("Invalid environment variable name %q", name), "Names are letters, digits and underscores, not starting with a digit.")
			return
		}
		if seen[name] {
			dec.Errorf(rng, p, fmt.Sprintf("Duplicate environment variable %q", name), "")
			return
		}
		seen[name] = true
		*e = append(*e, EnvVar{Name: name, Value: value, Range: rng})
	}
	switch n.Kind {
	case MapNode:
		for _, ent := range n.Entries {
			p := joinPath(path, ent.Key)
			switch ent.Value.Kind {
			case NullNode:
				add(ent.Key, nil, ent.KeyRange, p)
			case ScalarNode:
				v := ent.Value.Text
				add(ent.Key, &v, ent.KeyRange, p)
				if ent.Value.Sensitive {
					dec.MarkSensitive(p)
				}
			case UnknownNode:
				dec.Unknown = append(dec.Unknown, p)
				v := ""
				add(ent.Key, &v, ent.KeyRange, p)
			default:
				dec.Errorf(ent.Value.Range, p, fmt.Sprintf("Invalid value for %q", p), "Expected a string, got %s.", ent.Value.describe())
			}
		}
	case ListNode:
		for i, it := range n.Items {
			p := fmt.Sprintf("%s[%d]", path, i)
			if it.Kind != ScalarNode || it.Type != String {
				dec.Errorf(it.Range, p, fmt.Sprintf("Invalid value for %q", p), "Expected \"KEY=value\" or \"KEY\", got %s.", it.describe())
				continue
			}
			name, value, ok := strings.Cut(it.Text, "=")
			if ok {
				add(name, &value, it.Range, p)
			} else {
				add(name, nil, it.Range, p)
			}
			if it.Sensitive {
				// Encoded as a mapping: the value's path is by name.
				dec.MarkSensitive(joinPath(path, name))
			}
		}
	default:
		dec.typeError(n, reflectTypeOf[Env](), path)
	}
}

// DescribeType implements Describer.
func (Env) DescribeType() string { return "a mapping or a list of \"KEY=value\"" }

// MarshalJSON renders the environment as an object; variables taken from
// the caller's environment are null.
func (e Env) MarshalJSON() ([]byte, error) {
	m := make(map[string]*string, len(e))
	for _, v := range e {
		m[v.Name] = v.Value
	}
	return json.Marshal(m)
}

// Resolve returns the final environment, taking bare variables from
// lookup (normally os.LookupEnv). A bare variable that lookup does not
// know is an error naming it.
func (e Env) Resolve(lookup func(string) (string, bool)) (map[string]string, error) {
	out := make(map[string]string, len(e))
	var missing []string
	for _, v := range e {
		if v.Value != nil {
			out[v.Name] = *v.Value
			continue
		}
		val, ok := lookup(v.Name)
		if !ok {
			missing = append(missing, v.Name)
			continue
		}
		out[v.Name] = val
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("environment variables %s are declared without a value and are not set in the environment", strings.Join(missing, ", "))
	}
	return out, nil
}

// Port maps a port on the machine running dstack (or the gateway) to a
// port in the container. Written as `8080` (both sides), `"80:8080"`
// (local:container), `"*:8080"` (any free local port), or a mapping.
type Port struct {
	// LocalPort is nil for "any free port".
	LocalPort     *int `json:"local_port,omitempty" jsonschema_description:"Port on this machine; any free port when unset"`
	ContainerPort int  `json:"container_port" jsonschema:"required" jsonschema_description:"Port in the container"`
}

func (p Port) String() string {
	if p.LocalPort == nil {
		return fmt.Sprintf("*:%d", p.ContainerPort)
	}
	if *p.LocalPort == p.ContainerPort {
		return strconv.Itoa(p.ContainerPort)
	}
	return fmt.Sprintf("%d:%d", *p.LocalPort, p.ContainerPort)
}

// ParsePort parses the short forms.
func ParsePort(s string) (Port, error) {
	local, container, mapped := strings.Cut(strings.TrimSpace(s), ":")
	if !mapped {
		container = local
	}
	c, err := parsePortNumber(container)
	if err != nil {
		return Port{}, err
	}
	p := Port{ContainerPort: c}
	switch {
	case !mapped:
		p.LocalPort = &c
	case local == "*":
	default:
		l, err := parsePortNumber(local)
		if err != nil {
			return Port{}, err
		}
		p.LocalPort = &l
	}
	return p, nil
}

func parsePortNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

type portMapping Port

// DecodeNode accepts the short forms and the mapping.
func (p *Port) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		if n.Type != Int && n.Type != String {
			dec.typeError(n, reflectTypeOf[Port](), path)
			return
		}
		v, err := ParsePort(n.Text)
		if err != nil {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid port for %q", path), "%s; write 8080, \"80:8080\" or \"*:8080\".", capitalize(err.Error()))
			return
		}
		*p = v
	case MapNode:
		dec.DecodeFields(n, p, path)
		cp := joinPath(path, "container_port")
		if rng, set := dec.Range(cp); set && (p.ContainerPort < 1 || p.ContainerPort > 65535) {
			dec.Errorf(rng, cp, "Invalid port", "container_port must be between 1 and 65535.")
		}
		lp := joinPath(path, "local_port")
		if rng, set := dec.Range(lp); set && p.LocalPort != nil && (*p.LocalPort < 1 || *p.LocalPort > 65535) {
			dec.Errorf(rng, lp, "Invalid port", "local_port must be between 1 and 65535.")
		}
	default:
		dec.typeError(n, reflectTypeOf[Port](), path)
	}
}

// DescribeType implements Describer.
func (Port) DescribeType() string { return `a port (8080, "80:8080", "*:8080" or a mapping)` }

// VolumeMount attaches a volume to a run. Written as `name:/path` for a
// dstack volume, `/host/path:/path` for an instance volume, or a mapping.
type VolumeMount struct {
	// Name lists network volume names; several are alternatives across
	// backends/regions, the first available wins.
	Name resources.Names `json:"name,omitempty" jsonschema_description:"Names of dstack volumes; the first available one is mounted"`
	// InstancePath is a directory on the host (instance volumes).
	InstancePath string `json:"instance_path,omitempty" jsonschema_description:"Directory on the host (an instance volume)"`
	Path         string `json:"path" jsonschema:"required" jsonschema_description:"Path in the container"`
	// Optional instance volumes are skipped where the host path is missing.
	Optional bool `json:"optional,omitempty" jsonschema_description:"Skip an instance volume whose host directory is missing"`
}

type volumeMapping VolumeMount

// DecodeNode accepts the short forms and the mapping.
func (m *VolumeMount) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		src, dst, ok := strings.Cut(n.Text, ":")
		if !ok || src == "" || dst == "" {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid volume for %q", path), "Write \"NAME:/container/path\" for a volume or \"/host/path:/container/path\" for an instance volume, got %q.", n.Text)
			return
		}
		if strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~") {
			m.InstancePath = src
		} else {
			m.Name = resources.Names{src}
		}
		m.Path = dst
	case MapNode:
		dec.DecodeFields(n, m, path)
		switch {
		case len(m.Name) == 0 && m.InstancePath == "":
			dec.Errorf(n.Range, path, "Volume source missing", "Set name (a dstack volume) or instance_path (a directory on the host).")
		case len(m.Name) > 0 && m.InstancePath != "":
			dec.Errorf(n.Range, path, "Conflicting volume source", "Set either name or instance_path, not both.")
		case len(m.Name) > 0 && m.Optional:
			dec.Errorf(n.Range, joinPath(path, "optional"), "Invalid field for a network volume", "optional applies to instance volumes only.")
		}
		if m.Path == "" {
			return // reported as a missing required field
		}
	default:
		dec.typeError(n, reflectTypeOf[VolumeMount](), path)
		return
	}
	if !strings.HasPrefix(m.Path, "/") && !strings.HasPrefix(m.Path, "~") {
		dec.Errorf(n.Range, path, "Invalid mount path", "The container path %q must be absolute.", m.Path)
	}
}

// DescribeType implements Describer.
func (VolumeMount) DescribeType() string {
	return `a volume ("name:/path", "/host:/path" or a mapping)`
}

// FileMapping copies a local file or directory into the run. Written as
// "local[:container]" or {local_path, path}.
type FileMapping struct {
	LocalPath string `json:"local_path" jsonschema:"required" jsonschema_description:"Local file or directory"`
	Path      string `json:"path,omitempty" jsonschema_description:"Path in the container"`
}

type fileMapping FileMapping

// DecodeNode accepts both forms.
func (f *FileMapping) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		m, err := ParseFileMapping(n.Text)
		if err != nil {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid file for %q", path), "%v: write \"local/path\" or \"local/path:/container/path\".", err)
			return
		}
		*f = m
	case MapNode:
		dec.DecodeFields(n, f, path)
	default:
		dec.typeError(n, reflectTypeOf[FileMapping](), path)
	}
}

// DescribeType implements Describer.
func (FileMapping) DescribeType() string { return `a file ("local:/container/path" or a mapping)` }

// Repo is a code repository cloned into the run.
type Repo struct {
	LocalPath string `json:"local_path,omitempty" jsonschema_description:"Local directory of the repo"`
	URL       string `json:"url,omitempty" jsonschema_description:"URL of the git repository"`
	Path      string `json:"path,omitempty" jsonschema_description:"Path in the container the repo is put at"`
	Branch    string `json:"branch,omitempty" jsonschema_description:"Branch to check out"`
	Hash      string `json:"hash,omitempty" jsonschema_description:"Commit to check out"`
	IfExists  string `json:"if_exists,omitempty" jsonschema:"enum=error,enum=skip" jsonschema_description:"What to do when the path is not empty"`
}

type repoMapping Repo

// DecodeNode accepts a mapping, or a string that is a URL or a local path.
func (r *Repo) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		rp, err := ParseRepo(n.Text)
		if err != nil {
			dec.Errorf(n.Range, path, "Invalid repo", "%v.", err)
			return
		}
		*r = rp
	case MapNode:
		dec.DecodeFields(n, r, path)
		if (r.LocalPath == "") == (r.URL == "") {
			dec.Errorf(n.Range, path, "Invalid repo", "Set exactly one of local_path and url.")
		}
	default:
		dec.typeError(n, reflectTypeOf[Repo](), path)
	}
}

// RegistryAuth holds credentials for a private image registry.
type RegistryAuth struct {
	Username string `json:"username" jsonschema:"required" jsonschema_description:"Registry user name"`
	// Password is sensitive: it never appears in output.
	Password string `json:"password" jsonschema:"required" sensitive:"true" jsonschema_description:"Registry password or access token"`
}

// Retry says when a failed run is resubmitted. Written as a bool (true:
// on every event) or {on_events, duration}.
type Retry struct {
	OnEvents []string  `json:"on_events,omitempty" jsonschema:"enum=no-capacity,enum=interruption,enum=error" jsonschema_description:"Events that resubmit the run (all three when omitted): no-capacity (no offer had capacity), interruption (its machine was taken back, such as a spot instance's interruption notice, or stopped answering), error (a job failed)"`
	Duration *Duration `json:"duration,omitempty" jsonschema_description:"How long to keep resubmitting (default 1h): for no-capacity from the run's submission, for interruption and error from when the job ended"`
}

type retryMapping Retry

var retryEvents = []string{"no-capacity", "interruption", "error"}

// DecodeNode accepts a bool or the mapping.
func (r *Retry) DecodeNode(dec *Decoder, n *Node, path string) {
	switch {
	case n.Kind == ScalarNode && n.Type == Bool:
		if n.Text == "true" {
			*r = Retry{OnEvents: append([]string(nil), retryEvents...)}
		} else {
			*r = Retry{}
		}
	case n.Kind == MapNode:
		dec.DecodeFields(n, r, path)
		if _, ok := n.Get("on_events"); !ok {
			r.OnEvents = append([]string(nil), retryEvents...)
		}
	default:
		dec.typeError(n, reflectTypeOf[Retry](), path)
	}
}

// DescribeType implements Describer.
func (Retry) DescribeType() string { return "a bool or a mapping with on_events and duration" }

// Enabled reports whether any event triggers a retry.
func (r *Retry) Enabled() bool { return r != nil && len(r.OnEvents) > 0 }

// Strings is a list of strings that may also be written as one string.
type Strings []string

// DecodeNode accepts a string or a list of strings.
func (s *Strings) DecodeNode(dec *Decoder, n *Node, path string) {
	if n.Kind == ScalarNode {
		*s = Strings{n.Text}
		return
	}
	var l []string
	dec.decode(n, reflectValueOf(&l), path)
	*s = l
}

// DescribeType implements Describer.
func (Strings) DescribeType() string { return "a string or a list of strings" }
