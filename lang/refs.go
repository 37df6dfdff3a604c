package lang

import (
	"fmt"
	"slices"
)

// checkFleetRefs warns about the fleets a run names (`fleets: [...]`)
// that this configuration does not declare. Such a fleet may still exist:
// one made by an earlier apply of other files (`apply -f fleet.dstack.yml`
// and then `apply -f task.dstack.yml`) stays in the state, and plan finds
// it there. So it is a warning here, and plan fails, naming the fleet and
// where it is written, when the state has no such fleet either.
func (c *Config) checkFleetRefs() Diagnostics {
	var declared []string
	for _, r := range c.Sorted() {
		if r.Address.Kind == KindFleet {
			declared = append(declared, r.Address.Name)
		}
	}
	var diags Diagnostics
	for _, r := range c.Sorted() {
		var prof *Profile
		switch s := r.Spec.(type) {
		case *Task:
			prof = &s.Profile
		case *Service:
			prof = &s.Profile
		case *DevEnvironment:
			prof = &s.Profile
		}
		if prof == nil {
			continue
		}
		for i, f := range prof.Fleets {
			if _, ok := c.Resources[Address{Kind: KindFleet, Name: f}]; ok {
				continue
			}
			path := fmt.Sprintf("fleets[%d]", i)
			project, name := ProjectName(f)
			if !ValidName(name) || (project != "" && !ValidName(project)) ||
				slices.Contains(r.Unknown, path) || slices.Contains(r.Unknown, "fleets") {
				continue // an invalid name (reported already), or known after apply
			}
			rng, ok := r.FieldRange(path)
			if !ok {
				rng = r.NameRange
			}
			if project != "" {
				diags = append(diags, Warnf(rng, path, fmt.Sprintf("Fleet %q is in another project", f),
					"dstack places runs only on the fleets of this configuration and its state; plan will not find %q.", f))
				continue
			}
			detail := "No fleet of that name is declared in this configuration. Plan looks for it in the state (a fleet applied earlier from other files) and fails if it is not there either."
			if s := Suggest(f, declared); s != "" {
				detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
			}
			diags = append(diags, Warnf(rng, path, fmt.Sprintf("Fleet %q is not declared in this configuration", f), "%s", detail))
		}
	}
	return diags
}
