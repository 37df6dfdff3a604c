package lang_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dstackai/dstack-go/lang"
)

// TestSnippetLongLine: a diagnostic on a line of megabytes (a minified
// file) shows a window around its subject, not the line, in both forms.
func TestSnippetLongLine(t *testing.T) {
	const pad = 5 << 20
	src := []byte("{type: task, commands: [" + strings.Repeat("x,", pad/2) + "x], bogus: 1}\n")
	at := bytes.Index(src, []byte("bogus"))
	rng := lang.Range{Filename: "big.dstack.yml",
		Start: lang.Pos{Line: 1, Column: at + 1, Byte: at}, End: lang.Pos{Line: 1, Column: at + 6, Byte: at + 5}}
	diags := lang.Diagnostics{lang.Errorf(rng, "bogus", `Unsupported field "bogus"`, "No such field.")}
	sources := map[string][]byte{"big.dstack.yml": src}

	var text bytes.Buffer
	if err := lang.WriteText(&text, diags, sources, lang.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if text.Len() > 1000 {
		t.Fatalf("a diagnostic on a %d-byte line wrote %d bytes", len(src), text.Len())
	}
	lines := strings.Split(text.String(), "\n")
	var code, carets string
	for i, l := range lines {
		if strings.HasPrefix(l, "    1 | ") {
			code, carets = l, lines[i+1]
		}
	}
	if !strings.HasPrefix(code, "    1 | …x,x,") || !strings.HasSuffix(code, "x], bogus: 1}") {
		t.Fatalf("snippet line is not a window around the subject: %q", code)
	}
	// The carets stand under "bogus".
	col := strings.Index(carets, "^")
	if col < 0 || string([]rune(code)[col:col+5]) != "bogus" || strings.Count(carets, "^") != 5 {
		t.Fatalf("carets do not underline the subject:\n%s\n%s", code, carets)
	}

	var js bytes.Buffer
	if err := lang.WriteJSON(&js, diags, sources); err != nil {
		t.Fatal(err)
	}
	if js.Len() > 2000 {
		t.Fatalf("the JSON form of a diagnostic on a %d-byte line has %d bytes", len(src), js.Len())
	}
	var out struct {
		Diagnostics []struct {
			Snippet struct {
				Code  string `json:"code"`
				Start int    `json:"highlight_start_offset"`
				End   int    `json:"highlight_end_offset"`
			} `json:"snippet"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	s := out.Diagnostics[0].Snippet
	if got := s.Code[s.Start:s.End]; got != "bogus" {
		t.Fatalf("JSON highlight is %q in %q, want bogus", got, s.Code)
	}
}

// TestSnippetBinary: control characters and bytes that are not UTF-8
// are escaped, in the snippet and in messages that quote them, so that
// nothing a terminal acts on is written.
func TestSnippetBinary(t *testing.T) {
	src := []byte("\x7fELF\x02\x01\x01\x00\x00\x1b[2J\xd0\xff" + strings.Repeat("\x00", 3000) + "\n")
	rng := lang.Range{Filename: "bin.dstack.yml", Start: lang.Pos{Line: 1, Column: 1, Byte: 0}, End: lang.Pos{Line: 1, Column: 2, Byte: 1}}
	diags := lang.Diagnostics{lang.Errorf(rng, "", "Invalid YAML \x1b[31mred", "found character \x00 that cannot start any token")}
	var text bytes.Buffer
	if err := lang.WriteText(&text, diags, map[string][]byte{"bin.dstack.yml": src}, lang.TextOptions{Width: 200}); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	if !utf8.ValidString(out) {
		t.Fatalf("output is not UTF-8: %q", out)
	}
	for _, r := range out {
		if r < 0x20 && r != '\n' || r == 0x7f {
			t.Fatalf("output holds control character %U: %q", r, out)
		}
	}
	for _, want := range []string{`\x7fELF\x02\x01\x01\x00\x00\x1b[2J\xd0\xff\x00`, "…", `Invalid YAML \x1b[31mred`, `found character \x00 that`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(out) > 1000 {
		t.Errorf("a diagnostic on a binary line wrote %d bytes", len(out))
	}
	// One caret per column of the escape shown for the subject, \x7f.
	if !strings.Contains(out, "  | ^^^^\n") {
		t.Errorf("carets do not underline the escaped subject:\n%s", out)
	}
}
