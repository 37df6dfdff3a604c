package local

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidToken: validToken accepts what ^[A-Za-z0-9_-]{1,128}$ does.
func TestValidToken(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	for _, tok := range []string{
		"", "a", "A-z_09", strings.Repeat("x", 128), strings.Repeat("x", 129),
		"a b", "a/b", "a.b", "é", "tok\n", "-", "_", "Z9", "a\x00",
	} {
		if got, want := validToken(tok), re.MatchString(tok); got != want {
			t.Errorf("validToken(%q) = %v, the expression says %v", tok, got, want)
		}
	}
}
