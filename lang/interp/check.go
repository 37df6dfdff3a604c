package interp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
)

// Problem is a reference that is wrong where it is written.
type Problem struct {
	// Path is the field in the configuration's encoding ("env.TOKEN",
	// "registry_auth.password", "commands[1]").
	Path    string
	Summary string
	Detail  string
}

// Use is one reference, where it is written.
type Use struct {
	Path string
	Ref  Ref
}

// CheckSpec checks the references in an encoded configuration: their
// syntax, that each field names only namespaces dstack interpolates
// there, and the names of the env, dstack and run namespaces. run says
// whether it is a run's (a task's, service's or dev environment's)
// configuration; nothing else takes references. Secrets' names are
// checked against the stored secrets by the planner, which has them.
func CheckSpec(raw []byte, run bool) ([]Problem, []Use, error) {
	if !bytes.Contains(raw, []byte(opening)) {
		return nil, nil, nil // no reference, nor a broken one
	}
	doc, err := decodeDoc(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the configuration: %w", err)
	}
	env := envOf(doc)
	envNames := sortedKeys(env)
	var probs []Problem
	var uses []Use
	for _, l := range leaves(doc) {
		refs, err := Refs(l.value)
		if err != nil {
			probs = append(probs, Problem{Path: l.path, Summary: "Invalid reference in " + l.path,
				Detail: err.Error() + ". Write $$ for a literal $ (in HCL, $${{ for ${{)."})
			continue
		}
		var r rule
		if run {
			r = ruleFor(l.path, envNames)
		}
		for _, ref := range refs {
			if p, ok := checkRef(l.path, ref, r); !ok {
				probs = append(probs, p)
				continue
			}
			uses = append(uses, Use{Path: l.path, Ref: ref})
		}
	}
	if run {
		// A cycle of env values referring to each other.
		stub := func(Ref) (string, bool) { return "", true }
		if _, err := resolveEnv(env, stub, func(string) (string, bool) { return "", true }); err != nil {
			var ee *Error
			if asError(err, &ee) && ee.cycle {
				probs = append(probs, Problem{Path: ee.Path, Summary: "Invalid reference in " + ee.Path, Detail: ee.Msg + "."})
			} else if !asError(err, &ee) {
				return nil, nil, err
			}
		}
	}
	return probs, uses, nil
}

func checkRef(path string, ref Ref, r rule) (Problem, bool) {
	if !slices.Contains(namespaces, ref.Namespace) {
		detail := fmt.Sprintf("${{ %s }} names no namespace dstack knows: a reference is ${{ secrets.NAME }}, ${{ env.NAME }}, ${{ dstack.NAME }} or ${{ run.NAME }}. Write $${{ for a literal ${{.", ref)
		if sug := suggest(ref.Namespace, namespaces); sug != "" {
			detail = fmt.Sprintf("Did you mean %s.%s? ", sug, ref.Name) + detail
		}
		return Problem{Path: path, Summary: fmt.Sprintf("Unknown namespace %q in %s", ref.Namespace, path), Detail: detail}, false
	}
	names, ok := r[ref.Namespace]
	if !ok {
		detail := fmt.Sprintf("dstack interpolates %s references in %s only.", ref.Namespace, fieldsTaking[ref.Namespace])
		if ref.Namespace == NSSecrets && (strings.HasPrefix(path, "commands[") || strings.HasPrefix(path, "init[")) {
			detail = fmt.Sprintf("A secret reaches a run through env or registry_auth only: add env MY_VAR=${{ %s }} and use $MY_VAR in the command.", ref)
		}
		return Problem{Path: path, Summary: fmt.Sprintf("${{ %s }} is not interpolated in %s", ref, path), Detail: detail}, false
	}
	if names != nil && !slices.Contains(names, ref.Name) {
		detail := fmt.Sprintf("Here the %s namespace has: %s.", ref.Namespace, strings.Join(names, ", "))
		switch ref.Namespace {
		case NSEnv:
			detail = fmt.Sprintf("The run's env has no %s: add it to env (written bare, it takes its value from the environment dstack runs in).", ref.Name)
		case NSDstack:
			if slices.Contains(jobNames, ref.Name) {
				detail = fmt.Sprintf("dstack.%s is interpolated in env values; volume names take %s.", ref.Name, strings.Join(names, " and "))
			}
		}
		if sug := suggest(ref.Name, names); sug != "" {
			detail = fmt.Sprintf("Did you mean %s.%s? ", ref.Namespace, sug) + detail
		}
		return Problem{Path: path, Summary: fmt.Sprintf("Unknown reference %s in %s", ref, path), Detail: detail}, false
	}
	return Problem{}, true
}

// Check checks the references in a loaded resource and returns a
// diagnostic, at the field's place in its file, for each problem (see
// CheckSpec).
func Check(r *lang.Resource) lang.Diagnostics {
	raw, err := json.Marshal(r.Spec)
	if err != nil {
		return lang.Diagnostics{lang.Errorf(r.Range, "", "Cannot check references", "%s: %v.", r.Address, err)}
	}
	probs, _, err := CheckSpec(raw, r.Address.Kind.IsRun())
	if err != nil {
		return lang.Diagnostics{lang.Errorf(r.Range, "", "Cannot check references", "%s: %v.", r.Address, err)}
	}
	var diags lang.Diagnostics
	for _, p := range probs {
		diags = append(diags, lang.Errorf(FieldRange(r, p.Path), p.Path, p.Summary, "%s: %s", r.Address, p.Detail))
	}
	return diags
}

// FieldRange is where the field at path of r was written: an env
// variable's item or entry, else the field, else the nearest enclosing
// field, else the resource's name.
func FieldRange(r *lang.Resource, path string) lang.Range {
	if name, ok := strings.CutPrefix(path, "env."); ok {
		if rc := runConfig(r.Spec); rc != nil {
			for _, v := range rc.Env {
				if v.Name == name && !v.Range.Empty() {
					return v.Range
				}
			}
		}
	}
	for p := path; p != ""; {
		if rng, ok := r.FieldRange(p); ok && !rng.Empty() {
			return rng
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if !r.NameRange.Empty() {
		return r.NameRange
	}
	return r.Range
}

func runConfig(s lang.Spec) *lang.RunConfig {
	switch x := s.(type) {
	case *lang.Task:
		return &x.RunConfig
	case *lang.Service:
		return &x.RunConfig
	case *lang.DevEnvironment:
		return &x.RunConfig
	}
	return nil
}

// suggest is lang.Suggest for names of any case (env variables are
// upper case).
func suggest(name string, candidates []string) string {
	lower := make([]string, len(candidates))
	for i, c := range candidates {
		lower[i] = strings.ToLower(c)
	}
	if sug := lang.Suggest(name, lower); sug != "" {
		return candidates[slices.Index(lower, sug)]
	}
	return ""
}
