package lang

import (
	"fmt"
	"strings"

	"github.com/agnivade/levenshtein"

	"github.com/dstackai/dstack-go/lang/resources"
)

// gpuNames checks the GPU names of the resources block at p against the
// names dstack knows. A name one typo away from a known one ("A10O",
// "H1OO", "RTX4900") is an error with the names it may have meant: such a
// name matches no offer, and the plan would say so only later and with no
// place in the file. Any other unknown name is a warning, since new GPUs
// come out before dstack learns their names.
func (v *validator) gpuNames(p string, spec *resources.Spec) {
	if spec == nil || spec.GPU == nil {
		return
	}
	gp := p + ".gpu"
	if v.unknown(gp) || v.decodeFailed(gp) {
		return
	}
	for _, n := range spec.GPU.Names {
		if resources.KnownGPU(n) {
			continue
		}
		rng := v.tokenRange(gp, n)
		if near := nearGPUs(n); len(near) > 0 {
			v.diags = append(v.diags, Errorf(rng, gp, fmt.Sprintf("Unknown GPU %q", n),
				"Did you mean %s? %q is one typo away from a GPU dstack knows, and no offer would match it.", orList(near), n))
			continue
		}
		v.diags = append(v.diags, Warnf(rng, gp, fmt.Sprintf("Unknown GPU %q", n),
			"dstack does not know this GPU name, so its offers catalog has no machine with it; only offers and hosts that report exactly this name will match. Check the spelling (known names include H100, A100, L40S, MI300X, v5p-8)."))
	}
}

// nearGPUs returns the known GPU names one typo away from name: one
// character added, dropped or changed, two neighbours swapped, or letters
// written for the digits they look like (O for 0, I for 1). The threshold
// is one edit, not the third of the length that Suggest allows, because
// GPU names are short and close together: two edits from H100 are H20,
// H800 and A100, all real GPUs.
func nearGPUs(name string) []string {
	up := strings.ToUpper(name)
	look := lookalike(up)
	var exact, near []string
	for _, k := range resources.KnownGPUNames() {
		switch {
		case look == lookalike(k):
			exact = append(exact, k)
		case levenshtein.ComputeDistance(up, k) == 1 || transposed(up, k):
			near = append(near, k)
		}
	}
	if len(exact) > 0 {
		return exact
	}
	return near
}

// lookalike replaces the letters that are typed for the digits they look
// like.
func lookalike(s string) string {
	return strings.NewReplacer("O", "0", "I", "1").Replace(s)
}

// orList quotes names and joins them: `"A", "B" or "C"`.
func orList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// tokenRange is where tok is written within the value at p: the token
// itself when the value, or a scalar inside it (a mapping's name list),
// is written on one line, else the whole value.
func (v *validator) tokenRange(p, tok string) Range {
	n, _ := v.dec.lookup(p)
	if n == nil {
		return v.valueRange(p)
	}
	if s, off := findToken(n, tok); s != nil {
		return narrow(s, &resources.Error{Token: tok, Offset: off})
	}
	return n.Range
}

// findToken finds the first scalar in n holding tok as a whole token
// (between ':' or ',' separators, spaces around it allowed) and the
// token's byte offset in it.
func findToken(n *Node, tok string) (*Node, int) {
	switch n.Kind {
	case ScalarNode:
		for off := 0; off < len(n.Text); {
			i := strings.Index(n.Text[off:], tok)
			if i < 0 {
				break
			}
			i += off
			before := strings.TrimRight(n.Text[:i], " \t")
			after := strings.TrimLeft(n.Text[i+len(tok):], " \t")
			if (before == "" || strings.HasSuffix(before, ":") || strings.HasSuffix(before, ",")) &&
				(after == "" || after[0] == ':' || after[0] == ',') {
				return n, i
			}
			off = i + 1
		}
	case ListNode:
		for _, it := range n.Items {
			if s, off := findToken(it, tok); s != nil {
				return s, off
			}
		}
	case MapNode:
		for _, e := range n.Entries {
			if s, off := findToken(e.Value, tok); s != nil {
				return s, off
			}
		}
	}
	return nil, 0
}
