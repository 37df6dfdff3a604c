package lang_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dstackai/dstack-go/lang"
)

// FuzzWriteText renders a diagnostic at any place of any source: it must
// not panic, the text must hold no control character but newlines and be
// UTF-8, its snippet must stay within the window's width, and the JSON
// highlight must lie within the JSON code.
func FuzzWriteText(f *testing.F) {
	for _, seed := range []struct {
		src              string
		line, col, start int
		end              int
	}{
		{"type: task\nname: x\n", 2, 7, 17, 18},
		{"\x7fELF\x02\x00\x00\xff\xfe\n", 1, 1, 0, 1},
		{strings.Repeat("x,", 500) + "bogus", 1, 1001, 1000, 1005},
		{"a\tb\r\nc", 1, 3, 2, 40},
		{"", 1, 1, 5, -3},
		{"é\u200bü", 1, 2, 2, 5},
	} {
		f.Add([]byte(seed.src), seed.line, seed.col, seed.start, seed.end, "summary \x1b[2J", "detail\x00")
	}
	f.Fuzz(func(t *testing.T, src []byte, line, col, start, end int, summary, detail string) {
		rng := lang.Range{Filename: "f.dstack.yml", Start: lang.Pos{Line: line, Column: col, Byte: start},
			End: lang.Pos{Line: line, Column: col + 1, Byte: end}}
		diags := lang.Diagnostics{lang.Errorf(rng, "", summary, "%s", detail)}
		sources := map[string][]byte{"f.dstack.yml": src}
		var text bytes.Buffer
		if err := lang.WriteText(&text, diags, sources, lang.TextOptions{}); err != nil {
			t.Fatal(err)
		}
		out := text.String()
		if !utf8.ValidString(out) {
			t.Fatalf("text is not UTF-8: %q", out)
		}
		for _, r := range out {
			if r < 0x20 && r != '\n' || r == 0x7f {
				t.Fatalf("text holds %U: %q", r, out)
			}
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "    ") && strings.Contains(l, " | ") && utf8.RuneCountInString(l) > 8+120*6+2 {
				t.Fatalf("snippet line of %d characters", utf8.RuneCountInString(l))
			}
		}
		var js bytes.Buffer
		if err := lang.WriteJSON(&js, diags, sources); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Diagnostics []struct {
				Snippet *struct {
					Code  string `json:"code"`
					Start int    `json:"highlight_start_offset"`
					End   int    `json:"highlight_end_offset"`
				} `json:"snippet"`
			} `json:"diagnostics"`
		}
		if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if s := doc.Diagnostics[0].Snippet; s != nil && (s.Start < 0 || s.Start > s.End || s.End > len(s.Code)) {
			t.Fatalf("highlight %d..%d outside code %q", s.Start, s.End, s.Code)
		}
	})
}
