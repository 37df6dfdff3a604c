// Package interp implements dstack's `${{ namespace.name }}` references in
// run configurations: the parser (Refs, Expand), which fields take which
// namespaces (Check, for diagnostics with file and line at load time),
// and the expansion of a job's configuration when the job is made
// (ExpandSpec).
//
// The grammar is dstack's: `${{` opens a reference and the next `}}`
// closes it; the name between them, spaces around it trimmed, is
// `namespace.name` with exactly one dot, each part starting with a letter
// or an underscore and going on with letters, digits and underscores.
// `$$` is an escaped `$`, so `$${{ x }}` is the literal text `${{ x }}`;
// any other `$` is itself. The namespaces are:
//
//   - secrets: the team's secrets (dstack secret set), in env values and
//     registry_auth;
//   - env: the run's own environment, in registry_auth, service probes
//     and (beyond dstack) other env values;
//   - dstack: the job's place in the run (node_rank and its alias
//     job_num in volume names; node_rank, job_num, nodes_num, gpus_num
//     and gpus_per_node in env values);
//   - run: the run's arguments (run.args, in commands), empty since
//     dstack apply passes a run none.
//
// What the package leaves to others: where the secrets come from and
// where the job's numbers are known (the planner, when it makes each
// job), and masking the values (lang's sensitive values, the CLI's
// scrubbers).
package interp

import (
	"fmt"
	"strings"
)

// Ref is one `${{ namespace.name }}` reference in a string.
type Ref struct {
	Namespace string
	Name      string
	// Start and End are the byte offsets of the reference's `${{` and
	// just after its `}}`.
	Start, End int
}

// String is the reference's name as written without spaces:
// "secrets.hf_token".
func (r Ref) String() string { return r.Namespace + "." + r.Name }

// SyntaxError is a string that does not follow the grammar. Its message
// quotes the reference's name, never the text around it, which may be a
// secret.
type SyntaxError struct {
	// Offset is the byte offset of the `${{` at fault.
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return e.Msg }

const (
	opening = "${{"
	closing = "}}"
)

// scan walks s, calling text for each run of literal text (escapes
// resolved) and ref for each reference, in order. It stops at the first
// syntax error.
func scan(s string, text func(string), ref func(Ref)) error {
	start := 0 // start of the literal text not yet given to text
	i := 0
	for i < len(s) {
		d := strings.IndexByte(s[i:], '$')
		if d < 0 {
			break
		}
		i += d
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			// An escaped dollar: the text up to and with the first.
			text(s[start : i+1])
			i += 2
			start = i
		case strings.HasPrefix(s[i:], opening):
			text(s[start:i])
			inner := s[i+len(opening):]
			c := strings.Index(inner, closing)
			if c < 0 {
				return &SyntaxError{Offset: i, Msg: "a ${{ reference has no closing }}"}
			}
			name := strings.TrimSpace(inner[:c])
			ns, n, ok := splitName(name)
			if !ok {
				return &SyntaxError{Offset: i, Msg: fmt.Sprintf("illegal reference name %q: a reference is ${{ namespace.name }}, each part a letter or underscore followed by letters, digits and underscores", name)}
			}
			end := i + len(opening) + c + len(closing)
			ref(Ref{Namespace: ns, Name: n, Start: i, End: end})
			i, start = end, end
		default:
			i++
		}
	}
	text(s[start:])
	return nil
}

// splitName checks a reference's name as dstack does: exactly one dot,
// both parts non-empty identifiers.
func splitName(name string) (ns, n string, ok bool) {
	ns, n, found := strings.Cut(name, ".")
	if !found || !ident(ns) || !ident(n) {
		return "", "", false
	}
	return ns, n, true
}

func ident(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Refs returns the references in s, in order.
func Refs(s string) ([]Ref, error) {
	if !strings.Contains(s, "$") {
		return nil, nil
	}
	var out []Ref
	err := scan(s, func(string) {}, func(r Ref) { out = append(out, r) })
	return out, err
}

// Expand replaces each reference in s by what lookup gives for it and
// resolves the `$$` escapes. References lookup does not know are left
// out of the result and returned, in order, as missing; the caller
// decides whether that is an error (dstack's interpolate_or_error).
func Expand(s string, lookup func(Ref) (string, bool)) (out string, missing []Ref, err error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	err = scan(s, func(t string) { b.WriteString(t) }, func(r Ref) {
		if v, ok := lookup(r); ok {
			b.WriteString(v)
			return
		}
		missing = append(missing, r)
	})
	if err != nil {
		return "", nil, err
	}
	return b.String(), missing, nil
}
