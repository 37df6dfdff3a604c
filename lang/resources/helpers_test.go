package resources

import (
	"errors"
	"strings"
	"testing"
)

// badCase is an input that must fail with an *Error naming Token at Offset
// and a message containing Msg.
type badCase struct {
	in     string
	token  string
	offset int
	msg    string
}

func checkError(t *testing.T, err error, kind string, c badCase) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *Error", err, err)
	}
	if e.Kind != kind || e.Input != c.in || e.Token != c.token || e.Offset != c.offset || !strings.Contains(e.Msg, c.msg) {
		t.Errorf("got %#v\nwant kind %q, token %q at %d, message containing %q", e, kind, c.token, c.offset, c.msg)
	}
	checkErrorInvariants(t, c.in, err)
}

// checkErrorInvariants checks what holds for every error of a parser: it is
// an *Error about the input whose token lies in the input at its offset.
func checkErrorInvariants(t *testing.T, in string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *Error", err, err)
	}
	if e.Input != in {
		t.Errorf("Input = %q, want %q", e.Input, in)
	}
	if e.Offset < 0 || e.Offset+len(e.Token) > len(in) || in[e.Offset:e.Offset+len(e.Token)] != e.Token {
		t.Errorf("token %q at %d is not in %q", e.Token, e.Offset, in)
	}
	if e.Msg == "" || e.Msg != strings.ToLower(e.Msg[:1])+e.Msg[1:] || strings.HasSuffix(e.Msg, ".") {
		t.Errorf("message %q: want lower case, no trailing period", e.Msg)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
