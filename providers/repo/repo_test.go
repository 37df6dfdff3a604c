package repo

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
)

// gitRepo makes a repository in a new directory and returns a function
// that runs git in it.
func gitRepo(t *testing.T) (string, func(args ...string) string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	return dir, git
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// entries reads an archive into name → content ("-> target" for links,
// "dir" for directories, "+x " before an executable's content).
func entries(t *testing.T, a *Archive) map[string]string {
	t.Helper()
	if a == nil {
		return nil
	}
	f, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "dir"
		case tar.TypeSymlink:
			out[h.Name] = "-> " + h.Linkname
		default:
			b, _ := io.ReadAll(tr)
			if h.Mode&0o111 != 0 {
				b = append([]byte("+x "), b...)
			}
			out[h.Name] = string(b)
		}
	}
}

// TestBuildLocal: the base is the commit's tree; the diff has the
// modified (staged and not), added and untracked files, whole, binary
// ones too, and not the ignored ones; deletions and renames are listed.
func TestBuildLocal(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, dir, "README", "committed\n")
	write(t, dir, "keep.txt", "unchanged\n")
	write(t, dir, "old-name.txt", "to rename\n")
	write(t, dir, "gone.txt", "to delete\n")
	write(t, dir, "staged.txt", "v1\n")
	write(t, dir, "src/run.sh", "#!/bin/sh\necho hi\n")
	os.Chmod(filepath.Join(dir, "src/run.sh"), 0o755)
	write(t, dir, ".gitignore", "*.log\nbuild/\n")
	os.Symlink("README", filepath.Join(dir, "link"))
	git("add", "-A")
	git("commit", "-q", "-m", "first")
	head := git("rev-parse", "HEAD")

	write(t, dir, "README", "committed\nedited\n")
	write(t, dir, "staged.txt", "v2\n")
	git("add", "staged.txt")
	git("mv", "old-name.txt", "new-name.txt")
	os.Remove(filepath.Join(dir, "gone.txt"))
	write(t, dir, "untracked.txt", "new\n")
	bin := string([]byte{0, 1, 2, 0xff, 0xfe, '\n', 0})
	write(t, dir, "data.bin", bin)
	write(t, dir, "debug.log", "ignored\n")
	write(t, dir, "build/out", "ignored\n")
	write(t, dir, ".dstack/state/default.tfstate", "secret state")
	write(t, dir, ".dstackignore", "*.ckpt\n")
	write(t, dir, "model.ckpt", "big")

	b, err := Build(context.Background(), lang.Repo{LocalPath: "."}, Options{Dir: dir, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if b.Commit != head {
		t.Errorf("commit %s, want HEAD %s", b.Commit, head)
	}
	wantBase := map[string]string{
		"README": "committed\n", "keep.txt": "unchanged\n", "old-name.txt": "to rename\n", "gone.txt": "to delete\n",
		"staged.txt": "v1\n", "src/": "dir", "src/run.sh": "+x #!/bin/sh\necho hi\n", ".gitignore": "*.log\nbuild/\n", "link": "-> README",
	}
	if d := cmp.Diff(wantBase, entries(t, b.Base)); d != "" {
		t.Errorf("base (-want +got):\n%s", d)
	}
	wantDiff := map[string]string{
		"README": "committed\nedited\n", "staged.txt": "v2\n", "new-name.txt": "to rename\n",
		"untracked.txt": "new\n", "data.bin": bin, ".dstackignore": "*.ckpt\n",
	}
	if d := cmp.Diff(wantDiff, entries(t, b.Diff)); d != "" {
		t.Errorf("diff (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"gone.txt", "old-name.txt"}, b.Deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}

	// The same content archives to the same bytes: a second run (even
	// after the files are touched) needs no upload.
	now := filepath.Join(dir, "README")
	os.Chtimes(now, modTime.AddDate(20, 0, 0), modTime.AddDate(20, 0, 0))
	b2, err := Build(context.Background(), lang.Repo{LocalPath: dir}, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Remove()
	if b2.Base.Hash != b.Base.Hash || b2.Diff.Hash != b.Diff.Hash {
		t.Errorf("hashes changed between builds of the same content: base %s/%s diff %s/%s", b.Base.Hash, b2.Base.Hash, b.Diff.Hash, b2.Diff.Hash)
	}
	// A new edit changes the diff, not the base.
	write(t, dir, "README", "edited again\n")
	b3, err := Build(context.Background(), lang.Repo{LocalPath: dir}, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b3.Remove()
	if b3.Base.Hash != b.Base.Hash || b3.Diff.Hash == b.Diff.Hash {
		t.Errorf("after an edit: base %s (want %s), diff %s (want a new one)", b3.Base.Hash, b.Base.Hash, b3.Diff.Hash)
	}
}

// TestBuildClean: a repository without uncommitted changes has no diff.
func TestBuildClean(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, dir, "a", "1")
	git("add", "-A")
	git("commit", "-q", "-m", "c")
	b, err := Build(context.Background(), lang.Repo{LocalPath: dir}, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if b.Diff != nil || len(b.Deleted) != 0 {
		t.Errorf("diff %v, deleted %v; want none", b.Diff, b.Deleted)
	}
}

// TestBuildSubdirectory: a directory inside a repository delivers that
// part of it, with paths from that directory.
func TestBuildSubdirectory(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, dir, "top.txt", "top")
	write(t, dir, "app/main.py", "print(1)")
	write(t, dir, "app/gone.py", "x")
	git("add", "-A")
	git("commit", "-q", "-m", "c")
	write(t, dir, "app/main.py", "print(2)")
	write(t, dir, "app/new.py", "new")
	write(t, dir, "other.txt", "outside")
	os.Remove(filepath.Join(dir, "app/gone.py"))
	b, err := Build(context.Background(), lang.Repo{LocalPath: "app"}, Options{Dir: dir, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if d := cmp.Diff(map[string]string{"main.py": "print(1)", "gone.py": "x"}, entries(t, b.Base)); d != "" {
		t.Errorf("base (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"main.py": "print(2)", "new.py": "new"}, entries(t, b.Diff)); d != "" {
		t.Errorf("diff (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"gone.py"}, b.Deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
}

// TestBuildBranchHashAndURL: a branch or hash delivers that commit
// without the working tree's changes; a URL is cloned and archived.
func TestBuildBranchHashAndURL(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, dir, "v", "1")
	git("add", "-A")
	git("commit", "-q", "-m", "one")
	first := git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature")
	write(t, dir, "v", "2")
	git("commit", "-q", "-am", "two")
	git("checkout", "-q", "main")
	write(t, dir, "v", "uncommitted")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		repo lang.Repo
		want string
	}{
		{"branch", lang.Repo{LocalPath: dir, Branch: "feature"}, "2"},
		{"hash", lang.Repo{LocalPath: dir, Hash: first}, "1"},
		{"url default branch", lang.Repo{URL: "file://" + dir}, "1"},
		{"url branch", lang.Repo{URL: "file://" + dir, Branch: "feature"}, "2"},
		{"url hash", lang.Repo{URL: "file://" + dir, Hash: first}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Build(ctx, tc.repo, Options{TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Remove()
			if got := entries(t, b.Base)["v"]; got != tc.want {
				t.Errorf("v = %q, want %q", got, tc.want)
			}
			if b.Diff != nil || b.Deleted != nil {
				t.Errorf("a commit other than the checked-out one got the working tree's changes")
			}
		})
	}
	if _, err := Build(ctx, lang.Repo{URL: "file://" + filepath.Join(dir, "nope")}, Options{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "cloning") {
		t.Errorf("cloning a missing repository: %v, want a cloning error", err)
	}
}

// TestBuildNoCommits: a repository without commits delivers its files
// as the diff.
func TestBuildNoCommits(t *testing.T) {
	dir, _ := gitRepo(t)
	write(t, dir, "a.txt", "a")
	write(t, dir, ".gitignore", "x.log\n")
	write(t, dir, "x.log", "ignored")
	b, err := Build(context.Background(), lang.Repo{LocalPath: dir}, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Remove()
	if b.Base != nil || b.Commit != "" {
		t.Errorf("base %v commit %q, want none", b.Base, b.Commit)
	}
	if d := cmp.Diff(map[string]string{"a.txt": "a", ".gitignore": "x.log\n"}, entries(t, b.Diff)); d != "" {
		t.Errorf("diff (-want +got):\n%s", d)
	}
}

// TestBuildNotARepo: a plain directory is refused with what to use.
func TestBuildNotARepo(t *testing.T) {
	_, err := Build(context.Background(), lang.Repo{LocalPath: t.TempDir()}, Options{TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuildFiles: a file is one entry, a directory its tree; the same
// content hashes the same.
func TestBuildFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "conf/a.yaml", "a: 1")
	write(t, dir, "conf/sub/b", "b")
	write(t, dir, "token", "secret")
	home := t.TempDir()
	write(t, home, ".netrc", "machine x")
	opts := Options{Dir: dir, Home: home, TempDir: t.TempDir()}
	ctx := context.Background()
	a, err := BuildFiles(ctx, lang.FileMapping{LocalPath: "conf"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"x/": "dir", "x/a.yaml": "a: 1", "x/sub/": "dir", "x/sub/b": "b"}, entries(t, a)); d != "" {
		t.Errorf("dir (-want +got):\n%s", d)
	}
	f, err := BuildFiles(ctx, lang.FileMapping{LocalPath: "~/.netrc"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"x": "machine x"}, entries(t, f)); d != "" {
		t.Errorf("file (-want +got):\n%s", d)
	}
	again, err := BuildFiles(ctx, lang.FileMapping{LocalPath: filepath.Join(dir, "conf")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash != a.Hash {
		t.Errorf("the same directory hashed %s then %s", a.Hash, again.Hash)
	}
	if _, err := BuildFiles(ctx, lang.FileMapping{LocalPath: "missing"}, opts); err == nil {
		t.Error("a missing local path: no error")
	}
	data, _ := os.ReadFile(f.Path)
	if !bytes.Contains(data, []byte("machine x")) || int64(len(data)) != f.Size {
		t.Errorf("archive size %d, file %d bytes", f.Size, len(data))
	}
}

// BenchmarkBuild packs a repository of 200 files of 256 KiB (50 MiB,
// committed) with one uncommitted edit: the cost a run pays on the
// client before any upload, each time a job is created; cached, the
// commit's tree comes from the archive cache and only the diff is built.
func BenchmarkBuild(b *testing.B) {
	dir := b.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	data := make([]byte, 256<<10)
	for i := range 200 {
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run("add", "-A")
	run("commit", "-q", "-m", "c")
	if err := os.WriteFile(filepath.Join(dir, "f000.bin"), []byte("edited"), 0o644); err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	for _, tc := range []struct {
		name  string
		cache string
	}{{"uncached", ""}, {"cached", b.TempDir()}} {
		b.Run(tc.name, func(b *testing.B) { benchBuild(b, dir, tmp, tc.cache) })
	}
}

func benchBuild(b *testing.B, dir, tmp, cache string) {
	b.SetBytes(200 * 256 << 10)
	for b.Loop() {
		bd, err := Build(context.Background(), lang.Repo{LocalPath: dir}, Options{TempDir: tmp, CacheDir: cache})
		if err != nil {
			b.Fatal(err)
		}
		bd.Remove()
	}
}

// TestBuildCache: with a cache, a second build of the same commit takes
// the tree's archive from it (the same hash, no new file), Remove leaves
// it, and the cache keeps the newest entries only.
func TestBuildCache(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, dir, "a", "1")
	git("add", "-A")
	git("commit", "-q", "-m", "c1")
	cache := t.TempDir()
	opts := Options{TempDir: t.TempDir(), CacheDir: cache}
	ctx := context.Background()
	b1, err := Build(ctx, lang.Repo{LocalPath: dir}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b1.Remove()
	if _, err := os.Stat(b1.Base.Path); err != nil || filepath.Dir(b1.Base.Path) != cache {
		t.Fatalf("the cached archive %s: %v", b1.Base.Path, err)
	}
	before, _ := os.Stat(b1.Base.Path)
	b2, err := Build(ctx, lang.Repo{LocalPath: dir}, opts)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(b2.Base.Path)
	if b2.Base.Hash != b1.Base.Hash || b2.Base.Path != b1.Base.Path || !os.SameFile(before, after) {
		t.Errorf("second build: %+v, first %+v; want the cached archive", b2.Base, b1.Base)
	}
	// A cached archive that lost bytes is rebuilt, not trusted.
	os.Truncate(b1.Base.Path, 10)
	b3, err := Build(ctx, lang.Repo{LocalPath: dir}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b3.Base.Hash != b1.Base.Hash || b3.Base.Size != b1.Base.Size {
		t.Errorf("after damage: %+v, want %+v", b3.Base, b1.Base)
	}
	for i := range cacheEntries + 3 {
		write(t, dir, "a", fmt.Sprint(i))
		git("commit", "-q", "-am", fmt.Sprint(i))
		if _, err := Build(ctx, lang.Repo{LocalPath: dir}, opts); err != nil {
			t.Fatal(err)
		}
	}
	tars, _ := filepath.Glob(filepath.Join(cache, "*.tar"))
	if len(tars) != cacheEntries {
		t.Errorf("the cache holds %d archives, want %d", len(tars), cacheEntries)
	}
	// A cache that cannot be made is no error.
	if _, err := Build(ctx, lang.Repo{LocalPath: dir}, Options{TempDir: t.TempDir(), CacheDir: "/proc/no/cache"}); err != nil {
		t.Errorf("with an unusable cache: %v", err)
	}
}

// TestBuildFilesLeavesSecretsHome: a directory entry (dstack's example
// is ".:examples", the configuration's own directory) never sends the
// local state in .dstack/ or .git, and in a git work tree it sends what
// git would: not the ignored or .dstackignore'd files.
func TestBuildFilesLeavesSecretsHome(t *testing.T) {
	plain := t.TempDir()
	write(t, plain, "train.py", "x")
	write(t, plain, ".dstack/state/default.json", "secret")
	write(t, plain, ".git/config", "x")
	a, err := BuildFiles(context.Background(), lang.FileMapping{LocalPath: "."}, Options{Dir: plain, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"x/": "dir", "x/train.py": "x"}, entries(t, a)); d != "" {
		t.Errorf("plain directory (-want +got):\n%s", d)
	}

	dir, git := gitRepo(t)
	write(t, dir, ".gitignore", "*.log\n")
	write(t, dir, "sub/kept.py", "k")
	git("add", "-A")
	git("commit", "-q", "-m", "c")
	write(t, dir, "sub/new.py", "n")
	write(t, dir, "sub/debug.log", "ignored")
	write(t, dir, "sub/.dstackignore", "*.ckpt\n")
	write(t, dir, "sub/model.ckpt", "big")
	write(t, dir, "sub/.dstack/state.json", "secret")
	a, err = BuildFiles(context.Background(), lang.FileMapping{LocalPath: "sub"}, Options{Dir: dir, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"x/": "dir", "x/kept.py": "k", "x/new.py": "n", "x/.dstackignore": "*.ckpt\n"}
	if d := cmp.Diff(want, entries(t, a)); d != "" {
		t.Errorf("directory in a work tree (-want +got):\n%s", d)
	}
}
