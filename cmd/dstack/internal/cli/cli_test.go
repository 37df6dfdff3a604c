package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(args, Streams{Stdin: bytes.NewReader(nil), Stdout: &out, Stderr: &errb}, []string{"NO_COLOR=1"})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	ugly := filepath.Join(dir, "a.dstack.hcl")
	if err := os.WriteFile(ugly, []byte("task \"a\" {\nimage=\"x\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "b.dstack.yml")
	if err := os.WriteFile(bad, []byte("type: task\nimage: x\nnodes: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"fmt -check on an unformatted file", []string{"fmt", "-check", dir}, ExitChanged},
		{"validate a valid file", []string{"validate", "-f", ugly}, ExitOK},
		{"validate an invalid file", []string{"validate", "-f", bad}, ExitInvalid},
		{"unknown flag", []string{"validate", "-nope"}, ExitInvalid},
		{"help", []string{"validate", "-h"}, ExitOK},
		{"no command", nil, ExitInvalid},
		{"missing directory", []string{"validate", filepath.Join(dir, "missing")}, ExitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.want {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.want, stdout, stderr)
			}
		})
	}
	// fmt -check wrote nothing; fmt then fixes the file.
	if code, _, _ := run(t, "fmt", dir); code != ExitOK {
		t.Fatalf("fmt exit %d", code)
	}
	if code, _, _ := run(t, "fmt", "-check", dir); code != ExitOK {
		t.Errorf("fmt -check after fmt: exit %d, want 0", code)
	}
}
