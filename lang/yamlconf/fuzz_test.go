package yamlconf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dstackai/dstack-go/lang"
)

// FuzzParse feeds arbitrary bytes through the YAML front-end and the
// decoder. Nothing may panic, and every diagnostic must point inside the
// input.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*/*.yml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("type: task\ncommands: [echo]\nresources: {gpu: 'A100:2'}\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\n<<: *x\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		raws, diags := Parse("f.dstack.yml", src)
		for _, raw := range raws {
			_, ds := lang.DecodeResource(raw)
			diags = append(diags, ds...)
		}
		for _, d := range diags {
			checkRange(t, d, len(src))
		}
	})
}

func checkRange(t *testing.T, d *lang.Diagnostic, size int) {
	t.Helper()
	if d.Summary == "" {
		t.Errorf("diagnostic without summary: %+v", d)
	}
	r := d.Subject
	if r == nil {
		return
	}
	if r.Start.Byte < 0 || r.Start.Byte > size || r.End.Byte > size || r.End.Byte < r.Start.Byte {
		t.Errorf("diagnostic %q range %+v outside input of %d bytes", d.Summary, r, size)
	}
	if r.Start.Line < 1 || r.Start.Column < 1 {
		t.Errorf("diagnostic %q has no position: %+v", d.Summary, r)
	}
}
