package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The acceptance tests run under two CLIs, terraform 1.5.7 and OpenTofu.
// Every test that drives a CLI finds it through cliUnderTest, so a new
// test runs under both without saying so: TestMain runs the package's
// tests once per CLI, the second time in a child process of the same test
// binary, with cliEnv naming the CLI. Setting cliEnv by hand runs the
// tests under that CLI only (DSTACK_TF_CLI=tofu go test -run X).
//
// A child process, rather than subtests, keeps the tests themselves
// unchanged: each test's body would otherwise have to move into a
// closure, and the tests drive one agent, Docker and fixed resource names,
// so the two CLIs run one after the other anyway.
const cliEnv = "DSTACK_TF_CLI"

// cliSpec is one CLI the tests can drive.
type cliSpec struct {
	name    string // the command, also the label in messages
	host    string // the registry host the CLI puts before dstackai/dstack
	require string // the variable that makes a missing CLI a failure
	install string // how to install it
}

var clis = []cliSpec{
	{name: "terraform", host: "registry.terraform.io", require: requireEnv,
		install: "go install github.com/hashicorp/terraform@v1.5.7"},
	{name: "tofu", host: "registry.opentofu.org", require: "DSTACK_REQUIRE_TOFU",
		install: "bash .ci/install-tofu.sh"},
}

// tfCLI is the CLI a test drives: its spec and the path of its binary.
type tfCLI struct {
	cliSpec
	bin string
}

// providerAddress is the provider's address as the CLI reports it (in
// the state and in providers schema -json).
func (c tfCLI) providerAddress() string { return c.host + "/dstackai/dstack" }

// cliUnderTest finds the CLI this process tests, skipping the test when
// it is not installed, or failing it when its require variable is 1.
func cliUnderTest(t *testing.T) tfCLI {
	t.Helper()
	name := os.Getenv(cliEnv)
	if name == "" {
		name = clis[0].name
	}
	var spec cliSpec
	for _, c := range clis {
		if c.name == name {
			spec = c
		}
	}
	if spec.name == "" {
		t.Fatalf("%s=%q: want terraform or tofu", cliEnv, name)
	}
	if p, err := exec.LookPath(spec.name); err == nil {
		return tfCLI{spec, p}
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		home, _ := os.UserHomeDir()
		gobin = filepath.Join(home, "go", "bin")
	}
	if p := filepath.Join(gobin, spec.name); fileExists(p) {
		return tfCLI{spec, p}
	}
	msg := fmt.Sprintf("%s is not installed (%s)", spec.name, spec.install)
	if os.Getenv(spec.require) == "1" {
		t.Fatalf("%s, and %s=1", msg, spec.require)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, spec.require)
	return tfCLI{}
}

// TestMain runs the tests under terraform in this process and then under
// each other CLI in a child process; it fails when any run fails.
func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) != "" {
		os.Exit(m.Run())
	}
	code := m.Run()
	for _, c := range clis[1:] {
		if code != 0 && failFast() {
			break
		}
		fmt.Printf("=== the same tests under %s (%s=%s)\n", c.name, cliEnv, c.name)
		if rc := runUnder(c.name); rc != 0 {
			code = rc
		}
	}
	os.Exit(code)
}

// runUnder runs this test binary again with cliEnv=name and the flags
// that choose and report tests; the flags that write files (the test log
// go test caches by, profiles, coverage) stay with this process, which
// would otherwise share them with the child.
func runUnder(name string) int {
	var args []string
	for _, a := range os.Args[1:] {
		for _, keep := range []string{"-test.run=", "-test.skip=", "-test.v", "-test.count=", "-test.timeout=",
			"-test.failfast", "-test.short", "-test.paniconexit0", "-test.fullpath"} {
			if strings.HasPrefix(a, keep) {
				args = append(args, a)
				break
			}
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliEnv+"="+name)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "running the tests under %s: %v\n", name, err)
		return 1
	}
	return 0
}

func failFast() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.failfast" || a == "-test.failfast=true" {
			return true
		}
	}
	return false
}
