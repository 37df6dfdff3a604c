package hclconf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dstackai/dstack-go/lang"
)

// FuzzLoad feeds arbitrary bytes through the HCL front-end (parsing,
// variables, locals, references) and the decoder. Nothing may panic and
// every diagnostic must point inside the input.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*/*.hcl")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`locals { a = local.b
 b = local.a }
task "x" { commands = [local.a] }`))
	f.Add([]byte(`variable "v" { default = 1 }
fleet "f" { nodes = var.v }
task "t" { fleets = [fleet.f.name] image = "x" depends_on = [fleet.f] }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		raws, diags := Load([]File{{Name: "f.dstack.hcl", Src: src}}, Options{BaseDir: t.TempDir()})
		for _, raw := range raws {
			_, ds := lang.DecodeResource(raw)
			diags = append(diags, ds...)
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Errorf("diagnostic without summary: %+v", d)
			}
			r := d.Subject
			if r == nil || r.Filename != "f.dstack.hcl" {
				continue
			}
			if r.Start.Byte < 0 || r.Start.Byte > len(src) || r.End.Byte > len(src) || r.End.Byte < r.Start.Byte {
				t.Errorf("diagnostic %q range %+v outside input of %d bytes", d.Summary, r, len(src))
			}
		}
	})
}
