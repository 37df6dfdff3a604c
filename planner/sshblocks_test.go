package planner_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/state"
)

const blocksFleet = `type: fleet
name: onprem
resources:
  gpu: H100:8
ssh_config:
  user: root
  hosts:
    - hostname: gpu-1
      blocks: 4
    - hostname: gpu-2
      blocks: auto
`

// TestSSHFleetBlocksKeptOnChange: a change to an SSH fleet compares each
// host with the configuration state recorded, blocks included. Adding a
// host adds it alone; hosts whose blocks did not change are left alone,
// and a host whose blocks changed is replaced.
func TestSSHFleetBlocksKeptOnChange(t *testing.T) {
	w := newWorld(t, nil)
	w.converge(w.config(map[string]string{"main.dstack.yml": blocksFleet}))
	before := tokensOf(t, w, "fleet.onprem")

	added := blocksFleet + "    - gpu-3\n"
	p := w.mustPlan(w.config(map[string]string{"main.dstack.yml": added}), planOpts{})
	c := change(p, "fleet.onprem")
	if c == nil || !strings.Contains(c.Reason, "adds gpu-3") || strings.Contains(c.Reason, "replaces") {
		t.Fatalf("adding a host to a fleet whose hosts have blocks:\n%s", describe(p))
	}
	ops := stepsByOp(p, c)
	if len(ops[planner.OpDelete]) != 0 || len(ops[planner.OpCreate]) != 1 {
		t.Fatalf("adding a host: %d deletes, %d creates, want 0 and 1:\n%s", len(ops[planner.OpDelete]), len(ops[planner.OpCreate]), describe(p))
	}
	w.converge(w.config(map[string]string{"main.dstack.yml": added}))
	after := tokensOf(t, w, "fleet.onprem")
	if after["gpu-1"] != before["gpu-1"] || after["gpu-2"] != before["gpu-2"] || after["gpu-3"] == "" {
		t.Fatalf("after adding gpu-3: %v (before %v)", after, before)
	}

	changed := strings.Replace(added, "blocks: 4", "blocks: 2", 1)
	p = w.mustPlan(w.config(map[string]string{"main.dstack.yml": changed}), planOpts{})
	if c := change(p, "fleet.onprem"); c == nil || !strings.Contains(c.Reason, "replaces gpu-1") || strings.Contains(c.Reason, "gpu-2") {
		t.Fatalf("changing gpu-1's blocks:\n%s", describe(p))
	}
}

// TestRecordedSpecUnreadable: a configuration recorded in state that does
// not read back as the model is an error of the plan naming the
// resource, not a silent empty configuration.
func TestRecordedSpecUnreadable(t *testing.T) {
	w := newWorld(t, nil)
	w.converge(w.config(map[string]string{"main.dstack.yml": blocksFleet}))
	ctx := context.Background()
	all, err := w.providers().Offers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.config(map[string]string{"main.dstack.yml": blocksFleet + "    - gpu-3\n"})
	for _, c := range []struct {
		name    string
		corrupt func(spec map[string]any) any
		want    string
	}{
		{"a field of the wrong form", func(spec map[string]any) any {
			spec["ssh_config"].(map[string]any)["hosts"] = "gpu-1"
			return spec
		}, "ssh_config.hosts"},
		{"not an object", func(map[string]any) any { return "fleet" }, "cannot unmarshal string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			prior := w.state().Clone()
			r := prior.Resource("fleet.onprem")
			r.Attributes["spec"] = c.corrupt(r.Attributes["spec"].(map[string]any))
			_, err := planner.Make(planner.Input{Config: cfg, Prior: prior, StateExisted: true, Workspace: state.DefaultWorkspace,
				ToolVersion: "test", Offers: all})
			if err == nil || !strings.Contains(err.Error(), "fleet.onprem") || !strings.Contains(err.Error(), "recorded in state") ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("plan with an unreadable recorded configuration: %v", err)
			}
			// Tearing it down still works, and says what was wrong with
			// a recorded configuration that is not one.
			p, err := planner.Make(planner.Input{Config: cfg, Prior: prior, StateExisted: true, Workspace: state.DefaultWorkspace,
				ToolVersion: "test", Offers: all, Mode: planner.Destroy})
			if err != nil {
				t.Fatalf("destroy plan: %v", err)
			}
			ch := change(p, "fleet.onprem")
			if ch == nil || ch.Action != planner.Delete || (c.name == "not an object") != strings.Contains(ch.Reason, "recorded in state") {
				t.Fatalf("destroy plan with an unreadable recorded configuration:\n%s", describe(p))
			}
		})
	}
}
