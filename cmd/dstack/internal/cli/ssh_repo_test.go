package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestSSHFleetRepo: the repository task of the Docker script test
// (testdata/docker/repo.txtar) on an SSH fleet's host, delivered through
// the agent over SSH. The sshtest hosts are network and mount namespaces
// of this machine: the Docker Engine they could reach is the test
// machine's, whose containers see neither their network nor their /root
// (where the agent keeps the blobs), so the task makes the documented
// explicit choice of host processes, runtime: host. The job shows it is
// not in a container.
func TestSSHFleetRepo(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	p := newSSHProject(t, c)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = p.dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p.write("README", "committed line\n")
	p.write("gone.txt", "deleted later\n")
	p.write(".gitignore", "*.log\nhome/\nlocal-agent/\n")
	p.write("fleet.dstack.yml", fmt.Sprintf("type: fleet\nname: onprem\nssh_config:\n  user: root\n  identity_file: %s\n  hosts:\n    - %s\n",
		c.ClientKeyPath, h.PublicAddr))
	task := `type: task
name: %s
fleets: [onprem]
runtime: host
repos: [.]
files:
  - conf.txt:conf/app.txt
commands:
  - echo "where= image=$(cat /etc/dstack-stand-in 2>/dev/null || echo none) pid1=$(cat /proc/1/comm)"
  - echo "listing= $(ls -A | tr '\n' ' ')"
  - sed 's/^/README= /' README
  - echo "untracked= $(cat untracked.txt)"
  - echo "files= $(cat conf/app.txt)"
  - echo "repo dir= $DSTACK_REPO_DIR"
`
	p.write("task.dstack.yml", fmt.Sprintf(task, "repo"))
	p.write("again.dstack.yml", fmt.Sprintf(task, "repo-again"))
	git("init", "-q", "-b", "main")
	git("add", "README", "gone.txt", ".gitignore")
	git("commit", "-q", "-m", "first")
	p.write("README", "committed line\nuncommitted edit\n")
	p.write("untracked.txt", "a new file\n")
	p.write("debug.log", "ignored\n")
	p.write("conf.txt", "from files\n")
	if err := os.Remove(filepath.Join(p.dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}

	p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	out := p.must(0, "apply", "-f", "task.dstack.yml", "-y")
	// The job prints what it finds, so that these checks cannot match
	// the commands the plan shows: the repo at its commit plus the edit
	// and the untracked file, without the ignored or deleted ones or the
	// local state (.dstack/), and the file from files:.
	for _, want := range []string{"\nwhere= image=none pid1=", "\nREADME= committed line\n", "\nREADME= uncommitted edit\n",
		"\nuntracked= a new file\n", "\nfiles= from files\n", "\nrepo dir= /root/.dstack/",
		"\nlisting= .gitignore README again.dstack.yml conf conf.txt fleet.dstack.yml task.dstack.yml untracked.txt \n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the task's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pid1=sh\n") {
		t.Errorf("the job is PID 1 of a namespace of its own, as in a container:\n%s", out)
	}
	stored := func() string {
		t.Helper()
		n, err := h.Exec(t, "grep -c 'blob stored' /root/.dstack/agent/agent.log")
		if err != nil {
			t.Fatalf("reading the agent's log: %v", err)
		}
		return strings.TrimSpace(n)
	}
	if n := stored(); n != "3" {
		t.Fatalf("the host's agent stored %s blobs, want 3 (commit, changes, file)", n)
	}
	// The same content again: nothing crosses the network.
	out = p.must(0, "apply", "-f", "again.dstack.yml", "-y")
	if !strings.Contains(out, "README= uncommitted edit") {
		t.Fatalf("the second run's output:\n%s", out)
	}
	if n := stored(); n != "3" {
		t.Fatalf("after a second run of the same content the agent stored %s blobs, want still 3", n)
	}

	// A private remote: a repository on the host, served by its sshd
	// to the client's key only. The client clones it with its own git
	// and SSH credentials (GIT_SSH_COMMAND here; an SSH agent or a
	// credential helper alike), and only the archive reaches the host:
	// nothing of the credentials is in the state.
	bare := filepath.Join(h.Home, "private.git")
	git("init", "-q", "--bare", "-b", "main", bare)
	git("remote", "add", "private", bare)
	git("push", "-q", "private", "main")
	url := fmt.Sprintf("ssh://root@%s/root/private.git", h.PublicAddr)
	p.write("remote.dstack.yml", fmt.Sprintf(`type: task
name: remote
fleets: [onprem]
runtime: host
repos:
  - url: %s
    path: src
commands:
  - sed 's/^/remote README= /' src/README
  - echo "remote listing= $(ls -A src | tr '\n' ' ')"
`, url))
	env := p.env
	p.env = append(append([]string(nil), p.env...), "GIT_SSH_COMMAND=ssh -i "+c.ClientKeyPath+
		" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
	out = p.must(0, "apply", "-f", "remote.dstack.yml", "-y")
	p.env = env
	if !strings.Contains(out, "\nremote README= committed line\n") || strings.Contains(out, "remote README= uncommitted edit") ||
		!strings.Contains(out, "\nremote listing= .gitignore README gone.txt \n") {
		t.Fatalf("the private remote's task (its commit, no local changes):\n%s", out)
	}
	key, err := os.ReadFile(c.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	pulled := p.must(0, "state", "pull")
	// (The fleet's own identity_file path is in its configuration; the
	// key itself, and how git was told to use it, are not.)
	for _, secret := range []string{strings.TrimSpace(string(key)), "GIT_SSH_COMMAND", "IdentitiesOnly"} {
		if strings.Contains(pulled, secret) {
			t.Errorf("the state holds %q", secret)
		}
	}
	// Without the credentials the clone fails on this machine, saying so.
	out, code := p.dstack("apply", "-f", "remote.dstack.yml", "-replace", "task.remote", "-y")
	if code == 0 || !strings.Contains(out, "cloning") {
		t.Errorf("a clone without credentials: exit %d\n%s", code, out)
	}
}
