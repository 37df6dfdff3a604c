package state

import "testing"

func TestTokensRoundTrip(t *testing.T) {
	s := New("test")
	s.Tokens = []Token{{Name: "ci", Hash: "ab12", Created: "2026-01-02T03:04:05Z"}}
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tokens) != 1 || got.Tokens[0] != s.Tokens[0] {
		t.Fatalf("tokens read back: %+v", got.Tokens)
	}
	if c := got.Clone(); len(c.Tokens) != 1 {
		t.Fatalf("clone lost the tokens")
	}
}
