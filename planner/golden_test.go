package planner_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/planner/render"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenBefore = `type: fleet
name: gpus
nodes: 2
resources:
  gpu: A100:8
---
type: volume
name: data
backend: aws
region: us-east-1
size: 100GB
---
type: service
name: llm
image: vllm/vllm-openai:v0.6
port: 8000
replicas: 1..2
scaling: {metric: rps, target: 10}
commands: [vllm serve meta-llama/Llama-3.1-8B]
registry_auth:
  username: bot
  password: hunter2
resources:
  gpu: A100:1
---
type: task
name: old
commands: [echo bye]
`

// goldenAfter changes each resource a different way: the fleet scales,
// the volume gets tags (in place), the service a new image (a rolling
// replacement) and a new registry password, the old task goes and a new
// dev environment comes.
const goldenAfter = `type: fleet
name: gpus
nodes: 3
resources:
  gpu: A100:8
---
type: volume
name: data
backend: aws
region: us-east-1
size: 100GB
tags: {team: ml}
---
type: service
name: llm
image: vllm/vllm-openai:v0.7
port: 8000
replicas: 1..2
scaling: {metric: rps, target: 10}
commands: [vllm serve meta-llama/Llama-3.1-8B]
registry_auth:
  username: bot
  password: correct-horse
resources:
  gpu: A100:1
---
type: dev-environment
name: ide
ide: vscode
resources:
  gpu: H100:1
`

func goldenPlan(t *testing.T) *planner.Plan {
	w := newWorld(t, nil)
	w.parallelism = 1
	w.converge(w.config(map[string]string{"main.dstack.yml": goldenBefore}))
	// One of the fleet's machines is interrupted outside dstack.
	for _, r := range w.state().Resources {
		if r.Address == "fleet.gpus" {
			if err := w.cloud.Interrupt(r.Instances[0].ProviderID, "spot interruption"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w.mustPlan(w.config(map[string]string{"main.dstack.yml": goldenAfter}), planOpts{})
}

var lineage = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = lineage.ReplaceAll(got, []byte("LINEAGE"))
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it; review the diff):\n%s", name, got)
	}
}

func TestGoldenRenderings(t *testing.T) {
	p := goldenPlan(t)
	var text, color, md, js bytes.Buffer
	if err := render.Text(&text, p, render.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := render.Text(&color, p, render.Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	if err := render.Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if err := render.JSON(&js, p); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "plan.txt", text.Bytes())
	checkGolden(t, "plan.color.txt", color.Bytes())
	checkGolden(t, "plan.md", md.Bytes())
	checkGolden(t, "plan.json", js.Bytes())
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String(), "json": js.String()} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "correct-horse") {
			t.Errorf("the %s rendering shows a registry password", name)
		}
	}
	if strings.Contains(text.String(), "\x1b[") {
		t.Error("colour codes without Color")
	}
}

// TestMarkdownStaysUnderTheCommentLimit renders a plan of 10,000
// resources for a pull-request comment.
func TestMarkdownStaysUnderTheCommentLimit(t *testing.T) {
	w := newWorld(t, nil)
	var b strings.Builder
	for i := range 10000 {
		b.WriteString("---\ntype: volume\nname: v" + itoa(i) + "\nbackend: aws\nregion: us-east-1\nsize: 100GB\n")
	}
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": b.String()}), planOpts{})
	var md bytes.Buffer
	if err := render.Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if md.Len() >= 65536 {
		t.Fatalf("markdown is %d characters", md.Len())
	}
	if !strings.Contains(md.String(), "more changes are not shown here") || !strings.Contains(md.String(), "Plan: 10000 to provision") {
		t.Fatalf("markdown of a huge plan:\n%s", md.String()[:2000])
	}
}
