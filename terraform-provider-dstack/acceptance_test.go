package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// The acceptance test runs the real terraform CLI (1.5.7), and OpenTofu
// (cli_test.go), against the freshly built provider through
// dev_overrides, with the local backend running jobs in Docker.

// requireEnv makes a missing terraform a failure instead of a skip.
const requireEnv = "DSTACK_REQUIRE_TERRAFORM"

// terraformPath is the binary of the CLI under test (terraform or tofu,
// see cliUnderTest).
func terraformPath(t *testing.T) string {
	t.Helper()
	return cliUnderTest(t).bin
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// tf runs terraform (or tofu) commands in one module directory.
type tf struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func (x *tf) run(args ...string) (string, error) {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.bin, append(args, "-no-color")...)
	cmd.Dir, cmd.Env = x.dir, x.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (x *tf) must(args ...string) string {
	x.t.Helper()
	out, err := x.run(args...)
	if err != nil {
		x.t.Fatalf("%s %s: %v\n%s", filepath.Base(x.bin), strings.Join(args, " "), err, out)
	}
	return out
}

// exitCode runs a command expected to end with code want.
func (x *tf) exitCode(want int, args ...string) string {
	x.t.Helper()
	out, err := x.run(args...)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		x.t.Fatalf("%s %s: %v", filepath.Base(x.bin), strings.Join(args, " "), err)
	}
	if code != want {
		x.t.Fatalf("%s %s exited %d, want %d\n%s", filepath.Base(x.bin), strings.Join(args, " "), code, want, out)
	}
	return out
}

func (x *tf) write(name, text string) {
	x.t.Helper()
	if err := os.WriteFile(filepath.Join(x.dir, name), []byte(text), 0o644); err != nil {
		x.t.Fatal(err)
	}
}

// setup builds the provider, points terraform at it, and gives the
// local backend an agent directory of its own, whose agent is stopped
// when the test ends.
func setup(t *testing.T) *tf {
	cli := cliUnderTest(t)
	dockertest.Image(t)
	root := t.TempDir()
	plugins := filepath.Join(root, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "terraform-provider-dstack"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, out)
	}
	// dev_overrides runs the fresh build; terraform init, which
	// resolves providers whatever the overrides say, finds the same
	// build in a filesystem mirror (there is no registry to reach).
	mirror := filepath.Join(root, "mirror")
	pkg := filepath.Join(mirror, cli.host, "dstackai", "dstack", "0.0.1", runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(plugins, "terraform-provider-dstack"), filepath.Join(pkg, "terraform-provider-dstack_v0.0.1")); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(root, "terraform.rc")
	if err := os.WriteFile(rc, []byte(`provider_installation {
  dev_overrides {
    "dstackai/dstack" = "`+plugins+`"
  }
  filesystem_mirror {
    path    = "`+mirror+`"
    include = ["dstackai/dstack"]
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(root, "agent")
	t.Cleanup(func() { stopAgent(t, agentDir) })
	module := filepath.Join(root, "module")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "DSTACK_AGENT_DIR="+agentDir, "CHECKPOINT_DISABLE=1",
		"TF_IN_AUTOMATION=1", "TF_INPUT=0")
	return &tf{t: t, bin: cli.bin, dir: module, env: env}
}

// stopAgent stops the agent the provider started for the test.
func stopAgent(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "agent.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Logf("stopping the agent %d: %v", pid, err)
	}
}

// containers lists the Docker containers (running or not) of a run.
func containers(t *testing.T, run string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := dockertest.Client(t).ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "dstack.run="+run))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		out = append(out, c.State)
	}
	return out
}

const module = `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

provider "dstack" {}

resource "dstack_fleet" "box" {
  name     = "tfacc-box"
  nodes    = "1"
  backends = ["local"]
  %FLEET_EXTRA%
  resources {
    cpu    = "1.."
    memory = "256MB.."
    disk   = "1GB.."
  }
}

resource "dstack_task" "train" {
  name          = "tfacc-train"
  image         = "dstack-test/busybox:latest"
  commands      = ["echo training", "sleep 600"]
  fleets        = [dstack_fleet.box.name]
  stop_duration = "1s"
  resources {
    cpu    = "1.."
    memory = "64MB.."
    disk   = "1GB.."
    %GPU%
  }
}

resource "dstack_service" "web" {
  name          = "tfacc-web"
  image         = "dstack-test/busybox:latest"
  commands      = ["%SERVE%"]
  port          = "8000"
  backends      = ["local"]
  stop_duration = "1s"
  resources {
    cpu    = "1.."
    memory = "64MB.."
    disk   = "1GB.."
  }
}

output "task_host" {
  value = dstack_task.train.provisioned[0].host
}
`

func render(fleetExtra, gpu, serve string) string {
	r := strings.NewReplacer("%FLEET_EXTRA%", fleetExtra, "%GPU%", gpu, "%SERVE%", serve)
	return r.Replace(module)
}

func TestTerraformLifecycle(t *testing.T) {
	x := setup(t)
	for _, run := range []string{"tfacc-train", "tfacc-web"} {
		dockertest.RemoveContainers(t, "dstack.run="+run)
	}
	serve := "httpd -f -p 8000"
	x.write("main.tf", render("", "", serve))

	out := x.must("init", "-input=false")
	if !strings.Contains(out, "has been successfully initialized") { // Terraform or OpenTofu
		t.Fatalf("init:\n%s", out)
	}
	out = x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 3 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply did not create the three resources:\n%s", out)
	}
	if !strings.Contains(out, `task_host = "fleet.tfacc-box[0]"`) {
		t.Errorf("the task was not placed on the fleet's instance:\n%s", out)
	}
	for _, run := range []string{"tfacc-train", "tfacc-web"} {
		if got := containers(t, run); len(got) != 1 || got[0] != "running" {
			t.Errorf("containers of %s: %v, want one running", run, got)
		}
	}

	t.Run("second plan shows no changes", func(t *testing.T) {
		out := x.exitCode(0, "plan", "-detailed-exitcode")
		if !strings.Contains(out, "No changes.") {
			t.Errorf("plan after apply:\n%s", out)
		}
	})

	t.Run("in-place change and forced replacement", func(t *testing.T) {
		x.write("main.tf", render(`tags = { team = "ml" }`, "", serve+" -h /tmp"))
		out := x.exitCode(2, "plan", "-detailed-exitcode")
		for _, want := range []string{
			`# dstack_fleet.box will be updated in-place`,
			`~ resource "dstack_fleet" "box" {`,
			`+ tags        = {`,
			// A run's replacement is one update of the resource: the
			// planner's (a service's new jobs start before the old
			// ones stop).
			`# dstack_service.web will be updated in-place`,
			`~ resource "dstack_service" "web" {`,
			`Warning: service.tfacc-web will be replaced`,
			`commands cannot change in place`,
			`Plan: 0 to add, 2 to change, 0 to destroy.`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "# dstack_task.train") {
			t.Errorf("the task should not change:\n%s", out)
		}
		x.must("apply", "-auto-approve")
		if got := containers(t, "tfacc-web"); len(got) != 1 || got[0] != "running" {
			t.Errorf("containers of the replaced service: %v, want one running (the old one removed)", got)
		}
		x.exitCode(0, "plan", "-detailed-exitcode")
	})

	t.Run("invalid gpu spec fails plan at the attribute", func(t *testing.T) {
		x.write("main.tf", render(`tags = { team = "ml" }`, `gpu = "H100:8:4"`, serve+" -h /tmp"))
		out := x.exitCode(1, "plan")
		for _, want := range []string{`Error: Invalid value for "resources.gpu"`, `with dstack_task.train,`, `gpu = "H100:8:4"`, `count given twice`} {
			if !strings.Contains(out, want) {
				t.Errorf("plan output lacks %q:\n%s", want, out)
			}
		}
		x.write("main.tf", render(`tags = { team = "ml" }`, "", serve+" -h /tmp"))
	})

	t.Run("destroy leaves nothing running", func(t *testing.T) {
		out := x.must("destroy", "-auto-approve")
		if !strings.Contains(out, "Destroy complete! Resources: 3 destroyed.") {
			t.Errorf("destroy:\n%s", out)
		}
		for _, run := range []string{"tfacc-train", "tfacc-web"} {
			if got := containers(t, run); len(got) != 0 {
				t.Errorf("containers of %s after destroy: %v, want none", run, got)
			}
		}
	})
}

// TestTerraformImportFleet makes a fleet the way `dstack apply` does
// (the same planner and executor, into the CLI's local state in .dstack),
// then adopts it with terraform import.
// TestTerraformImportFleet imports a fleet made with the real dstack
// CLI: the import moves its record out of the CLI's state into the
// provider's store and warns so, after which dstack destroy of the CLI's
// configuration leaves it alone. Removed from Terraform's state with
// terraform state rm, it is imported again from the store, unchanged.
func TestTerraformImportFleet(t *testing.T) {
	x := setup(t)
	cli := buildDstack(t)
	yml := `type: fleet
name: tfacc-imported
nodes: 1
backends: [local]
resources:
  cpu: 1..
  memory: 256MB..
  disk: 1GB..
`
	x.write("fleet.dstack.yml", yml)
	x.dstack(cli, "apply", "-f", "fleet.dstack.yml", "-y")
	if out := x.dstack(cli, "state", "list"); !strings.Contains(out, "fleet.tfacc-imported") {
		t.Fatalf("dstack state list after dstack apply:\n%s", out)
	}
	x.write("main.tf", `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

provider "dstack" {}

resource "dstack_fleet" "imported" {
  name     = "tfacc-imported"
  nodes    = "1"
  backends = ["local"]
  resources {
    cpu    = "1.."
    memory = "256MB.."
    disk   = "1GB.."
  }
}
`)
	out := x.must("import", "dstack_fleet.imported", "tfacc-imported")
	if !strings.Contains(out, "Import successful!") {
		t.Fatalf("import:\n%s", out)
	}
	for _, want := range []string{"Warning: fleet.tfacc-imported moved out of the dstack CLI's state", `workspace "default"`} {
		if !strings.Contains(out, want) {
			t.Errorf("import does not say %q:\n%s", want, out)
		}
	}
	show := x.must("state", "show", "dstack_fleet.imported")
	for _, want := range []string{`provider_id = "local-`, `status      = "running"`, `id          = "fleet.tfacc-imported"`} {
		if !strings.Contains(show, want) {
			t.Errorf("imported state lacks %q:\n%s", want, show)
		}
	}
	providerID := attrValue(show, "provider_id")
	// The CLI's state no longer has it; the provider's store does.
	if out := x.dstack(cli, "state", "list"); strings.Contains(out, "fleet.tfacc-imported") {
		t.Errorf("the CLI's state still lists the imported fleet:\n%s", out)
	}
	if out := x.dstackEnv(cli, []string{"DSTACK_WORKSPACE=terraform"}, "state", "list"); !strings.Contains(out, "fleet.tfacc-imported") {
		t.Errorf("the provider's store does not list the imported fleet:\n%s", out)
	}
	// dstack destroy of the CLI's configuration has nothing to tear down.
	out = x.dstack(cli, "destroy", "-f", "fleet.dstack.yml", "-y")
	if strings.Contains(out, "Destruction complete") || !strings.Contains(out, "No changes.") {
		t.Fatalf("dstack destroy touched the imported fleet:\n%s", out)
	}
	out = x.exitCode(0, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes.") {
		t.Errorf("plan after import and dstack destroy:\n%s", out)
	}
	// Forgotten by Terraform, the fleet stays in the store and is
	// imported again from there, by its address, as it was.
	x.must("state", "rm", "dstack_fleet.imported")
	out = x.must("import", "dstack_fleet.imported", "fleet.tfacc-imported")
	if !strings.Contains(out, "Import successful!") || strings.Contains(out, "Warning:") {
		t.Fatalf("import from the store:\n%s", out)
	}
	show = x.must("state", "show", "dstack_fleet.imported")
	if got := attrValue(show, "provider_id"); got != providerID {
		t.Errorf("re-imported provider_id %q, want %q (nothing re-created):\n%s", got, providerID, show)
	}
	out = x.exitCode(0, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes.") {
		t.Errorf("plan after re-import:\n%s", out)
	}
	x.must("destroy", "-auto-approve")
}

// attrValue is the first string value of attribute name in terraform
// state show's output.
func attrValue(show, name string) string {
	for _, line := range strings.Split(show, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// buildDstack builds the dstack CLI from ./cmd/dstack.
func buildDstack(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dstack")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dstackai/dstack-go/cmd/dstack").CombinedOutput(); err != nil {
		t.Fatalf("building the dstack CLI: %v\n%s", err, out)
	}
	return bin
}

// dstack runs the dstack CLI in the module directory, with the test's
// environment (its agent directory), and fails the test if it fails.
func (x *tf) dstack(bin string, args ...string) string {
	x.t.Helper()
	return x.dstackEnv(bin, nil, args...)
}

// dstackEnv is dstack with more environment variables.
func (x *tf) dstackEnv(bin string, env []string, args ...string) string {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = x.dir, append(append(slices.Clone(x.env), "NO_COLOR=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		x.t.Fatalf("dstack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestTerraformExamplesValidate runs terraform validate on every example
// of examples/terraform (embedded in the docs), so that none can rot.
func TestTerraformExamplesValidate(t *testing.T) {
	x := setup(t)
	files, err := filepath.Glob("../examples/terraform/*/*/*.tf")
	if err != nil {
		t.Fatal(err)
	}
	provider, err := filepath.Glob("../examples/terraform/provider/*.tf")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, provider...)
	if len(files) < 9 {
		t.Fatalf("found %d examples, want one per resource and data source and the provider's", len(files))
	}
	for _, f := range files {
		t.Run(filepath.ToSlash(strings.TrimPrefix(f, "../examples/terraform/")), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			y := &tf{t: t, bin: x.bin, dir: dir, env: x.env}
			y.write("example.tf", string(src))
			if !strings.Contains(string(src), "required_providers") {
				y.write("versions.tf", "terraform {\n  required_providers {\n    dstack = { source = \"dstackai/dstack\" }\n  }\n}\n")
			}
			y.must("validate")
		})
	}
}

// TestTerraformSSHFleet: an SSH fleet declared in Terraform over a real
// SSH host (sshd in a network namespace): apply installs and starts the
// agent there (this provider's binary, which runs as the agent), a task
// placed on the fleet runs there, a second plan is empty, and destroy
// removes the agent.
func TestTerraformSSHFleet(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	x := setup(t)
	x.env = append(x.env, "HOME="+t.TempDir()) // no known_hosts: the key is trusted on first use
	x.write("main.tf", fmt.Sprintf(`terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

provider "dstack" {}

resource "dstack_fleet" "onprem" {
  name = "tfacc-onprem"
  ssh_config {
    user          = "root"
    identity_file = %q
    hosts {
      hostname = %q
    }
  }
}

resource "dstack_task" "hello" {
  name     = "tfacc-ssh-hello"
  fleets   = [dstack_fleet.onprem.name]
  runtime  = "host"
  commands = ["echo hello-from-terraform > /root/tf-was-here", "sleep 600"]
}
`, c.ClientKeyPath, h.PublicAddr))
	x.must("init", "-input=false")
	out := x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 2 added") {
		t.Fatalf("apply:\n%s", out)
	}
	running := func() bool {
		got, _ := h.Exec(t, `kill -0 "$(cat /root/.dstack/agent/agent.pid 2>/dev/null)" 2>/dev/null && echo up`)
		return strings.TrimSpace(got) == "up"
	}
	if !running() {
		t.Fatalf("no agent on the host after apply:\n%s", out)
	}
	var ran string
	for i := 0; i < 50 && ran == ""; i++ {
		ran, _ = h.Exec(t, "cat /root/tf-was-here 2>/dev/null")
		time.Sleep(100 * time.Millisecond)
	}
	if strings.TrimSpace(ran) != "hello-from-terraform" {
		t.Fatalf("the task did not run on the SSH host: %q", ran)
	}
	x.exitCode(0, "plan", "-detailed-exitcode")
	x.must("destroy", "-auto-approve")
	if running() {
		t.Fatal("the agent still runs on the host after destroy")
	}
}

const providerHeader = `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

`

// TestTerraformLocalFleetsApart: two local fleets, each in a
// configuration of its own, both register this machine; destroying one
// leaves the other's record alone, so its next plan is empty.
func TestTerraformLocalFleetsApart(t *testing.T) {
	x := setup(t)
	y := &tf{t: t, bin: x.bin, dir: t.TempDir(), env: x.env}
	config := func(i int, both bool) string {
		src := providerHeader + `provider "dstack" {}
`
		names := []string{"b"}
		if both {
			names = []string{"a", "b"}
		}
		for _, n := range names {
			src += fmt.Sprintf(`
resource "dstack_fleet" %q {
  name     = "tfacc-apart-%d-%s"
  nodes    = "1"
  backends = ["local"]
}
`, n, i, n)
		}
		return src
	}
	for i, m := range []*tf{x, y} {
		m.write("main.tf", config(i, true))
		m.must("init", "-input=false")
		m.must("apply", "-auto-approve")
	}
	out := x.must("destroy", "-auto-approve", "-target", "dstack_fleet.a")
	if !strings.Contains(out, "Destroy complete! Resources: 1 destroyed.") {
		t.Fatalf("destroy -target:\n%s", out)
	}
	x.write("main.tf", config(0, false))
	// The other fleet of the same configuration, and both of the other.
	for _, m := range []*tf{x, y} {
		out := m.exitCode(0, "plan", "-detailed-exitcode")
		if strings.Contains(out, "changed outside") || !strings.Contains(out, "No changes.") {
			t.Errorf("plan after destroying one fleet:\n%s", out)
		}
	}
	y.must("destroy", "-auto-approve")
	x.must("destroy", "-auto-approve")
}

// TestTerraformFinishedTask: a task that ends by itself, as tasks do, is
// not a change made outside Terraform: the plan after it finished is
// empty. The instance of a fleet, placed on no host, has a null host in
// the resource and in the data source alike.
func TestTerraformFinishedTask(t *testing.T) {
	x := setup(t)
	x.write("main.tf", providerHeader+`provider "dstack" {}

resource "dstack_fleet" "box" {
  name     = "tfacc-finish-box"
  nodes    = "1"
  backends = ["local"]
}

resource "dstack_task" "short" {
  name     = "tfacc-finish"
  runtime  = "host"
  commands = ["sleep 2"]
  fleets   = [dstack_fleet.box.name]
}

data "dstack_fleet" "box" {
  name = dstack_fleet.box.name
}

output "task_status" {
  value = dstack_task.short.status
}

output "task_jobs" {
  value = dstack_task.short.provisioned
}

output "hosts_null" {
  value = [dstack_fleet.box.provisioned[0].host == null, data.dstack_fleet.box.provisioned[0].host == null]
}
`)
	x.must("init", "-input=false")
	out := x.must("apply", "-auto-approve")
	if !strings.Contains(out, `task_status = "running"`) {
		t.Fatalf("apply: the task should run when apply ends:\n%s", out)
	}
	if !strings.Contains(out, "hosts_null = [\n  true,\n  true,\n]") {
		t.Errorf("the fleet instance's host should be null in the resource and the data source:\n%s", out)
	}
	time.Sleep(4 * time.Second) // the task has finished
	out = x.exitCode(0, "plan", "-detailed-exitcode")
	if strings.Contains(out, "changed outside") || !strings.Contains(out, "No changes.") {
		t.Errorf("plan after the task finished:\n%s", out)
	}
	x.must("destroy", "-auto-approve")
}

// TestTerraformSimulatedCloud: with DSTACK_SIM_DIR the provider makes a
// cloud's fleet and volume in the simulated cloud, as the CLI does;
// without it, a backend that has no provider fails the plan, naming the
// backend, instead of planning what apply cannot make.
func TestTerraformSimulatedCloud(t *testing.T) {
	x := setup(t)
	x.write("main.tf", providerHeader+`provider "dstack" {
  backend {
    type = "gcp"
    credentials = { credentials_file = "/nonexistent.json" }
  }
}

resource "dstack_fleet" "cloud" {
  name     = "tfacc-sim"
  nodes    = "1"
  backends = ["gcp"]
  resources {
    cpu = "2.."
  }
}

resource "dstack_volume" "data" {
  name    = "tfacc-sim-data"
  backend = "gcp"
  region  = "us-central1"
  size    = "100GB"
}
`)
	x.must("init", "-input=false")
	out := x.exitCode(1, "plan")
	flat := strings.Join(strings.Fields(out), " ") // terraform wraps long lines
	for _, want := range []string{`Error: Cannot plan fleet.tfacc-sim`, `fleet.tfacc-sim[0]: backend "gcp" has no provider in this build`,
		`Error: Cannot plan volume.tfacc-sim-data`, `set DSTACK_SIM_DIR=DIR to use the simulated cloud`} {
		if !strings.Contains(flat, want) {
			t.Errorf("plan without a provider for gcp lacks %q:\n%s", want, out)
		}
	}
	x.env = append(x.env, "DSTACK_SIM_DIR="+t.TempDir())
	out = x.exitCode(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "Plan: 2 to add, 0 to change, 0 to destroy.") {
		t.Fatalf("plan on the simulated cloud:\n%s", out)
	}
	out = x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 2 added") {
		t.Fatalf("apply on the simulated cloud:\n%s", out)
	}
	show := x.must("state", "show", "dstack_fleet.cloud")
	for _, want := range []string{`backend     = "gcp"`, `status      = "running"`} {
		if !strings.Contains(show, want) {
			t.Errorf("the fleet's state lacks %q:\n%s", want, show)
		}
	}
	x.exitCode(0, "plan", "-detailed-exitcode")
	out = x.must("destroy", "-auto-approve")
	if !strings.Contains(out, "Destroy complete! Resources: 2 destroyed.") {
		t.Errorf("destroy:\n%s", out)
	}
}

// storeModule is a one-node local fleet and, with tasks > 0, that many
// tasks on it (count), each asking for cpu CPUs and running commands.
func storeModule(tasks int, cpu, commands string) string {
	m := `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

provider "dstack" {}

resource "dstack_fleet" "box" {
  name     = "tfstore-box"
  nodes    = "1"
  backends = ["local"]
  resources {
    cpu    = "1.."
    memory = "256MB.."
    disk   = "1GB.."
  }
}
`
	if tasks == 0 {
		return m
	}
	return m + fmt.Sprintf(`
resource "dstack_task" "job" {
  count         = %d
  name          = "tfstore-job-${count.index}"
  image         = "dstack-test/busybox:latest"
  commands      = %s
  fleets        = [dstack_fleet.box.name]
  stop_duration = "1s"
  resources {
    cpu    = "%s"
    memory = "64MB.."
    disk   = "1GB.."
  }
}
`, tasks, commands, cpu)
}

// TestTerraformTaskOnUnchangedFleet adds a task to a fleet applied
// earlier, which Terraform does not visit again, then changes the task's
// commands and replaces it: each is planned and applied against the
// fleet's instances as the provider's store records them.
func TestTerraformTaskOnUnchangedFleet(t *testing.T) {
	x := setup(t)
	run := "tfstore-job-0"
	dockertest.RemoveContainers(t, "dstack.run="+run)
	t.Cleanup(func() { dockertest.RemoveContainers(t, "dstack.run="+run) })
	x.write("main.tf", storeModule(0, "", ""))
	x.must("init", "-input=false")
	x.must("apply", "-auto-approve")

	x.write("main.tf", storeModule(1, "1..", `["echo one", "sleep 600"]`))
	out := x.exitCode(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "Plan: 1 to add, 0 to change, 0 to destroy.") {
		t.Fatalf("plan of the added task:\n%s", out)
	}
	out = x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply of the added task:\n%s", out)
	}
	if got := containers(t, run); len(got) != 1 || got[0] != "running" {
		t.Fatalf("containers of %s: %v, want one running", run, got)
	}
	host := x.must("state", "show", "dstack_task.job[0]")
	if !strings.Contains(host, `host        = "fleet.tfstore-box[0]"`) {
		t.Errorf("the task is not on the fleet's instance:\n%s", host)
	}
	x.exitCode(0, "plan", "-detailed-exitcode")
	// A lost store (or a state written before it existed) is adopted
	// back from the records Terraform keeps, by the refresh.
	if err := os.RemoveAll(filepath.Join(x.dir, ".dstack")); err != nil {
		t.Fatal(err)
	}
	x.exitCode(0, "plan", "-detailed-exitcode")
	if !fileExists(filepath.Join(x.dir, ".dstack")) {
		t.Errorf("the refresh did not write the store back")
	}

	t.Run("changed commands replace the job", func(t *testing.T) {
		x.write("main.tf", storeModule(1, "1..", `["echo two", "sleep 600"]`))
		out := x.exitCode(2, "plan", "-detailed-exitcode")
		for _, want := range []string{"Warning: task.tfstore-job-0 will be replaced", "commands cannot change in place"} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
		out = x.must("apply", "-auto-approve")
		if !strings.Contains(out, "Apply complete!") {
			t.Fatalf("apply:\n%s", out)
		}
		if got := containers(t, run); len(got) != 1 || got[0] != "running" {
			t.Errorf("containers of %s: %v, want one running (the old one removed)", run, got)
		}
		x.exitCode(0, "plan", "-detailed-exitcode")
	})

	t.Run("replace", func(t *testing.T) {
		out := x.must("apply", "-auto-approve", "-replace=dstack_task.job[0]")
		if !strings.Contains(out, "Apply complete! Resources: 1 added, 0 changed, 1 destroyed.") {
			t.Fatalf("apply -replace:\n%s", out)
		}
		if got := containers(t, run); len(got) != 1 || got[0] != "running" {
			t.Errorf("containers of %s: %v, want one running", run, got)
		}
		if list := x.must("state", "list"); !strings.Contains(list, "dstack_task.job[0]") {
			t.Errorf("the task left Terraform's state:\n%s", list)
		}
	})

	t.Run("a failed replacement keeps the resource", func(t *testing.T) {
		bad := strings.Replace(storeModule(1, "1..", `["echo three", "sleep 600"]`), "dstack-test/busybox:latest", "dstack-test/absent:latest", 1)
		x.write("main.tf", bad)
		out := x.exitCode(1, "apply", "-auto-approve")
		if !strings.Contains(out, "Error: Applying task.tfstore-job-0 failed") {
			t.Errorf("apply with an absent image:\n%s", out)
		}
		if list := x.must("state", "list"); !strings.Contains(list, "dstack_task.job[0]") {
			t.Fatalf("the task left Terraform's state after its old job was stopped:\n%s", list)
		}
		x.write("main.tf", storeModule(1, "1..", `["echo three", "sleep 600"]`))
		x.exitCode(2, "plan", "-detailed-exitcode")
		x.must("apply", "-auto-approve")
		if got := containers(t, run); len(got) != 1 || got[0] != "running" {
			t.Errorf("containers of %s: %v, want one running", run, got)
		}
		x.exitCode(0, "plan", "-detailed-exitcode")
	})

	out = x.must("destroy", "-auto-approve")
	if !strings.Contains(out, "Destroy complete! Resources: 2 destroyed.") {
		t.Errorf("destroy:\n%s", out)
	}
	if got := containers(t, run); len(got) != 0 {
		t.Errorf("containers of %s after destroy: %v, want none", run, got)
	}
}

// TestTerraformCapacity declares three tasks that each take all of the
// one-node fleet's CPUs: the plan fails naming the capacity, whether the
// fleet is made in the same run or was applied before.
func TestTerraformCapacity(t *testing.T) {
	x := setup(t)
	for i := range 3 {
		dockertest.RemoveContainers(t, fmt.Sprintf("dstack.run=tfstore-job-%d", i))
	}
	cpu := strconv.Itoa(runtime.NumCPU())
	cmds := `["sleep 600"]`
	x.write("main.tf", storeModule(3, cpu, cmds))
	x.must("init", "-input=false")
	check := func(out string) {
		t.Helper()
		for _, want := range []string{"Error: Cannot plan task.tfstore-job-", "no fleet instance has room for"} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
	}
	check(x.exitCode(1, "plan"))

	x.write("main.tf", storeModule(0, "", ""))
	x.must("apply", "-auto-approve")
	x.write("main.tf", storeModule(3, cpu, cmds))
	check(x.exitCode(1, "plan"))
	check(x.exitCode(1, "apply", "-auto-approve"))
	for i := range 3 {
		if got := containers(t, fmt.Sprintf("tfstore-job-%d", i)); len(got) != 0 {
			t.Errorf("containers of tfstore-job-%d: %v, want none", i, got)
		}
	}
	// One fits.
	x.write("main.tf", storeModule(1, cpu, cmds))
	out := x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.") {
		t.Errorf("apply of one task:\n%s", out)
	}
	// A run removed from Terraform's state keeps its record in the
	// store, and its capacity: declared again, it is adopted as it is.
	x.must("state", "rm", "dstack_task.job[0]")
	x.write("main.tf", storeModule(2, cpu, cmds))
	check(x.exitCode(1, "plan"))
	x.write("main.tf", storeModule(1, cpu, cmds))
	out = x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.") {
		t.Errorf("apply adopting the task:\n%s", out)
	}
	if got := containers(t, "tfstore-job-0"); len(got) != 1 || got[0] != "running" {
		t.Errorf("containers of tfstore-job-0: %v, want the one running", got)
	}
	x.exitCode(0, "plan", "-detailed-exitcode")
	x.must("destroy", "-auto-approve")
	if got := containers(t, "tfstore-job-0"); len(got) != 0 {
		t.Errorf("containers of tfstore-job-0 after destroy: %v, want none", got)
	}
}

// TestTerraformModuleForEach declares fleets in a child module called
// with for_each, and a task on one of them from the root module: plan,
// apply, an empty second plan and destroy. The task and one fleet, made
// by the provider and removed with terraform state rm, are imported
// again by their module addresses from the provider's store, unchanged.
func TestTerraformModuleForEach(t *testing.T) {
	x := setup(t)
	run := "tfmod-job"
	dockertest.RemoveContainers(t, "dstack.run="+run)
	t.Cleanup(func() { dockertest.RemoveContainers(t, "dstack.run="+run) })
	if err := os.MkdirAll(filepath.Join(x.dir, "gpu_fleet"), 0o755); err != nil {
		t.Fatal(err)
	}
	x.write("gpu_fleet/main.tf", `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

variable "name" {
  type = string
}

resource "dstack_fleet" "this" {
  name     = "tfmod-${var.name}"
  nodes    = "1"
  backends = ["local"]
  resources {
    cpu    = "1.."
    memory = "256MB.."
    disk   = "1GB.."
  }
}

output "name" {
  value = dstack_fleet.this.name
}
`)
	x.write("main.tf", `terraform {
  required_providers {
    dstack = { source = "dstackai/dstack" }
  }
}

provider "dstack" {}

module "gpu_fleet" {
  source   = "./gpu_fleet"
  for_each = toset(["a", "b"])
  name     = each.key
}

resource "dstack_task" "job" {
  name          = "tfmod-job"
  image         = "dstack-test/busybox:latest"
  commands      = ["sleep 600"]
  fleets        = [module.gpu_fleet["a"].name]
  stop_duration = "1s"
  resources {
    cpu    = "1.."
    memory = "64MB.."
    disk   = "1GB.."
  }
}
`)
	x.must("init", "-input=false")
	out := x.exitCode(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "Plan: 3 to add, 0 to change, 0 to destroy.") {
		t.Fatalf("plan:\n%s", out)
	}
	out = x.must("apply", "-auto-approve")
	if !strings.Contains(out, "Apply complete! Resources: 3 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply:\n%s", out)
	}
	if got := containers(t, run); len(got) != 1 || got[0] != "running" {
		t.Fatalf("containers of %s: %v, want one running", run, got)
	}
	task := x.must("state", "show", "dstack_task.job")
	if !strings.Contains(task, `host        = "fleet.tfmod-a[0]"`) {
		t.Errorf("the task is not on fleet a's instance:\n%s", task)
	}
	x.exitCode(0, "plan", "-detailed-exitcode")

	// Removed from Terraform's state, the task and a fleet stay in the
	// store and are imported again by their addresses, as they were.
	fleetAddr := `module.gpu_fleet["a"].dstack_fleet.this`
	fleet := x.must("state", "show", fleetAddr)
	x.must("state", "rm", "dstack_task.job", fleetAddr)
	out = x.must("import", fleetAddr, "tfmod-a")
	if !strings.Contains(out, "Import successful!") {
		t.Fatalf("import of the fleet:\n%s", out)
	}
	out = x.must("import", "dstack_task.job", "task.tfmod-job")
	if !strings.Contains(out, "Import successful!") {
		t.Fatalf("import of the task:\n%s", out)
	}
	if got, want := attrValue(x.must("state", "show", fleetAddr), "provider_id"), attrValue(fleet, "provider_id"); got == "" || got != want {
		t.Errorf("re-imported fleet provider_id %q, want %q", got, want)
	}
	if got, want := attrValue(x.must("state", "show", "dstack_task.job"), "provider_id"), attrValue(task, "provider_id"); got == "" || got != want {
		t.Errorf("re-imported task provider_id %q, want %q", got, want)
	}
	out = x.exitCode(0, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes.") {
		t.Errorf("plan after re-import:\n%s", out)
	}
	if got := containers(t, run); len(got) != 1 || got[0] != "running" {
		t.Errorf("containers of %s after re-import: %v, want the one still running", run, got)
	}

	out = x.must("destroy", "-auto-approve")
	if !strings.Contains(out, "Destroy complete! Resources: 3 destroyed.") {
		t.Errorf("destroy:\n%s", out)
	}
	if got := containers(t, run); len(got) != 0 {
		t.Errorf("containers of %s after destroy: %v, want none", run, got)
	}
}

// TestTerraformFleetNodesObject: a fleet's size written as the YAML's
// {min, target, max} mapping applies, the fleet starts with target
// instances, and the next plan is empty.
func TestTerraformFleetNodesObject(t *testing.T) {
	x := setup(t)
	x.write("main.tf", providerHeader+`provider "dstack" {}

resource "dstack_fleet" "pool" {
  name     = "tfacc-nodes-object"
  nodes    = { min = 1, target = 1, max = 2 }
  backends = ["local"]
}

output "machines" {
  value = length(dstack_fleet.pool.provisioned)
}
`)
	x.must("init", "-input=false")
	x.must("apply", "-auto-approve")
	if out := strings.TrimSpace(x.must("output", "-raw", "machines")); out != "1" {
		t.Errorf("the fleet has %s machines, want its target, 1", out)
	}
	out := x.exitCode(0, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes.") {
		t.Errorf("plan after apply:\n%s", out)
	}
	x.must("destroy", "-auto-approve")
}

// TestTerraformCreateTimeout: a create slower than the resource's
// timeouts.create fails with an error saying so, and leaves nothing in
// the state; with a longer timeout the same create succeeds. The
// simulated cloud answers each call after a latency.
func TestTerraformCreateTimeout(t *testing.T) {
	x := setup(t)
	sim := t.TempDir()
	if err := os.WriteFile(filepath.Join(sim, "sim.json"), []byte(`{"latency": "2s"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	x.env = append(x.env, "DSTACK_SIM_DIR="+sim)
	config := func(create string) string {
		return providerHeader + `provider "dstack" {
  backend {
    type = "aws"
    credentials = { access_key = "AKIA", secret_key = "secret" }
  }
}

resource "dstack_fleet" "slow" {
  name     = "tfacc-timeout"
  nodes    = 1
  backends = ["aws"]
  resources {
    cpu = "2.."
  }
  timeouts {
    create = "` + create + `"
  }
}
`
	}
	x.write("main.tf", config("1s"))
	x.must("init", "-input=false")
	out := x.exitCode(1, "apply", "-auto-approve")
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Error: Create of fleet.tfacc-timeout timed out after 1s (timeouts.create)", "The create timeout (1s) passed"} {
		if !strings.Contains(flat, want) {
			t.Errorf("apply with a short create timeout lacks %q:\n%s", want, out)
		}
	}
	if out, _ := x.run("state", "list"); strings.Contains(out, "dstack_fleet.slow") {
		t.Errorf("the timed-out fleet is in the state:\n%s", out)
	}
	x.write("main.tf", config("2m"))
	x.must("apply", "-auto-approve")
	x.exitCode(0, "plan", "-detailed-exitcode")
	x.must("destroy", "-auto-approve")
}

// TestTerraformReplicaGroupsValidate: a service's replica groups and a
// fleet's backend_options, written as Terraform values, pass terraform
// validate; a group the model refuses is an error on replicas.
func TestTerraformReplicaGroupsValidate(t *testing.T) {
	x := setup(t)
	service := func(count string) string {
		return providerHeader + `provider "dstack" {}

resource "dstack_service" "llm" {
  name = "tfacc-groups"
  port = 8000
  replicas = [
    { name = "prefill", count = 2, commands = ["serve --prefill"], resources = { gpu = "H100:1" } },
    { name = "decode", count = ` + count + `, commands = ["serve --decode"], scaling = { metric = "rps", target = 5 } },
  ]
}

resource "dstack_fleet" "pool" {
  name            = "tfacc-groups"
  nodes           = "0..2"
  backends        = ["local"]
  backend_options = [{ placement_group = "pg-1", ebs = { iops = 3000 } }]
}
`
	}
	x.write("main.tf", service(`"1..3"`))
	x.must("init", "-input=false")
	x.must("validate")
	x.write("main.tf", service(`"lots"`))
	out := x.exitCode(1, "validate")
	if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, `Error: Invalid value for "replicas[1].count" with dstack_service.llm`) {
		t.Errorf("validate of a bad group count:\n%s", out)
	}
}
