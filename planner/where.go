package planner

import (
	"fmt"
	"slices"

	"github.com/dstackai/dstack-go/lang"
)

// where is the place in the configuration files that a problem about addr
// points at, "file:line:column: ", or "" when addr is not configured (a
// resource only in state) or was not loaded from files (a saved plan). It
// is the field at fault when that was written, else the resource's name.
func where(cfg *lang.Config, addr, field string) string {
	a, err := lang.ParseAddress(addr)
	if err != nil || cfg == nil {
		return ""
	}
	r := cfg.Resources[a]
	if r == nil {
		return ""
	}
	rng, ok := r.FieldRange(field)
	if field == "" || !ok {
		rng = r.NameRange
	}
	if rng.Empty() {
		rng = r.Range
	}
	if rng.Empty() {
		return ""
	}
	return rng.String() + ": "
}

// problemAt records a problem about the resource at addr, prefixed with
// where it is written, so that every plan error about a resource names
// its file and line. field ("resources", "fleets[1]") narrows the place;
// "" points at the resource's name.
func (m *maker) problemAt(addr, field, format string, args ...any) {
	m.problem("%s%s", where(m.in.Config, addr, field), fmt.Sprintf(format, args...))
}

// missingFleets reports, as problems at the fleets field, the fleets a
// run names that this plan cannot place it on: a fleet neither declared
// in the configuration nor in the state, or one only in the state that
// this plan tears down. It returns false when there was any.
//
// A fleet may legitimately be missing from the configuration: one applied
// earlier from other files (`apply -f fleet.dstack.yml`) is in the state,
// and `apply -f task.dstack.yml` targets the task only, so the fleet stays.
// Validation can only warn about such a name; this is where it fails.
func (m *maker) missingFleets(addr string, prof *lang.Profile) bool {
	ok := true
	for i, name := range prof.Fleets {
		fa := lang.Address{Kind: lang.KindFleet, Name: name}
		if m.in.Mode != Destroy && m.in.Config.Resources[fa] != nil {
			continue
		}
		field := fmt.Sprintf("fleets[%d]", i)
		if m.in.Prior.Resource(fa.String()) == nil {
			m.problemAt(addr, field, "%s: fleet %q is neither declared in the configuration nor in the state; declare it, or apply the files that declare it first", addr, name)
			ok = false
			continue
		}
		if slices.ContainsFunc(m.plan.Changes, func(c *Change) bool { return c.Address == fa.String() && c.Action == Delete }) {
			m.problemAt(addr, field, "%s: fleet %q is only in the state, and this plan tears it down since the configuration does not declare it; declare it, or plan this run alone with -target %s", addr, name, addr)
			ok = false
		}
	}
	return ok
}
