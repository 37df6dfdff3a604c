package agent_test

import (
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/agent"
)

// TestDockerJobRepoAndFiles: in a container the blobs are mounted
// read-only, one file each, and the job's own shell unpacks them into
// the image's working directory (busybox's tar), before its commands.
func TestDockerJobRepoAndFiles(t *testing.T) {
	rt, img := dockerRuntime(t)
	a := startAgent(t, t.TempDir(), withRuntime(rt))
	base, _ := a.upload(tarOf(t, "README", "committed\n", "gone.txt", "x"))
	diff, _ := a.upload(tarOf(t, "README", "committed\nedited\n"))
	file, _ := a.upload(tarOf(t, "x", "netrc\n"))
	spec := dockerJob(t, img, "repo", `cd /work && cat README && test ! -e gone.txt && echo "repo=$DSTACK_REPO_DIR"`,
		`cat ~/.netrc`, `ls /.dstack/blobs | wc -l`, `touch /.dstack/blobs/`+base+` 2>/dev/null || echo blobs-read-only`)
	spec.WorkingDir = "/work"
	spec.Repo = &agent.RepoArchive{Base: base, Diff: diff, Deleted: []string{"gone.txt"}}
	spec.Files = []agent.FileArchive{{Path: "~/.netrc", Blob: file}}
	a.submit(spec)
	j := a.waitFinished(spec.ID)
	out := a.logs(spec.ID)
	if exitCode(j) != 0 {
		t.Fatalf("job failed (%s):\n%s", j.Reason, out)
	}
	for _, want := range []string{"committed\nedited\nrepo=/work\n", "netrc\n", "3\n", "blobs-read-only"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestDockerJobHomeWorkingDir: a working directory in the user's home
// (~/...), which Docker cannot expand, is made and entered by the job's
// shell before the repo is unpacked there.
func TestDockerJobHomeWorkingDir(t *testing.T) {
	rt, img := dockerRuntime(t)
	a := startAgent(t, t.TempDir(), withRuntime(rt))
	base, _ := a.upload(tarOf(t, "README", "in home\n"))
	spec := dockerJob(t, img, "home", `echo "pwd=$(pwd) repo=$DSTACK_REPO_DIR"`, `cat README`)
	spec.WorkingDir = "~/proj"
	spec.Repo = &agent.RepoArchive{Base: base}
	a.submit(spec)
	j := a.waitFinished(spec.ID)
	out := a.logs(spec.ID)
	if exitCode(j) != 0 || !strings.Contains(out, "pwd=/root/proj repo=/root/proj\nin home\n") {
		t.Fatalf("exit %d (%s):\n%s", exitCode(j), j.Reason, out)
	}
}
