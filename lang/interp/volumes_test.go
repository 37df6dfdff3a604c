package interp_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

// TestLinkVolumes: a distributed task mounting data-${{ dstack.node_rank }}
// depends on each of its jobs' volumes that the configuration declares.
func TestLinkVolumes(t *testing.T) {
	dir := t.TempDir()
	src := `type: volume
name: data-0
backend: local
region: local
size: 10GB
---
type: volume
name: data-1
backend: local
region: local
size: 10GB
---
type: volume
name: data-2
backend: local
region: local
size: 10GB
---
type: task
name: train
nodes: 2
commands: [x]
volumes:
  - name: data-${{ dstack.node_rank }}
    path: /data
`
	if err := os.WriteFile(filepath.Join(dir, "a.dstack.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := load.Path(dir, load.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := cfg.Resources[lang.Address{Kind: lang.KindTask, Name: "train"}]
	var got []string
	for _, d := range r.DependsOn {
		got = append(got, d.To.String()+" "+d.Reason)
		if d.Range.Start.Line != 24 {
			t.Errorf("edge to %s at line %d, want 24 (the mount)", d.To, d.Range.Start.Line)
		}
	}
	if diff := cmp.Diff([]string{"volume.data-0 volumes", "volume.data-1 volumes"}, got); diff != "" {
		t.Fatalf("edges (-want +got):\n%s", diff)
	}
}
