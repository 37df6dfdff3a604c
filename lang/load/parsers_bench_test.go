package load

import (
	"bytes"
	"os"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.yaml.in/yaml/v4"

	"github.com/dstackai/dstack-go/lang/load/loadtest"
)

// BenchmarkParsersAlone runs only the two parser libraries over the same
// files as BenchmarkLoad1000Resources100Files: the floor under a load, for
// telling our cost from theirs.
func BenchmarkParsersAlone(b *testing.B) {
	files := loadtest.WriteLargeConfig(b, b.TempDir(), 100, 10)
	srcs := make([][]byte, len(files))
	for i, f := range files {
		var err error
		if srcs[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, f := range files {
			if IsHCL(f) {
				if _, diags := hclsyntax.ParseConfig(srcs[i], f, hcl.InitialPos); diags.HasErrors() {
					b.Fatal(diags)
				}
				continue
			}
			dec := yaml.NewDecoder(bytes.NewReader(srcs[i]))
			for {
				var n yaml.Node
				if dec.Decode(&n) != nil {
					break
				}
			}
		}
	}
}
