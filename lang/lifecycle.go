package lang

import (
	"fmt"
	"reflect"
	"slices"
)

// Lifecycle holds Terraform-style lifecycle settings of a resource,
// written in HCL as a `lifecycle` block.
type Lifecycle struct {
	// PreventDestroy makes any plan that would delete or replace the
	// resource fail.
	PreventDestroy bool
	// CreateBeforeDestroy overrides the kind's default order of a
	// replacement; nil keeps the default (services roll: new replicas
	// first; everything else is deleted first).
	CreateBeforeDestroy *bool
	// IgnoreChanges lists top-level fields whose changes the planner
	// ignores, or just "all".
	IgnoreChanges      []string
	IgnoreChangesRange Range
	Range              Range
}

// Ignores reports whether changes to a top-level field are ignored.
func (l Lifecycle) Ignores(field string) bool {
	return slices.Contains(l.IgnoreChanges, "all") || slices.Contains(l.IgnoreChanges, field)
}

func checkIgnoreChanges(k Kind, lc *Lifecycle) Diagnostics {
	var diags Diagnostics
	known := FieldNames(reflect.TypeOf(NewSpec(k)).Elem())
	for _, f := range lc.IgnoreChanges {
		if f == "all" || (slices.Contains(known, f) && f != "type" && f != "name") {
			continue
		}
		detail := fmt.Sprintf("A %s has no field %q.", k, f)
		if s := Suggest(f, known); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, Errorf(lc.IgnoreChangesRange, "lifecycle.ignore_changes", "Invalid ignore_changes entry", "%s", detail))
	}
	return diags
}
