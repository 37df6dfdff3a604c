package load

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileTooLarge: a configuration file over MaxFileSize is refused with
// an error that names it and the limit, and is not read (its contents are
// not among the sources a saved plan keeps).
func TestFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.dstack.yml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("type: task\nname: big\ncommands: [x]\n#"); err != nil {
		t.Fatal(err)
	}
	// Sparse: the rest reads as NUL bytes, but is never read.
	if err := f.Truncate(50 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ok := filepath.Join(dir, "ok.dstack.yml")
	if err := os.WriteFile(ok, []byte("type: task\nname: ok\ncommands: [x]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Files([]string{big, ok}, Options{})
	if len(diags) != 1 || diags[0].Summary != "Configuration file too large" {
		t.Fatalf("diagnostics: %v", diags)
	}
	if d := diags[0].Detail; !strings.Contains(d, big) || !strings.Contains(d, "50.0 MiB") || !strings.Contains(d, "at most 10 MiB") {
		t.Fatalf("detail does not name the file, its size and the limit: %q", d)
	}
	if _, read := cfg.Sources[big]; read {
		t.Fatal("the refused file's contents are among the sources")
	}
	if len(cfg.Resources) != 1 {
		t.Fatalf("the other file's resources: %d, want 1", len(cfg.Resources))
	}
}

// TestBinaryFile: a binary file gives one diagnostic saying so, at its
// first NUL byte, instead of one per byte the parsers cannot read.
func TestBinaryFile(t *testing.T) {
	dir := t.TempDir()
	src := []byte("\x7fELF\x02\x01\x01\x00\x00\x00{}[]\"\n\xff\xfe" + strings.Repeat("\x01\x00\x1b#", 500))
	for _, name := range []string{"a.dstack.yml", "a.dstack.hcl"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		_, diags := Files([]string{p}, Options{})
		if len(diags) != 1 || diags[0].Summary != "Configuration file is not text" {
			t.Fatalf("%s: %d diagnostics, first %v", name, len(diags), diags[0])
		}
		if s := diags[0].Subject; s == nil || s.Start.Line != 1 || s.Start.Column != 8 || s.Start.Byte != 7 {
			t.Fatalf("%s: subject %v, want the first NUL at 1:8", name, diags[0].Subject)
		}
	}
}
