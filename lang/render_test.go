package lang_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

// TestRender renders the diagnostics of each configuration under
// testdata/render with lang.WriteText (no colour) and lang.WriteJSON and
// compares them with <config>.txt and <config>.json; -update rewrites
// those.
func TestRender(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "render", "*.dstack.*"))
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for _, in := range inputs {
		if strings.HasSuffix(in, ".txt") || strings.HasSuffix(in, ".json") {
			continue
		}
		configs = append(configs, in)
	}
	if len(configs) == 0 {
		t.Fatal("no configurations under testdata/render")
	}
	for _, in := range configs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			// A relative, slash-separated name keeps the output free of
			// the checkout's location.
			name := filepath.ToSlash(in)
			cfg, diags := load.Files([]string{name}, load.Options{})
			if !diags.HasErrors() {
				t.Fatalf("want errors, got %d diagnostics", len(diags))
			}
			var text, js bytes.Buffer
			if err := lang.WriteText(&text, diags, cfg.Sources, lang.TextOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := lang.WriteJSON(&js, diags, cfg.Sources); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text.String(), "\x1b[") {
				t.Error("text output has ANSI escapes without Color")
			}
			checkSnippets(t, js.Bytes(), cfg.Sources)
			golden(t, in+".txt", text.Bytes())
			golden(t, in+".json", js.Bytes())
		})
	}
}

// TestRenderColor checks that colour wraps the summary and the carets and
// changes nothing else.
func TestRenderColor(t *testing.T) {
	src := []byte("type: task\nname: c\ncommands: [x]\nports: [0]\n")
	rng := lang.Range{Filename: "c.yml", Start: lang.Pos{Line: 4, Column: 9, Byte: 41}, End: lang.Pos{Line: 4, Column: 10, Byte: 42}}
	diags := lang.Diagnostics{
		lang.Errorf(rng, "ports[0]", "Invalid port", "Bad."),
		lang.Warnf(rng, "ports[0]", "Odd port", ""),
	}
	sources := map[string][]byte{"c.yml": src}
	var plain, color bytes.Buffer
	if err := lang.WriteText(&plain, diags, sources, lang.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lang.WriteText(&color, diags, sources, lang.TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\x1b[1m\x1b[31mError: Invalid port\x1b[0m", "\x1b[1m\x1b[33mWarning: Odd port\x1b[0m", "\x1b[31m        ^\x1b[0m"} {
		if !strings.Contains(color.String(), want) {
			t.Errorf("coloured output lacks %q:\n%s", want, color.String())
		}
	}
	stripped := color.String()
	for _, esc := range []string{"\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[0m"} {
		stripped = strings.ReplaceAll(stripped, esc, "")
	}
	if diff := cmp.Diff(plain.String(), stripped); diff != "" {
		t.Errorf("colour changed more than colours (-plain +stripped):\n%s", diff)
	}
}

// checkSnippets checks that each JSON snippet's highlight is the
// diagnostic's subject: the offsets are bytes into the code line.
func checkSnippets(t *testing.T, doc []byte, sources map[string][]byte) {
	t.Helper()
	var out struct {
		Diagnostics []struct {
			Range   *lang.Range
			Snippet *struct {
				Code                 string
				HighlightStartOffset int `json:"highlight_start_offset"`
				HighlightEndOffset   int `json:"highlight_end_offset"`
			}
		}
	}
	if err := json.Unmarshal(doc, &out); err != nil {
		t.Fatal(err)
	}
	for i, d := range out.Diagnostics {
		if d.Range == nil || d.Snippet == nil || d.Range.Start.Line != d.Range.End.Line {
			continue
		}
		s := d.Snippet
		got := s.Code[s.HighlightStartOffset:s.HighlightEndOffset]
		want := string(sources[d.Range.Filename][d.Range.Start.Byte:d.Range.End.Byte])
		if got != want {
			t.Errorf("diagnostic %d: snippet highlights %q, subject is %q", i, got, want)
		}
	}
}

// golden compares got with the file at path, or rewrites the file when
// updating.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
