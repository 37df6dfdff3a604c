package resources

import (
	"fmt"
	"strings"
	"unicode"
)

// Error is a grammar error. It names the token that is wrong and where it
// starts within the input, so a caller can point a diagnostic at the exact
// column.
type Error struct {
	Kind   string // what was parsed: "gpu spec", "cpu spec", "disk spec", "memory size", "memory range", "range" or "name list"
	Input  string // the whole string that was parsed
	Token  string // the offending token ("" when the whole input is at fault, or the token is empty)
	Offset int    // byte offset of Token within Input
	Msg    string // lower case, no trailing punctuation
}

// Error formats e as, for example,
// `invalid gpu spec "A100:2:4": token "4": count given twice (first "2")`.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s %q: ", e.Kind, e.Input)
	switch {
	case e.Token != "":
		fmt.Fprintf(&b, "token %q: ", e.Token)
	case e.Offset > 0:
		fmt.Fprintf(&b, "at offset %d: ", e.Offset)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// fault is an error found by the internal parsers, located within the
// string they were given; off < 0 means the whole string is at fault. The
// exported functions turn it into an *Error, and a parser working on a token
// of a larger string relocates it with in.
type fault struct {
	tok string
	off int
	msg string
}

func faultf(format string, args ...any) *fault {
	return &fault{off: -1, msg: fmt.Sprintf(format, args...)}
}

func (t token) faultf(format string, args ...any) *fault {
	return &fault{tok: t.text, off: t.off, msg: fmt.Sprintf(format, args...)}
}

// in relocates f, found while parsing token t, to the string t came from: a
// fault in the whole token becomes a fault in the token.
func (f *fault) in(t token) *fault {
	if f.off < 0 {
		return &fault{tok: t.text, off: t.off, msg: f.msg}
	}
	return &fault{tok: f.tok, off: t.off + f.off, msg: f.msg}
}

func (f *fault) err(kind, input string) *Error {
	e := &Error{Kind: kind, Input: input, Token: f.tok, Offset: f.off, Msg: f.msg}
	if f.off < 0 {
		e.Token, e.Offset = "", 0
	}
	return e
}

// token is a piece of an input and its byte offset in that input.
type token struct {
	text string
	off  int
}

// split cuts s around sep into at most n pieces (all of them if n < 0) and
// trims white space around each; a token's offset is that of its first
// non-space byte.
func split(s, sep string, n int) []token {
	var ts []token
	for off := 0; ; {
		part, _, found := strings.Cut(s[off:], sep)
		if len(ts) == n-1 {
			part, found = s[off:], false
		}
		text := strings.TrimLeftFunc(part, unicode.IsSpace)
		ts = append(ts, token{strings.TrimRightFunc(text, unicode.IsSpace), off + len(part) - len(text)})
		if !found {
			return ts
		}
		off += len(part) + len(sep)
	}
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func hasLetter(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x80 && isLetter(byte(r)) }) >= 0
}
