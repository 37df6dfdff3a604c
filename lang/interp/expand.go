package interp

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is a reference that cannot be expanded. Its message names the
// field and the reference, never a value.
type Error struct {
	Path string
	Msg  string
	// cycle: env values that refer to each other.
	cycle bool
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

func asError(err error, target **Error) bool { return errors.As(err, target) }

// Vars are the values a job's references take.
type Vars struct {
	// Secrets are the team's secrets by name.
	Secrets map[string]string
	// Environ looks up a bare env variable (one written without a value)
	// in the environment dstack runs in; nil: none is known.
	Environ func(string) (string, bool)
	// Dstack are the job's numbers by name (node_rank, job_num,
	// nodes_num, gpus_num, gpus_per_node).
	Dstack map[string]string
	// Run are the run's values by name (args).
	Run map[string]string
}

// Expanded is a job's configuration with its references replaced.
type Expanded struct {
	Spec json.RawMessage
	// Secrets are the values of the secrets it used, for masking.
	Secrets []string
}

// ExpandSpec replaces the references in a run's encoded configuration
// for one job. The env namespace is the run's env, each value expanded
// first (a bare variable's value from vars.Environ); a reference to a
// secret that is not set, or to anything the field does not take, is an
// *Error. A configuration without references comes back as it was.
func ExpandSpec(raw json.RawMessage, vars Vars) (Expanded, error) {
	if !strings.Contains(string(raw), "${{") && !strings.Contains(string(raw), "$$") {
		return Expanded{Spec: raw}, nil
	}
	doc, err := decodeDoc(raw)
	if err != nil {
		return Expanded{}, fmt.Errorf("reading the configuration: %w", err)
	}
	environ := vars.Environ
	if environ == nil {
		environ = func(string) (string, bool) { return "", false }
	}
	var used []string
	secret := func(name string) (string, bool) {
		v, ok := vars.Secrets[name]
		if ok {
			used = append(used, v)
		}
		return v, ok
	}
	env := envOf(doc)
	base := func(r Ref) (string, bool) {
		switch r.Namespace {
		case NSSecrets:
			return secret(r.Name)
		case NSDstack:
			v, ok := vars.Dstack[r.Name]
			return v, ok
		case NSRun:
			v, ok := vars.Run[r.Name]
			if !ok && r.Name == "args" {
				return "", true // dstack's run.args of a run given none
			}
			return v, ok
		}
		return "", false
	}
	resolved, err := resolveEnv(env, base, environ)
	if err != nil {
		return Expanded{}, err
	}
	envNames := sortedKeys(env)
	for _, l := range leaves(doc) {
		if !strings.Contains(l.value, "$") {
			continue
		}
		r := ruleFor(l.path, envNames)
		if r == nil {
			// Not a field dstack interpolates: kept as written, $$ too
			// (Check refuses a reference there when it is loaded).
			continue
		}
		var perr error
		out, missing, err := Expand(l.value, func(ref Ref) (string, bool) {
			if p, ok := checkRef(l.path, ref, r); !ok {
				if perr == nil {
					perr = &Error{Path: l.path, Msg: p.Summary}
				}
				return "", true
			}
			if ref.Namespace == NSEnv {
				v, ok := resolved[ref.Name]
				return v, ok
			}
			return base(ref)
		})
		if err != nil {
			return Expanded{}, &Error{Path: l.path, Msg: err.Error()}
		}
		if perr != nil {
			return Expanded{}, perr
		}
		if len(missing) > 0 {
			return Expanded{}, missingError(l.path, missing[0])
		}
		if strings.HasPrefix(l.path, "env.") {
			out = resolved[strings.TrimPrefix(l.path, "env.")]
		}
		l.set(out)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return Expanded{}, err
	}
	slices.Sort(used)
	return Expanded{Spec: b, Secrets: slices.Compact(used)}, nil
}

func missingError(path string, r Ref) error {
	switch r.Namespace {
	case NSSecrets:
		return &Error{Path: path, Msg: fmt.Sprintf("secret %q is not set (dstack secret set %s)", r.Name, r.Name)}
	case NSEnv:
		return &Error{Path: path, Msg: fmt.Sprintf("${{ %s }}: %s is written bare in env and is not set in the environment dstack runs in", r, r.Name)}
	}
	return &Error{Path: path, Msg: fmt.Sprintf("${{ %s }} has no value for this job", r)}
}

// resolveEnv expands the run's env values: base answers the secrets,
// dstack and run namespaces; an env reference is the other variable's
// expanded value, a bare variable's from environ. A cycle is an *Error.
func resolveEnv(env map[string]*string, base func(Ref) (string, bool), environ func(string) (string, bool)) (map[string]string, error) {
	out := make(map[string]string, len(env))
	state := map[string]int{} // 1: being resolved, 2: done
	var resolve func(name string, chain []string) error
	resolve = func(name string, chain []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return &Error{Path: "env." + chain[0], Msg: "env values refer to each other in a cycle: " + strings.Join(append(chain, name), " → "), cycle: true}
		}
		state[name] = 1
		v := env[name]
		if v == nil {
			if val, ok := environ(name); ok {
				out[name] = val
			}
			state[name] = 2
			return nil
		}
		var inner error
		s, missing, err := Expand(*v, func(r Ref) (string, bool) {
			if r.Namespace != NSEnv {
				return base(r)
			}
			if _, ok := env[r.Name]; !ok {
				return "", false
			}
			if err := resolve(r.Name, append(chain, name)); err != nil && inner == nil {
				inner = err
			}
			val, ok := out[r.Name]
			return val, ok
		})
		switch {
		case err != nil:
			return &Error{Path: "env." + name, Msg: err.Error()}
		case inner != nil:
			return inner
		case len(missing) > 0:
			if missing[0].Namespace == NSEnv || missing[0].Namespace == NSSecrets {
				return missingError("env."+name, missing[0])
			}
			// A namespace env values do not take: reported by the
			// field's check.
		}
		out[name] = s
		state[name] = 2
		return nil
	}
	for _, name := range sortedKeys(env) {
		if err := resolve(name, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
