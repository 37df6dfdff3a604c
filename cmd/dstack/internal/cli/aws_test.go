package cli

import (
	"encoding/json"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// Credentials the AWS tests give dstack: distinctive, so that a leak is
// found by searching for them.
const (
	leakAccessKey    = "AKIALEAKCHECK7Q2W9E1"
	leakSecretKey    = "sEcReT/leak-check+Zq8vN3xR0tY5uP7wK2mB4"
	leakSessionToken = "FwoGZXIvYXdzE-leak-check-session-token-9f8e7d"
)

// awsProject is a dstack project on the aws backend, its EC2 the fake
// (package awstest) whose machines are real SSH hosts, reached by the real
// CLI binary and the real dstack-provider-aws (built here, found on PATH).
type awsProject struct {
	*sshProject
	fake  *awstest.Fake
	hosts *sshtest.Cluster
}

func newAWSProject(t testing.TB, machines int) *awsProject {
	t.Helper()
	c := sshtest.Start(t, sshtest.Options{Hosts: machines, Public: allTrue(machines)})
	// Volumes keep their data in sparse files, attached to the hosts as
	// loop devices.
	f := awstest.New(awstest.Options{Machines: awstest.SSHMachines(c), DiskDir: t.TempDir()})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { f.Close() })
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "dstack-provider-aws"), "github.com/dstackai/dstack-go/cmd/dstack-provider-aws")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dstack-provider-aws: %v\n%s", err, out)
	}
	p := newSSHProject(t, c)
	home := filepath.Join(p.dir, "home")
	// The backend block gives the credentials; the SDK's endpoint
	// variable points it at the fake, and nothing else of this machine's
	// AWS configuration is read.
	backends := "backends:\n  - type: aws\n    regions: [us-east-1]\n    creds:\n      type: access_key\n" +
		"      access_key: " + leakAccessKey + "\n      secret_key: " + leakSecretKey + "\n      session_token: " + leakSessionToken + "\n"
	if err := os.MkdirAll(filepath.Join(home, ".dstack"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".dstack", "backends.yml"), []byte(backends), 0o600); err != nil {
		t.Fatal(err)
	}
	p.env = append(withoutAWS(p.env), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ENDPOINT_URL_EC2="+srv.URL, "AWS_ENDPOINT_URL_PRICING="+srv.URL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "no-aws-credentials"))
	return &awsProject{sshProject: p, fake: f, hosts: c}
}

func withoutAWS(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

func allTrue(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

// TestAWSFleetAndTask drives the real CLI against the fake EC2 API: apply
// of a fleet on backend aws launches an instance (a real SSH host that
// accepts the key of its user-data), installs the agent over SSH; a task
// on the fleet runs there and its output streams back; destroy
// terminates everything. No credential appears in any output or in the
// state.
func TestAWSFleetAndTask(t *testing.T) {
	p := newAWSProject(t, 1)
	var outputs []string
	must := func(want int, args ...string) string {
		t.Helper()
		out := p.must(want, args...)
		outputs = append(outputs, out)
		return out
	}
	p.write("fleet.dstack.yml", "type: fleet\nname: gpus\nnodes: 1\nbackends: [aws]\nresources:\n  gpu: L4\ntags:\n  team: research\n")
	plan := must(0, "plan", "-f", "fleet.dstack.yml")
	if !strings.Contains(plan, "g6.xlarge") || !strings.Contains(plan, "us-east-1") {
		t.Fatalf("plan does not offer the catalog's aws g6.xlarge:\n%s", plan)
	}
	if n := len(p.fake.Instances()); n != 0 {
		t.Fatalf("plan launched %d instances", n)
	}
	out := must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	running := p.fake.Running()
	if len(running) != 1 {
		t.Fatalf("%d instances run after apply, want 1:\n%s", len(running), out)
	}
	inst := running[0]
	if inst.Type != "g6.xlarge" || inst.Tags["dstack:address"] != "fleet.gpus[0]" || inst.Tags["team"] != "research" ||
		inst.Tags["dstack:token"] == "" || !strings.HasPrefix(inst.ClientToken, inst.Tags["dstack:token"]) {
		t.Errorf("launched %+v", inst)
	}
	if !strings.Contains(string(inst.UserData), "ssh_authorized_keys:") {
		t.Errorf("user-data %q delivers no key", inst.UserData)
	}
	assertProjectKey(t, p, inst)

	p.write("hello.dstack.yml", "type: task\nname: hello\nfleets: [gpus]\nruntime: host\ncommands:\n  - echo \"hello from $(hostname) rank=$DSTACK_NODE_RANK\"\n")
	out = must(0, "apply", "-f", "hello.dstack.yml", "-y")
	logs := must(0, "logs", "hello")
	if !strings.Contains(out, "hello from ") || !strings.Contains(logs, "hello from ") || !strings.Contains(logs, "rank=0") {
		t.Fatalf("the task's output did not come back:\napply:\n%s\nlogs:\n%s", out, logs)
	}
	// logs -since reaches the instance's agent too.
	if since := must(0, "logs", "hello", "-since", "1h"); !strings.Contains(since, "rank=0") {
		t.Errorf("logs -since 1h:\n%s", since)
	}
	if since := must(0, "logs", "hello", "-since", "2999-01-01T00:00:00Z"); since != "" {
		t.Errorf("logs -since a time to come:\n%s", since)
	}
	ps := must(0, "ps", "-a")
	if !strings.Contains(ps, inst.ID) && !strings.Contains(ps, "fleet.gpus[0]") {
		t.Errorf("ps does not show the task on the instance:\n%s", ps)
	}
	must(0, "plan", "-detailed-exitcode")

	must(0, "destroy", "-y")
	if r := p.fake.Running(); len(r) != 0 {
		t.Errorf("instances still run after destroy: %+v", r)
	}
	for _, i := range p.fake.Instances() {
		if i.State != "terminated" {
			t.Errorf("%s is %s after destroy", i.ID, i.State)
		}
	}
	assertNoCredentials(t, p.sshProject, outputs)
}

// assertNoCredentials fails if a credential value is in any of the
// outputs or in any file of the project (its state, its journal, its
// plans) or of dstack's home directory, but the backends file that
// holds them.
func assertNoCredentials(t *testing.T, p *sshProject, outputs []string) {
	t.Helper()
	secrets := []string{leakAccessKey, leakSecretKey, leakSessionToken}
	for i, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output %d holds a credential (%.8s...):\n%s", i, s, out)
			}
		}
	}
	backends := filepath.Join(p.dir, "home", ".dstack", "backends.yml")
	files := 0
	err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == backends || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds a credential (%.8s...)", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, ".dstack")); err != nil || files < 3 {
		t.Fatalf("found %d files to search, and the state directory: %v", files, err)
	}
}

// TestAWSRunWithoutFleet: a task on backend aws that names no fleet gets
// an instance of its own, runs there with its output streamed back, and
// destroy terminates the instance.
func TestAWSRunWithoutFleet(t *testing.T) {
	p := newAWSProject(t, 1)
	// The fake's machines have no GPUs: a CPU task.
	p.write("solo.dstack.yml", "type: task\nname: solo\nbackends: [aws]\nspot_policy: on-demand\nresources:\n  cpu: 4..\ncommands:\n  - echo \"solo on $(hostname)\"\n")
	out := p.must(0, "apply", "-f", "solo.dstack.yml", "-y")
	if !strings.Contains(out, "solo on ") {
		t.Fatalf("the task's output did not come back:\n%s", out)
	}
	all := p.fake.Instances()
	if len(all) != 1 || all[0].Tags["dstack:address"] != "task.solo[0]" {
		t.Fatalf("instances %+v, want one for task.solo[0]", all)
	}
	p.must(0, "destroy", "-y")
	if r := p.fake.Running(); len(r) != 0 {
		t.Errorf("instances still run after destroy: %+v", r)
	}
}

// TestAWSOwnMachineReleasedWhenIdle: the instance a finished task without
// a fleet ran on is terminated by the apply made once the run has been
// finished for its idle_duration, and not by one made before; ps still
// lists the run as done, with its exit code, and a rerun (apply -f)
// launches a new instance.
func TestAWSOwnMachineReleasedWhenIdle(t *testing.T) {
	p := newAWSProject(t, 2)
	p.write("solo.dstack.yml", "type: task\nname: solo\nbackends: [aws]\nspot_policy: on-demand\nidle_duration: 3s\nresources:\n  cpu: 4..\ncommands:\n  - echo \"solo on $(hostname)\"\n")
	p.must(0, "apply", "-f", "solo.dstack.yml", "-y")
	if r := p.fake.Running(); len(r) != 1 {
		t.Fatalf("right after the task finished %d instances run, want its own 1: %+v", len(r), r)
	}
	time.Sleep(4 * time.Second)
	plan := p.must(0, "plan")
	if !strings.Contains(plan, "own machine idle past idle_duration (3s)") || !strings.Contains(plan, "run finished") {
		t.Fatalf("the plan after idle_duration does not release the machine:\n%s", plan)
	}
	p.must(0, "apply", "-y")
	if r := p.fake.Running(); len(r) != 0 {
		t.Fatalf("instances still run after the release: %+v", r)
	}
	ps := p.must(0, "ps", "-a")
	if !regexp.MustCompile(`task\.solo +0 +done`).MatchString(ps) {
		t.Fatalf("ps does not show the run finished:\n%s", ps)
	}
	if plan := p.must(0, "plan"); !strings.Contains(plan, "No changes") {
		t.Errorf("the plan after the release is not empty:\n%s", plan)
	}
	out := p.must(0, "apply", "-f", "solo.dstack.yml", "-y")
	if !strings.Contains(out, "solo on ") || len(p.fake.Running()) != 1 {
		t.Fatalf("the rerun did not run on a new instance (running %+v):\n%s", p.fake.Running(), out)
	}
	p.must(0, "destroy", "-y")
}

// TestAWSAgentDownKeepsInstance: an instance whose agent died is not
// forgotten and launched again (which would leave the first running,
// and billed, outside the state): plan reports it and apply launches
// nothing; destroy still terminates it.
func TestAWSAgentDownKeepsInstance(t *testing.T) {
	p := newAWSProject(t, 2)
	p.write("fleet.dstack.yml", "type: fleet\nname: gpus\nnodes: 1\nbackends: [aws]\nresources:\n  gpu: L4\n")
	p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	h := p.hosts.Hosts[0]
	if _, err := h.Exec(t, `kill -9 "$(cat /root/.dstack/agent/supervisor.pid)" "$(cat /root/.dstack/agent/agent.pid)"`); err != nil {
		t.Fatal(err)
	}
	// The plan names the instance and why nothing is placed there.
	plan := p.must(0, "plan", "-f", "fleet.dstack.yml")
	id := p.fake.Running()[0].ID
	if !strings.Contains(plan, "instance "+id+" of fleet.gpus") || !strings.Contains(plan, "agent is not running") ||
		!strings.Contains(plan, "no run is placed there") {
		t.Errorf("the plan does not say that %s's agent is down:\n%s", id, plan)
	}
	out := p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	if n := len(p.fake.Instances()); n != 1 {
		t.Fatalf("%d instances after an apply with the agent down, want the one:\n%s", n, out)
	}
	p.must(0, "destroy", "-y")
	if r := p.fake.Running(); len(r) != 0 {
		t.Errorf("running after destroy: %+v", r)
	}
}

// assertProjectKey checks that the instance accepts its project's key:
// the one dstack made at ~/.dstack/aws/projects/LINEAGE/id_ed25519 for
// the state's lineage, whose private half is in no state file.
func assertProjectKey(t *testing.T, p *awsProject, inst awstest.Instance) {
	t.Helper()
	var st struct {
		Lineage string `json:"lineage"`
	}
	if err := json.Unmarshal([]byte(p.must(0, "state", "pull")), &st); err != nil || st.Lineage == "" {
		t.Fatalf("state pull: lineage %q, %v", st.Lineage, err)
	}
	keyPath := filepath.Join(p.dir, "home", ".dstack", "aws", "projects", st.Lineage, "id_ed25519")
	b, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatalf("the project's key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.Fields(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))[1]
	if !strings.Contains(string(inst.UserData), pub) {
		t.Errorf("user-data %q does not carry the project's key %s", inst.UserData, pub)
	}
	body := strings.Split(strings.TrimSpace(string(b)), "\n")[1] // a line of the private key
	_ = filepath.WalkDir(filepath.Join(p.dir, ".dstack"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if c, _ := os.ReadFile(path); strings.Contains(string(c), body) {
				t.Errorf("%s holds the project's private key", path)
			}
		}
		return nil
	})
}

// TestAWSVolumeMounted: a task on backend aws that mounts a `type:
// volume` sees the EBS volume at its path: the first run writes a file
// there, the second (on an instance of its own, the volume detached and
// attached again) reads it back. The runs are host processes (runtime:
// host): dockerd here does not see an sshtest host's own mounts.
func TestAWSVolumeMounted(t *testing.T) {
	if out, err := exec.Command("losetup", "--find").CombinedOutput(); err != nil {
		t.Skipf("no loop devices here (losetup --find: %v: %s)", err, out)
	}
	p := newAWSProject(t, 2)
	path := filepath.Join(t.TempDir(), "data")
	p.write("volume.dstack.yml", "type: volume\nname: data\nbackend: aws\nregion: us-east-1\nsize: 1GB\n")
	p.must(0, "apply", "-f", "volume.dstack.yml", "-y")
	task := func(name, cmd string) string {
		p.write(name+".dstack.yml", "type: task\nname: "+name+"\nbackends: [aws]\nruntime: host\nvolumes:\n  - name: data\n    path: "+path+
			"\ncommands:\n  - "+cmd+"\n")
		return p.must(0, "apply", "-f", name+".dstack.yml", "-y")
	}
	task("writer", "echo kept-on-ebs > "+path+"/f && findmnt -n -o SOURCE,FSTYPE --target "+path+"/f")
	if logs := p.must(0, "logs", "writer"); !strings.Contains(logs, "/dev/loop") || !strings.Contains(logs, "ext4") {
		t.Errorf("the writer's path is not on the volume's device (an ext4 loop device):\n%s", logs)
	}
	// A finished run keeps its machine, and the volume attached, until
	// it is destroyed.
	p.must(0, "destroy", "-target", "task.writer", "-y")
	out := task("reader", "cat "+path+"/f")
	if logs := p.must(0, "logs", "reader"); !strings.Contains(out+logs, "kept-on-ebs") {
		t.Errorf("the reader did not find the writer's file:\n%s\n%s", out, logs)
	}
	if ids := p.fake.Instances(); len(ids) != 2 || ids[0].ID == ids[1].ID {
		t.Errorf("instances %+v, want one per run", ids)
	}
	// The volume was applied from other files than the run: destroy
	// still deletes the run (detaching the volume) before the volume.
	p.must(0, "destroy", "-y")
	if vols := p.fake.Volumes(); len(vols) != 0 {
		t.Errorf("volumes after destroy: %+v", vols)
	}
}
