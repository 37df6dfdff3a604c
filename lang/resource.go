package lang

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// RawResource is what a front-end hands over for one resource: a mapping
// holding `type`, `name` and the fields, as written.
type RawResource struct {
	Body *Node
	// Range covers the whole document or block.
	Range Range
	// DefaultName is used when the body has no `name`.
	DefaultName string
	// Syntax is "yaml" or "hcl".
	Syntax string
	// Refs are dependencies the front-end found (HCL references and
	// depends_on); they must name declared resources.
	Refs []Dependency
	// Lifecycle holds the HCL lifecycle block's settings, nil without one.
	Lifecycle *Lifecycle
}

// DecodeResource turns one raw resource into a typed, validated Resource.
// It returns the best-effort resource (nil only when the kind is unknown)
// with every problem found.
func DecodeResource(raw RawResource) (*Resource, Diagnostics) {
	var diags Diagnostics
	body := raw.Body
	if body.Kind != MapNode {
		return nil, Diagnostics{Errorf(body.Range, "", "Invalid configuration document",
			"A configuration is a mapping with a \"type\" field, got %s.", body.describe())}
	}
	te, ok := body.Get("type")
	if !ok {
		return nil, Diagnostics{Errorf(headRange(raw.Range), "type", "Missing required field \"type\"",
			"Every configuration names its kind with \"type\": one of %s.", kindList())}
	}
	kind := Kind(te.Value.Text)
	spec := NewSpec(kind)
	if te.Value.Kind != ScalarNode || spec == nil {
		detail := fmt.Sprintf("The type must be one of %s.", kindList())
		if s := Suggest(te.Value.Text, kindNames()); s != "" {
			detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
		}
		return nil, Diagnostics{Errorf(te.Value.Range, "type", fmt.Sprintf("Unknown type %q", te.Value.Text), "%s", detail)}
	}
	dec := NewDecoder()
	dec.Decode(body, spec, "")
	diags = append(diags, dec.Diags...)

	r := &Resource{Spec: spec, Range: raw.Range, fields: dec, Unknown: dec.Unknown, Sensitive: dec.Sensitive, Syntax: raw.Syntax}
	name := specName(spec)
	if ne, ok := body.Get("name"); ok {
		r.NameRange = ne.Value.Range
		if !ValidName(name) && ne.Value.Kind == ScalarNode {
			diags = append(diags, Errorf(ne.Value.Range, "name", fmt.Sprintf("Invalid name %q", name),
				"Names are lower-case letters, digits and dashes, start with a letter, end with a letter or digit and are at most 41 characters long."))
		}
	} else {
		name = raw.DefaultName
		setSpecName(spec, name)
		r.NameRange = headRange(raw.Range)
	}
	r.Address = Address{Kind: kind, Name: name}

	v := &validator{dec: dec, owner: headRange(raw.Range)}
	spec.validate(v)
	diags = append(diags, v.diags...)
	if len(r.Sensitive) > 0 {
		// Messages that quote what was written must not show a secret.
		var secrets []string
		sensitiveTexts(body, false, &secrets)
		ScrubDiagnostics(diags, secrets)
	}
	r.DependsOn = append(r.DependsOn, raw.Refs...)
	if raw.Lifecycle != nil {
		r.Lifecycle = *raw.Lifecycle
		diags = append(diags, checkIgnoreChanges(kind, raw.Lifecycle)...)
	}
	return r, diags
}

func headRange(r Range) Range {
	end := r.Start
	end.Column++
	end.Byte++
	return Range{Filename: r.Filename, Start: r.Start, End: end}
}

func kindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

func kindList() string { return strings.Join(kindNames(), ", ") }

func specName(s Spec) string {
	switch s := s.(type) {
	case *Task:
		return s.Name
	case *Service:
		return s.Name
	case *DevEnvironment:
		return s.Name
	case *Fleet:
		return s.Name
	case *Volume:
		return s.Name
	case *Gateway:
		return s.Name
	}
	return ""
}

func setSpecName(s Spec, name string) {
	switch s := s.(type) {
	case *Task:
		s.Name = name
	case *Service:
		s.Name = name
	case *DevEnvironment:
		s.Name = name
	case *Fleet:
		s.Name = name
	case *Volume:
		s.Name = name
	case *Gateway:
		s.Name = name
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// DefaultName derives a resource name from a file name, for documents that
// set none: "train.dstack.yml" gives "train", ".dstack.yml" in directory
// "llama" gives "llama". index > 0 adds a suffix for later documents of a
// file. The result is always a valid name.
func DefaultName(filename string, index int) string {
	base := filepath.Base(filename)
	for _, suf := range []string{".dstack.yml", ".dstack.yaml", ".dstack.hcl", ".yml", ".yaml", ".hcl"} {
		if s, ok := strings.CutSuffix(base, suf); ok {
			base = s
			break
		}
	}
	if base == "" || base == "." {
		abs, err := filepath.Abs(filepath.Dir(filename))
		if err == nil {
			base = filepath.Base(abs)
		}
	}
	name := strings.Trim(nonName.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "run-" + name
	}
	if len(name) > 36 {
		name = strings.TrimRight(name[:36], "-")
	}
	if index > 0 {
		name = fmt.Sprintf("%s-%d", name, index+1)
	}
	return strings.TrimRight(name, "-")
}

// Link checks the dependencies the front-ends found and adds the implicit
// ones: a run on a named fleet needs that fleet, a run mounting a volume
// needs it, a service on a named gateway needs it. Implicit edges are
// added only for resources declared in this configuration; a name that
// is not declared here may exist already and is resolved at plan time.
func (c *Config) Link() Diagnostics {
	diags := c.checkFleetRefs()
	for _, r := range c.Sorted() {
		var deps []Dependency
		for _, d := range r.DependsOn {
			if _, ok := c.Resources[d.To]; !ok {
				diags = append(diags, Errorf(d.Range, "", fmt.Sprintf("Reference to undeclared resource %s", d.To),
					"No %s named %q is declared in this configuration.", d.To.Kind, d.To.Name))
				continue
			}
			if d.To == r.Address {
				diags = append(diags, Errorf(d.Range, "", "Self-referential resource", "%s refers to itself.", r.Address))
				continue
			}
			deps = append(deps, d)
		}
		implicit := func(kind Kind, name, path, reason string) {
			to := Address{Kind: kind, Name: name}
			if _, ok := c.Resources[to]; ok && to != r.Address {
				rng, _ := r.FieldRange(path)
				deps = append(deps, Dependency{To: to, Range: rng, Reason: reason})
			}
		}
		var prof *Profile
		var run *RunConfig
		switch s := r.Spec.(type) {
		case *Task:
			prof, run = &s.Profile, &s.RunConfig
		case *Service:
			prof, run = &s.Profile, &s.RunConfig
			if s.Gateway != nil && s.Gateway.Name != "" {
				implicit(KindGateway, s.Gateway.Name, "gateway", "gateway")
			}
		case *DevEnvironment:
			prof, run = &s.Profile, &s.RunConfig
		}
		if prof != nil {
			for i, f := range prof.Fleets {
				implicit(KindFleet, f, fmt.Sprintf("fleets[%d]", i), "fleets")
			}
			for i, m := range run.Volumes {
				for _, n := range m.Name {
					implicit(KindVolume, n, fmt.Sprintf("volumes[%d]", i), "volumes")
				}
			}
		}
		sort.SliceStable(deps, func(i, j int) bool {
			if deps[i].To != deps[j].To {
				return deps[i].To.Less(deps[j].To)
			}
			// The first place an edge is written is the one kept.
			a, b := deps[i].Range, deps[j].Range
			if a.Filename != b.Filename {
				return a.Filename < b.Filename
			}
			return a.Start.Byte < b.Start.Byte
		})
		r.DependsOn = deps[:0:0]
		for i, d := range deps {
			if i > 0 && deps[i-1].To == d.To {
				continue
			}
			r.DependsOn = append(r.DependsOn, d)
		}
	}
	return diags
}
