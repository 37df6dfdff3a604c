package agent_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/host"
)

// tarOf builds a tar of name → content ("dir" ends in "/").
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		name, content := files[i], files[i+1]
		if strings.HasSuffix(name, "/") {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	tw.Close()
	return buf.Bytes()
}

// upload writes data to a file and puts it as a blob; it returns the
// hash and whether the agent stored it.
func (a *testAgent) upload(data []byte) (string, bool) {
	a.t.Helper()
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	p := filepath.Join(a.t.TempDir(), "blob")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		a.t.Fatal(err)
	}
	sent, err := a.c.PutBlob(a.t.Context(), hash, p)
	if err != nil {
		a.t.Fatalf("put blob: %v", err)
	}
	return hash, sent
}

// TestBlobsStoredOnce: a blob is sent and stored once per host; the
// second put of the same content sends nothing and stores nothing.
func TestBlobsStoredOnce(t *testing.T) {
	a := startAgent(t, t.TempDir())
	data := tarOf(t, "a", "1")
	hash, sent := a.upload(data)
	if !sent || a.m.BlobsStored() != 1 {
		t.Fatalf("first put: sent %v, stored %d; want sent, 1", sent, a.m.BlobsStored())
	}
	if _, sent := a.upload(data); sent || a.m.BlobsStored() != 1 {
		t.Fatalf("second put: sent %v, stored %d; want not sent, still 1", sent, a.m.BlobsStored())
	}
	if has, err := a.c.HasBlob(t.Context(), hash); err != nil || !has {
		t.Fatalf("HasBlob = %v, %v", has, err)
	}
	if has, err := a.c.HasBlob(t.Context(), strings.Repeat("0", 64)); err != nil || has {
		t.Fatalf("HasBlob of a missing blob = %v, %v", has, err)
	}
	// Bytes that do not hash to the name are refused and not kept.
	p := filepath.Join(t.TempDir(), "lie")
	os.WriteFile(p, []byte("other bytes"), 0o600)
	_, err := a.c.PutBlob(t.Context(), strings.Repeat("a", 64), p)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 400 || !strings.Contains(ce.Message, "does not match its hash") {
		t.Fatalf("put with a wrong hash: %v, want 400", err)
	}
	if has, _ := a.c.HasBlob(t.Context(), strings.Repeat("a", 64)); has {
		t.Fatal("a blob with the wrong content was kept")
	}
	// A job naming a blob that is not there is refused before it starts.
	_, _, err = a.c.Submit(t.Context(), agent.JobSpec{ID: "nob", Commands: []string{"true"},
		Files: []agent.FileArchive{{Path: "f", Blob: strings.Repeat("b", 64)}}})
	if !errors.As(err, &ce) || ce.StatusCode != 400 || !strings.Contains(ce.Message, "blobs not uploaded") {
		t.Fatalf("submit with a missing blob: %v, want 400", err)
	}
}

// TestHostJobRepoAndFiles: the host runtime's job gets the base, minus
// the deletions, plus the diff, at its repo path (the working directory
// by default), and each file at its path, before its commands run.
func TestHostJobRepoAndFiles(t *testing.T) {
	a := startAgent(t, t.TempDir())
	base, _ := a.upload(tarOf(t, "README", "committed\n", "gone.txt", "x", "src/", "", "src/main.py", "v1\n"))
	diff, _ := a.upload(tarOf(t, "README", "committed\nedited\n", "new.txt", "untracked\n"))
	file, _ := a.upload(tarOf(t, "x", "file content\n"))
	dirBlob, _ := a.upload(tarOf(t, "x/", "", "x/a.yaml", "a: 1\n"))
	a.submit(agent.JobSpec{ID: "repo", Commands: []string{
		`pwd; echo "repo=$DSTACK_REPO_DIR wd=$DSTACK_WORKING_DIR"`,
		`cat README new.txt src/main.py`,
		`test ! -e gone.txt && echo gone-deleted`,
		`cat conf/a.yaml`,
	},
		Repo:  &agent.RepoArchive{Base: base, Diff: diff, Deleted: []string{"gone.txt"}},
		Files: []agent.FileArchive{{Path: "conf", Blob: dirBlob}},
	})
	j := a.waitFinished("repo")
	out := a.logs("repo")
	if exitCode(j) != 0 {
		t.Fatalf("job failed (%s):\n%s", j.Reason, out)
	}
	for _, want := range []string{"committed\nedited\nuntracked\nv1\n", "gone-deleted", "a: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	wd := strings.SplitN(out, "\n", 2)[0]
	if !strings.Contains(out, "repo="+wd+" wd="+wd) {
		t.Errorf("DSTACK_REPO_DIR and DSTACK_WORKING_DIR are not the working dir %s:\n%s", wd, out)
	}

	// A file at an absolute path; its parent directories are made.
	dest := filepath.Join(t.TempDir(), "deep", "er", "f.txt")
	a.submit(agent.JobSpec{ID: "file", Commands: []string{`cat "$F"`}, Env: map[string]string{"F": dest},
		Files: []agent.FileArchive{{Path: dest, Blob: file}}})
	if j := a.waitFinished("file"); exitCode(j) != 0 || !strings.Contains(a.logs("file"), "file content") {
		t.Fatalf("file job: %s\n%s", j.Reason, a.logs("file"))
	}

	// A repo path that is not empty fails the job, or is kept with skip.
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "mine"), []byte("mine"), 0o600)
	a.submit(agent.JobSpec{ID: "exists", Commands: []string{"echo ran"}, Repo: &agent.RepoArchive{Path: full, Base: base}})
	if j := a.waitFinished("exists"); exitCode(j) == 0 || !strings.Contains(a.logs("exists"), "is not empty") || strings.Contains(a.logs("exists"), "ran") {
		t.Fatalf("a non-empty repo dir: exit %d, log:\n%s", exitCode(j), a.logs("exists"))
	}
	a.submit(agent.JobSpec{ID: "skip", Commands: []string{"ls " + full}, Repo: &agent.RepoArchive{Path: full, Base: base, IfExists: "skip"}})
	if j := a.waitFinished("skip"); exitCode(j) != 0 || strings.Contains(a.logs("skip"), "README") {
		t.Fatalf("if_exists skip: exit %d, log:\n%s", exitCode(j), a.logs("skip"))
	}
}

// TestArchiveSpecValidation: what the agent refuses up front.
func TestArchiveSpecValidation(t *testing.T) {
	h := strings.Repeat("c", 64)
	for name, spec := range map[string]agent.JobSpec{
		"no commands":  {ID: "a", Image: "x", Repo: &agent.RepoArchive{Base: h}},
		"entrypoint":   {ID: "a", Entrypoint: []string{"x"}, Commands: []string{"y"}, Files: []agent.FileArchive{{Path: "p", Blob: h}}},
		"bad hash":     {ID: "a", Commands: []string{"y"}, Repo: &agent.RepoArchive{Base: "nothex"}},
		"bad if_exist": {ID: "a", Commands: []string{"y"}, Repo: &agent.RepoArchive{Base: h, IfExists: "replace"}},
		"escaping del": {ID: "a", Commands: []string{"y"}, Repo: &agent.RepoArchive{Base: h, Deleted: []string{"../etc"}}},
		"~user":        {ID: "a", Commands: []string{"y"}, Files: []agent.FileArchive{{Path: "~bob/x", Blob: h}}},
		"empty path":   {ID: "a", Commands: []string{"y"}, Files: []agent.FileArchive{{Blob: h}}},
	} {
		if err := spec.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestBlobsSweptWhenUnused: a blob no unfinished job needs goes once it
// has been unused for the agent's BlobIdle; one a running job names
// stays until the job ends.
func TestBlobsSweptWhenUnused(t *testing.T) {
	idle := 300 * time.Millisecond
	a := startAgent(t, t.TempDir(), func(o *agent.Options, _ *host.Options) { o.BlobIdle = idle })
	unused, _ := a.upload(tarOf(t, "a", "1"))
	used, _ := a.upload(tarOf(t, "x", "2"))
	a.submit(agent.JobSpec{ID: "holder", Commands: []string{"sleep 600"}, Files: []agent.FileArchive{{Path: "b", Blob: used}}})
	a.waitRunning("holder")
	has := func(h string) bool {
		ok, err := a.c.HasBlob(t.Context(), h) // which marks it used: ask sparingly
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	blobFile := func(h string) bool {
		_, err := os.Stat(filepath.Join(a.dir, "blobs", h))
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for blobFile(unused) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if blobFile(unused) {
		t.Fatalf("the unused blob was not swept after %v", idle)
	}
	if !has(used) {
		t.Fatal("the blob of a running job was swept")
	}
	if _, err := a.c.Stop(t.Context(), "holder", agent.StopRequest{}); err != nil {
		t.Fatal(err)
	}
	a.waitFinished("holder")
	for blobFile(used) && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	if blobFile(used) {
		t.Fatal("the blob of an ended job was kept")
	}
}
