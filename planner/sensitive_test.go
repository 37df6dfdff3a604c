package planner_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/planner/render"
	"github.com/dstackai/dstack-go/state"
)

// sensitiveService is a service whose env takes a token from a sensitive
// variable, with a registry password (tagged sensitive in the model).
func sensitiveService(token, image string) string {
	return fmt.Sprintf(`variable "hf_token" {
  sensitive = true
  default   = %q
}

service "llm" {
  image    = %q
  port     = 8000
  commands = ["serve"]
  env = {
    HF_TOKEN = var.hf_token
    LEVEL    = "debug"
  }
  registry_auth {
    username = "bot"
    password = "hunter2-PASSWORD"
  }
}
`, token, image)
}

// renderings is every way a plan is shown.
func renderings(t *testing.T, p *planner.Plan) map[string]string {
	t.Helper()
	var text, md, js bytes.Buffer
	if err := render.Text(&text, p, render.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := render.Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if err := render.JSON(&js, p); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"text": text.String(), "markdown": md.String(), "json": js.String()}
}

// stateFiles is everything the local backend wrote, together.
func stateFiles(w *world) string {
	var out []byte
	_ = filepath.WalkDir(filepath.Join(w.dir, "state"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			out = append(out, b...)
		}
		return nil
	})
	return string(out)
}

func checkAbsent(t *testing.T, where, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s shows %q:\n%s", where, s, out)
		}
	}
}

// A value from a sensitive variable and a field the model tags sensitive
// are masked in every rendering of the plan and in state, while the
// providers get them; a change to one alone is seen (masked), and a
// change elsewhere does not report them as changed.
func TestSensitiveValues(t *testing.T) {
	w := newWorld(t, nil)
	p := w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveService("hf_AAA_token", "vllm:1")}), planOpts{})
	for name, out := range renderings(t, p) {
		checkAbsent(t, "the plan as "+name, out, "hf_AAA_token", "hunter2-PASSWORD")
		if !strings.Contains(out, planner.Masked) {
			t.Errorf("the plan as %s shows no %s:\n%s", name, planner.Masked, out)
		}
	}
	c := p.Changes[0]
	if !strings.Contains(string(c.Spec), "hf_AAA_token") || !strings.Contains(string(c.Spec), "hunter2-PASSWORD") {
		t.Fatalf("the providers' configuration lost the values: %s", c.Spec)
	}
	if diff := cmp.Diff([]string{"env.HF_TOKEN", "registry_auth.password"}, c.Sensitive.Paths); diff != "" {
		t.Errorf("sensitive paths (-want +got):\n%s", diff)
	}
	// A saved plan carries the values apply needs; showing it masks them.
	saved := filepath.Join(t.TempDir(), "plan.bin")
	if err := planner.Save(saved, p); err != nil {
		t.Fatal(err)
	}
	loaded, err := planner.Load(saved)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range renderings(t, loaded) {
		checkAbsent(t, "the saved plan shown as "+name, out, "hf_AAA_token", "hunter2-PASSWORD")
	}
	if got := loaded.SensitiveValues(); !cmp.Equal(got, []string{"hf_AAA_token", "hunter2-PASSWORD"}) {
		t.Errorf("SensitiveValues = %q", got)
	}

	w.apply(p, planner.ApplyOptions{})
	stateFile := func() string { return stateFiles(w) }
	checkAbsent(t, "the state files", stateFile(), "hf_AAA_token", "hunter2-PASSWORD")
	if again := w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveService("hf_AAA_token", "vllm:1")}), planOpts{}); !again.Empty() {
		t.Fatalf("the plan after apply is not empty:\n%s", describe(again))
	}

	// Only the token changes: the plan sees it, and says no more.
	p = w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveService("hf_BBB_token", "vllm:1")}), planOpts{})
	if len(p.Changes) != 1 {
		t.Fatalf("want one change, got:\n%s", describe(p))
	}
	want := []planner.FieldChange{{Field: "env", Sensitive: true, ForcesReplacement: p.Changes[0].Fields[0].ForcesReplacement}}
	if diff := cmp.Diff(want, p.Changes[0].Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	for name, out := range renderings(t, p) {
		checkAbsent(t, "the plan as "+name, out, "hf_AAA_token", "hf_BBB_token", "hunter2-PASSWORD")
	}
	if !strings.Contains(renderings(t, p)["text"], "env = (sensitive value changed)") {
		t.Errorf("the text plan does not say the token changed:\n%s", renderings(t, p)["text"])
	}
	w.apply(p, planner.ApplyOptions{})
	checkAbsent(t, "the state files", stateFile(), "hf_AAA_token", "hf_BBB_token", "hunter2-PASSWORD")

	// Only the image changes: env and registry_auth are not reported.
	p = w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveService("hf_BBB_token", "vllm:2")}), planOpts{})
	if len(p.Changes) != 1 {
		t.Fatalf("want one change, got:\n%s", describe(p))
	}
	var fields []string
	for _, f := range p.Changes[0].Fields {
		fields = append(fields, f.Field)
	}
	if diff := cmp.Diff([]string{"image"}, fields); diff != "" {
		t.Errorf("changed fields (-want +got):\n%s", diff)
	}
}

// State, plans and render share one mask.
func TestOneMask(t *testing.T) {
	if state.Redacted != planner.Masked {
		t.Errorf("state masks with %q, plans with %q", state.Redacted, planner.Masked)
	}
}

func sensitiveSSHFleet(user string, hosts ...string) string {
	return fmt.Sprintf(`variable "ssh_user" {
  sensitive = true
  default   = %q
}

variable "ssh_port" {
  type      = number
  sensitive = true
  default   = 2222
}

fleet "onprem" {
  ssh_config {
    user  = var.ssh_user
    port  = var.ssh_port
    hosts = [%s]
  }
}
`, user, `"`+strings.Join(hosts, `", "`)+`"`)
}

// An SSH fleet whose settings come from sensitive variables is compared
// host by host against its recorded (masked) settings: adding a host
// adds it alone, and a new user replaces every host.
func TestSensitiveSSHSettings(t *testing.T) {
	w := newWorld(t, nil)
	w.converge(w.config(map[string]string{"main.dstack.hcl": sensitiveSSHFleet("ops-USER", "a100-1", "a100-2")}))
	before := tokensOf(t, w, "fleet.onprem")
	checkAbsent(t, "the state files", stateFiles(w), "ops-USER")

	p := w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveSSHFleet("ops-USER", "a100-1", "a100-2", "a100-3")}), planOpts{})
	c := change(p, "fleet.onprem")
	if c == nil || c.Reason != "hosts: adds a100-3" {
		t.Fatalf("adding a host:\n%s", describe(p))
	}
	if dels := stepsByOp(p, c)[planner.OpDelete]; len(dels) > 0 {
		t.Errorf("adding a host deletes %v", tokens(dels))
	}
	w.converge(w.config(map[string]string{"main.dstack.hcl": sensitiveSSHFleet("ops-USER", "a100-1", "a100-2", "a100-3")}))
	if after := tokensOf(t, w, "fleet.onprem"); after["a100-1"] != before["a100-1"] || after["a100-2"] != before["a100-2"] {
		t.Errorf("hosts were replaced: %v, before %v", after, before)
	}

	p = w.mustPlan(w.config(map[string]string{"main.dstack.hcl": sensitiveSSHFleet("admin-USER", "a100-1", "a100-2", "a100-3")}), planOpts{})
	c = change(p, "fleet.onprem")
	if c == nil || !strings.Contains(c.Reason, "replaces a100-1, a100-2, a100-3 (its SSH settings changed)") {
		t.Fatalf("a new user:\n%s", describe(p))
	}
	for name, out := range renderings(t, p) {
		checkAbsent(t, "the plan as "+name, out, "ops-USER", "admin-USER", "2222")
	}
}
