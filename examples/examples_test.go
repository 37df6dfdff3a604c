// Package examples holds runnable configurations; this test loads every
// one of them so that an example can never rot.
package examples

import (
	"os"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

func TestExamplesLoad(t *testing.T) {
	dirs, err := load.ConfigDirs(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 12 {
		t.Fatalf("found %d example configurations, want at least 12", len(dirs))
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			cfg, diags := load.Path(dir, load.Options{Environ: os.Environ()})
			if len(diags) > 0 {
				t.Fatalf("%s: %v", dir, diags[0].Error())
			}
			if len(cfg.Resources) == 0 {
				t.Fatalf("%s declares no resources", dir)
			}
			for _, r := range cfg.Resources {
				seen[string(r.Address.Kind)+"/"+r.Syntax] = true
			}
		})
	}
	for _, k := range lang.Kinds {
		if !seen[string(k)+"/yaml"] {
			t.Errorf("no YAML example of kind %s", k)
		}
	}
	for _, k := range lang.Kinds {
		if !seen[string(k)+"/hcl"] {
			t.Errorf("no HCL example of kind %s", k)
		}
	}
}
