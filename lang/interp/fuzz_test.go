package interp

import (
	"strings"
	"testing"
)

// FuzzExpand: the parser never panics, every reference it finds spans a
// `${{ ... }}` of the input with a valid name, and any
// text with every $ doubled expands to the text itself.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "${{ secrets.a }}", "$${{ x }}", "a $ b $$ c", "${{", "${{ a.b }", "${{a.b}}}}", "$$$${{ env.X }}", "${{ a.b.c }}", "é${{ run.args }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs, err := Refs(s)
		if err != nil {
			if _, _, err2 := Expand(s, func(Ref) (string, bool) { return "", true }); err2 == nil {
				t.Fatalf("Refs(%q) failed (%v) but Expand did not", s, err)
			}
			return
		}
		for _, r := range refs {
			if r.Start < 0 || r.End > len(s) || r.Start >= r.End {
				t.Fatalf("ref %v spans [%d,%d) of %d bytes", r, r.Start, r.End, len(s))
			}
			text := s[r.Start:r.End]
			if !strings.HasPrefix(text, opening) || !strings.HasSuffix(text, closing) {
				t.Fatalf("ref %v spans %q", r, text)
			}
			if strings.TrimSpace(text[len(opening):len(text)-len(closing)]) != r.String() {
				t.Fatalf("ref %v spans %q", r, text)
			}
		}
		none, missing, err := Expand(s, func(Ref) (string, bool) { return "", false })
		if err != nil || len(missing) != len(refs) {
			t.Fatalf("Expand(%q): %d missing, err %v; Refs found %d", s, len(missing), err, len(refs))
		}
		if len(none) > len(s) {
			t.Fatalf("expanding to nothing grew %q to %q", s, none)
		}
		if !strings.Contains(s, "$") && none != s {
			t.Fatalf("text without $ changed: %q → %q", s, none)
		}
		// Any text escaped ($ doubled) expands to itself, with no
		// references: how a value is written to be taken literally.
		lit, missing, err := Expand(strings.ReplaceAll(s, "$", "$$"), func(Ref) (string, bool) { return "X", true })
		if err != nil || len(missing) != 0 || lit != s {
			t.Fatalf("escaped %q expands to %q, %v, %v", s, lit, missing, err)
		}
	})
}
