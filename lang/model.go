package lang

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// Kind is a resource kind, the `type:` of a dstack YAML document and the
// block type of an HCL resource.
type Kind string

// The six kinds of resources.
const (
	KindTask           Kind = "task"
	KindService        Kind = "service"
	KindDevEnvironment Kind = "dev-environment"
	KindFleet          Kind = "fleet"
	KindVolume         Kind = "volume"
	KindGateway        Kind = "gateway"
)

// Kinds lists every kind in a stable order.
var Kinds = []Kind{KindTask, KindService, KindDevEnvironment, KindFleet, KindVolume, KindGateway}

// IsRun reports whether resources of the kind are runs (they get a
// container) rather than infrastructure.
func (k Kind) IsRun() bool {
	return k == KindTask || k == KindService || k == KindDevEnvironment
}

// NewSpec returns an empty spec for the kind, or nil for an unknown kind.
func NewSpec(k Kind) Spec {
	switch k {
	case KindTask:
		return &Task{}
	case KindService:
		return &Service{}
	case KindDevEnvironment:
		return &DevEnvironment{}
	case KindFleet:
		return &Fleet{}
	case KindVolume:
		return &Volume{}
	case KindGateway:
		return &Gateway{}
	}
	return nil
}

// Spec is the typed configuration of one resource: *Task, *Service,
// *DevEnvironment, *Fleet, *Volume or *Gateway.
type Spec interface {
	Kind() Kind
	// validate checks rules that span fields, using v for positions.
	validate(v *validator)
}

// Address names a resource: `<kind>.<name>`.
type Address struct {
	Kind Kind
	Name string
}

func (a Address) String() string { return string(a.Kind) + "." + a.Name }

// Less orders addresses by kind, then name.
func (a Address) Less(b Address) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

// ParseAddress parses `<kind>.<name>`.
func ParseAddress(s string) (Address, error) {
	for _, k := range Kinds {
		prefix := string(k) + "."
		if len(s) > len(prefix) && s[:len(prefix)] == prefix {
			a := Address{Kind: k, Name: s[len(prefix):]}
			if !ValidName(a.Name) {
				return Address{}, fmt.Errorf("invalid resource name %q in address %q", a.Name, s)
			}
			return a, nil
		}
	}
	return Address{}, fmt.Errorf("invalid address %q: want <kind>.<name> with kind one of task, service, dev-environment, fleet, volume, gateway", s)
}

// ValidName reports whether s is a valid resource name: a lower-case DNS
// label of at most 41 characters that starts with a letter and does not
// end with a dash (dstack's rule; names become host names and cloud tags).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 41 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Dependency is an edge from a resource to one it needs.
type Dependency struct {
	To Address
	// Range is where the dependency was written.
	Range Range
	// Reason says how the edge came about: "depends_on", "reference",
	// "fleets", "volumes", "gateway".
	Reason string
}

// Resource is one declared resource.
type Resource struct {
	Address Address
	Spec    Spec
	// Range covers the whole YAML document or HCL block.
	Range Range
	// NameRange is where the name was written (the HCL label, the YAML
	// `name:` value, or the document start when the name was derived).
	NameRange Range
	// fields knows where each field was written.
	fields *Decoder
	// Unknown lists field paths whose values are known only after apply.
	Unknown []string
	// Sensitive lists field paths whose values came from sensitive HCL
	// variables; SensitivePaths adds the fields the model tags.
	Sensitive []string
	// DependsOn lists the resources this one needs, sorted, no duplicates.
	DependsOn []Dependency
	// Syntax is "yaml" or "hcl".
	Syntax string
	// Lifecycle holds the HCL lifecycle settings (zero in YAML).
	Lifecycle Lifecycle
}

// FieldRange returns where the value of a field ("resources.gpu",
// "ports[1]") was written, for messages that point at the configuration.
func (r *Resource) FieldRange(path string) (Range, bool) {
	if r.fields == nil {
		return Range{}, false
	}
	return r.fields.Range(path)
}

// Hash returns a stable hash of the spec's content, for diffing: the
// SHA-256 of its canonical JSON. Map keys are sorted by encoding/json and
// struct fields keep declaration order, so equal specs hash equally
// whichever syntax they came from. It is computed on demand: loading and
// validating never need it.
func (r *Resource) Hash() string {
	b, err := json.Marshal(r.Spec)
	if err != nil {
		panic(fmt.Sprintf("lang: hashing %s: %v", r.Address, err))
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Backend is where a configuration's state lives: the HCL block
// `dstack { backend "s3" { bucket = "..." } }`. Its settings are literal
// strings, as in Terraform: state must be found before anything else is
// evaluated.
type Backend struct {
	Type   string
	Config map[string]string
	Range  Range
}

// Config is a whole loaded configuration.
type Config struct {
	// Backend is the configured state backend, nil for the default.
	Backend   *Backend
	Resources map[Address]*Resource
	// Files lists the files loaded, in load order.
	Files []string
	// Sources holds each loaded file's bytes, for diagnostic snippets.
	Sources map[string][]byte
}

// NewConfig returns an empty configuration.
func NewConfig() *Config {
	return &Config{Resources: map[Address]*Resource{}, Sources: map[string][]byte{}}
}

// Sorted returns the resources ordered by address.
func (c *Config) Sorted() []*Resource {
	out := make([]*Resource, 0, len(c.Resources))
	for _, r := range c.Resources {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	return out
}

// Add puts r into the configuration; a second resource with the same
// address is an error naming both places.
func (c *Config) Add(r *Resource) *Diagnostic {
	if prev, ok := c.Resources[r.Address]; ok {
		return Errorf(r.NameRange, "name", fmt.Sprintf("Duplicate resource %s", r.Address),
			"%s is also declared at %s. Each resource needs a unique name within its kind.", r.Address, prev.NameRange)
	}
	c.Resources[r.Address] = r
	return nil
}
