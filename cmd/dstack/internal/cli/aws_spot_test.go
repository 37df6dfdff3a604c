package cli

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent/imds/imdstest"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestAWSSpotInterruption drives the real CLI on the aws backend (the
// fake EC2, its instances real SSH hosts) through a spot interruption:
// the agent of the spot instance watches amazon-ec2-metadata-mock, which
// gives the notice; the task's job, which ignores SIGTERM, is killed
// after its 2s stop_duration and ends failed by the interruption; EC2
// then takes the instance back; the next apply launches a new instance
// and, since the task's retry lists interruption, runs the task there.
func TestAWSSpotInterruption(t *testing.T) {
	if imdstest.Binary() == "" {
		if os.Getenv(imdstest.RequireEnv) != "" {
			t.Fatalf("ec2-metadata-mock is not installed and %s is set", imdstest.RequireEnv)
		}
		t.Skip("ec2-metadata-mock is not installed; run .ci/install-ec2-metadata-mock.sh")
	}
	c := sshtest.Start(t, sshtest.Options{Hosts: 2, Public: allTrue(2)})
	f := awstest.New(awstest.Options{Machines: awstest.SSHMachines(c)})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "dstack-provider-aws"), "github.com/dstackai/dstack-go/cmd/dstack-provider-aws")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dstack-provider-aws: %v\n%s", err, out)
	}
	p := newSSHProject(t, c)
	home := filepath.Join(p.dir, "home")
	backends := "backends:\n  - type: aws\n    regions: [us-east-1]\n    creds:\n      type: access_key\n" +
		"      access_key: AKIAFAKEFAKEFAKE0001\n      secret_key: fake-secret-key\n"
	if err := os.MkdirAll(filepath.Join(home, ".dstack"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".dstack", "backends.yml"), []byte(backends), 0o600); err != nil {
		t.Fatal(err)
	}
	// The instances' agents watch the metadata mock on this machine's
	// address on their network, not EC2's.
	port, err := imdstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p.env = append(withoutAWS(p.env), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ENDPOINT_URL_EC2="+srv.URL, "AWS_ENDPOINT_URL_PRICING="+srv.URL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "no-aws-credentials"),
		"DSTACK_AWS_IMDS_ENDPOINT=http://"+c.Gateway+":"+strconv.Itoa(port))
	waitFor := func(what string, re *regexp.Regexp, args ...string) string {
		t.Helper()
		var out string
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if out, _ = p.dstack(args...); re.MatchString(out) {
				return out
			}
		}
		t.Fatalf("%s: dstack %s never matched %s; last:\n%s", what, strings.Join(args, " "), re, out)
		return ""
	}

	p.write("fleet.dstack.yml", "type: fleet\nname: spot\nnodes: 1\nbackends: [aws]\nspot_policy: spot\nresources:\n  gpu: L4\n")
	p.write("train.dstack.yml", "type: task\nname: train\nfleets: [spot]\nstop_duration: 2s\nretry:\n  on_events: [interruption]\n"+
		"commands:\n  - trap '' TERM\n  - echo training\n  - sleep 600\n")
	p.must(0, "apply", "-y")
	running := f.Running()
	if len(running) != 1 || running[0].Lifecycle != "spot" {
		t.Fatalf("instances after apply: %+v", running)
	}
	first := running[0]
	waitFor("the task runs", regexp.MustCompile(`task\.train +0 +running`), "ps")
	waitFor("the task sets its trap", regexp.MustCompile(`training`), "logs", "train")

	// The notice comes; the agent polls every 5 s and kills the job 2 s
	// after its SIGTERM.
	dir := t.TempDir()
	notice, err := imdstest.LaunchOn(dir, c.Gateway, port, "spot", "--imdsv2", "--mock-delay-sec", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer notice.Stop()
	waitFor("the job is stopped by the notice",
		regexp.MustCompile(`task\.train +0 +failed \(interrupted \(spot interruption notice: terminate at [0-9TZ:-]+\): killed by signal 9\)`), "ps", "-a")

	// EC2 takes the instance back; the next machine gets no notice.
	notice.Stop()
	if err := f.Interrupt(first.ID); err != nil {
		t.Fatal(err)
	}
	calm, err := imdstest.LaunchOn(t.TempDir(), c.Gateway, port, "spot", "--imdsv2", "--mock-delay-sec", "3600")
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Stop()
	plan := p.must(0, "plan")
	if !strings.Contains(plan, "the task's job was interrupted and retry on interruption allows another attempt") {
		t.Fatalf("plan after the interruption:\n%s", plan)
	}
	p.must(0, "apply", "-y")
	running = f.Running()
	if len(running) != 1 || running[0].ID == first.ID {
		t.Fatalf("instances after the second apply: %+v (the first was %s)", running, first.ID)
	}
	waitFor("the task runs again", regexp.MustCompile(`task\.train +0 +running`), "ps")
	p.must(0, "destroy", "-y")
	if r := f.Running(); len(r) != 0 {
		t.Errorf("instances still run after destroy: %+v", r)
	}
}
