package repo

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/lang"
)

// modTime is the modification time of every archive entry: real times
// would give the same content a new hash on every checkout or touch, and
// so a new upload.
var modTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Archive is a tar archive in a file of its own, named by its content.
type Archive struct {
	// Hash is the SHA-256 of the archive's bytes, in hex.
	Hash string
	Size int64
	// Path is the file holding the archive.
	Path string
	// cached archives belong to the cache: Remove leaves them.
	cached bool
}

// Remove deletes the archive's file.
func (a *Archive) Remove() error {
	if a == nil || a.cached {
		return nil
	}
	if err := os.Remove(a.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Bundle is a repository ready to deliver: the commit's tree and the
// uncommitted changes on top of it.
type Bundle struct {
	// Commit is the commit Base holds; empty for a repository without
	// commits.
	Commit string
	// Base is the commit's tree; nil when there is no commit.
	Base *Archive
	// Diff holds the files that differ from Commit in the working tree
	// (modified, added, untracked and not ignored); nil when none do.
	Diff *Archive
	// Deleted lists the paths of Commit that the working tree no longer
	// has, relative to the repository's directory, sorted.
	Deleted []string
}

// Remove deletes the bundle's archive files.
func (b *Bundle) Remove() error {
	if b == nil {
		return nil
	}
	return errors.Join(b.Base.Remove(), b.Diff.Remove())
}

// Options say where local paths are and where archives go.
type Options struct {
	// Dir is the directory relative local paths are resolved against:
	// the configuration file's, as dstack resolves them.
	Dir string
	// Home replaces a leading ~ in local paths; empty: $HOME.
	Home string
	// TempDir holds the archives (and clones); empty: os.TempDir.
	TempDir string
	// Env is git's environment; nil: this process's, so that the user's
	// credential helpers, SSH agent and configuration apply.
	Env []string
	// CacheDir, when set, keeps the archives of local commits' trees,
	// by commit and directory: a commit's tree never changes, so a
	// second run of it skips git archive and the hashing.
	CacheDir string
}

// LocalPath resolves a local path as written in a configuration: a
// leading ~ is the home directory, a relative path is taken from Dir.
func (o Options) LocalPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home := o.Home
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("resolving %s: %w", p, err)
			}
			home = h
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(o.Dir, p)
	}
	return filepath.Clean(p), nil
}

// Build makes the bundle of a repos entry: a local git repository (or a
// directory inside one, whose part of the repository is delivered) or a
// URL, cloned here. For a local repository the uncommitted changes come
// along unless a branch or hash names the commit to deliver. The caller
// removes the bundle.
func Build(ctx context.Context, r lang.Repo, opts Options) (*Bundle, error) {
	if r.URL != "" {
		return buildURL(ctx, r, opts)
	}
	dir, err := opts.LocalPath(r.LocalPath)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("repo %s: %w", r.LocalPath, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("repo %s: %s is not a directory; use files: to copy a file", r.LocalPath, dir)
	}
	g := gitRunner{env: opts.Env}
	prefix, err := g.run(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s is not in a git repository (use files: to copy a plain directory): %w", r.LocalPath, dir, err)
	}
	b := &Bundle{}
	top, err := g.run(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", r.LocalPath, err)
	}
	_, herr := g.run(ctx, dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	rev := "HEAD"
	switch {
	case r.Hash != "":
		rev = r.Hash
	case r.Branch != "":
		rev = r.Branch
	}
	if herr == nil || rev != "HEAD" {
		commit, err := g.run(ctx, dir, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
		if err != nil {
			return nil, fmt.Errorf("repo %s: no commit %q: %w", r.LocalPath, rev, err)
		}
		b.Commit = string(commit)
	}
	ok := false
	defer func() {
		if !ok {
			b.Remove()
		}
	}()
	if b.Commit != "" {
		if b.Base, err = cachedBase(ctx, g, string(top), b.Commit, string(prefix), opts); err != nil {
			return nil, fmt.Errorf("repo %s: %w", r.LocalPath, err)
		}
	}
	if rev == "HEAD" {
		if b.Diff, b.Deleted, err = g.diff(ctx, dir, b.Commit, opts.TempDir); err != nil {
			return nil, fmt.Errorf("repo %s: %w", r.LocalPath, err)
		}
	}
	ok = true
	return b, nil
}

// buildURL clones a repository into a temporary directory with the
// user's git and archives the commit asked for: hash, else the branch's
// head, else the default branch's.
func buildURL(ctx context.Context, r lang.Repo, opts Options) (*Bundle, error) {
	tmp, err := os.MkdirTemp(opts.TempDir, "dstack-clone-")
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", r.URL, err)
	}
	defer os.RemoveAll(tmp)
	g := gitRunner{env: opts.Env}
	args := []string{"clone", "--quiet", "--bare"}
	if r.Branch != "" {
		args = append(args, "--branch", r.Branch)
		if r.Hash == "" {
			args = append(args, "--single-branch")
		}
	}
	if _, err := g.run(ctx, "", append(args, "--", r.URL, tmp)...); err != nil {
		return nil, fmt.Errorf("repo %s: cloning: %w", r.URL, err)
	}
	rev := "HEAD"
	if r.Hash != "" {
		rev = r.Hash
	}
	commit, err := g.run(ctx, tmp, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil && rev == "HEAD" {
		return nil, fmt.Errorf("repo %s: the remote's default branch has no commit; set branch or hash: %w", r.URL, err)
	}
	if err != nil {
		return nil, fmt.Errorf("repo %s: no commit %q: %w", r.URL, rev, err)
	}
	b := &Bundle{Commit: string(commit)}
	if b.Base, err = g.archive(ctx, tmp, b.Commit, "", opts.TempDir); err != nil {
		return nil, fmt.Errorf("repo %s: %w", r.URL, err)
	}
	return b, nil
}

// BuildFiles makes the archive of a files entry: the file or directory
// at its local path, as one entry named "x" (a directory's content under
// "x/"), for the agent to put at the entry's path. Symbolic links are
// kept as links; other special files are left out. A directory never
// sends .git or .dstack (the local state, secrets included); one inside
// a git work tree sends what git would (tracked and untracked files it
// does not ignore, nor its .dstackignore lists), as dstack does.
func BuildFiles(ctx context.Context, f lang.FileMapping, opts Options) (*Archive, error) {
	src, err := opts.LocalPath(f.LocalPath)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return nil, fmt.Errorf("files: %s: %w", f.LocalPath, err)
	}
	var keep map[string]bool // nil: everything
	if fi.IsDir() {
		g := gitRunner{env: opts.Env}
		if _, err := g.run(ctx, src, "rev-parse", "--show-prefix"); err == nil {
			args := []string{"ls-files", "-z", "--cached", "--others", "--exclude-standard", "--exclude=.dstack/"}
			if di := filepath.Join(src, ".dstackignore"); fileExists(di) {
				args = append(args, "--exclude-from="+di)
			}
			out, err := g.run(ctx, src, args...)
			if err != nil {
				return nil, fmt.Errorf("files: %s: %w", f.LocalPath, err)
			}
			keep = map[string]bool{}
			for _, p := range strings.Split(string(out), "\x00") {
				if p != "" {
					keep[p] = true
				}
			}
		}
	}
	a, err := writeArchive(opts.TempDir, func(tw *tar.Writer) error {
		return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() && rel != "." && (d.Name() == ".git" || d.Name() == ".dstack") {
				return filepath.SkipDir
			}
			if keep != nil && rel != "." && (d.IsDir() || !keep[rel]) {
				return nil // directories come with their files
			}
			return addFile(tw, p, path.Join(FilesRoot, rel), true)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("files: %s: %w", f.LocalPath, err)
	}
	return a, nil
}

// FilesRoot is the name of the entry a files archive holds.
const FilesRoot = "x"

// gitRunner runs git with an environment.
type gitRunner struct{ env []string }

// run runs git in dir and returns its output without the final newline.
// The user is never prompted: a clone that needs credentials git cannot
// find fails with git's message.
func (g gitRunner) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	out, err := g.cmd(ctx, dir, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	return bytes.TrimSuffix(out, []byte("\n")), nil
}

func (g gitRunner) cmd(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	env := g.env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(slices.Clone(env), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=")
	return cmd
}

// archive writes the tree prefix of commit as a reproducible tar: git
// archive's entries with fixed owners and times, without its global
// header.
func (g gitRunner) archive(ctx context.Context, dir, commit, prefix, tmp string) (*Archive, error) {
	cmd := g.cmd(ctx, dir, "archive", "--format=tar", commit+":"+prefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git archive: %w", err)
	}
	a, werr := writeArchive(tmp, func(tw *tar.Writer) error {
		tr := tar.NewReader(out)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if h.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			nh := &tar.Header{Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size,
				Mode: h.Mode, ModTime: modTime, Format: tar.FormatPAX}
			if err := tw.WriteHeader(nh); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	})
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		a.Remove()
		return nil, fmt.Errorf("git archive %s: %w: %s", commit, err, strings.TrimSpace(stderr.String()))
	}
	if werr != nil {
		return nil, fmt.Errorf("archiving %s: %w", commit, werr)
	}
	return a, nil
}

// diff archives the working tree's differences from commit (everything
// not ignored when commit is empty) under dir, and lists the deleted
// paths. Paths are relative to dir.
func (g gitRunner) diff(ctx context.Context, dir, commit, tmp string) (*Archive, []string, error) {
	var changed, deleted []string
	if commit != "" {
		// --relative keeps to dir and names paths from it; --no-renames
		// makes a rename a deletion and an addition.
		out, err := g.run(ctx, dir, "diff", "--name-status", "-z", "--no-renames", "--relative", "--ignore-submodules", commit, "--")
		if err != nil {
			return nil, nil, err
		}
		f := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "D" {
				deleted = append(deleted, f[i+1])
			} else {
				changed = append(changed, f[i+1])
			}
		}
	}
	// Untracked files are sent unless git ignores them, the .dstackignore
	// of the delivered directory lists them (as dstack reads it), or they
	// are dstack's own: the local state in .dstack/ holds secrets and
	// never leaves.
	args := []string{"ls-files", "-z", "--others", "--exclude-standard", "--exclude=.dstack/"}
	if di := filepath.Join(dir, ".dstackignore"); fileExists(di) {
		args = append(args, "--exclude-from="+di)
	}
	if commit == "" {
		args = append(args, "--cached")
	}
	out, err := g.run(ctx, dir, args...)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range strings.Split(string(out), "\x00") {
		if p != "" {
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	changed = slices.Compact(changed)
	slices.Sort(deleted)
	if len(changed) == 0 {
		return nil, deleted, nil
	}
	a, err := writeArchive(tmp, func(tw *tar.Writer) error {
		for _, p := range changed {
			if err := addFile(tw, filepath.Join(dir, filepath.FromSlash(p)), p, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("archiving the uncommitted changes: %w", err)
	}
	return a, deleted, nil
}

// addFile writes the file at p as entry name: a regular file with git's
// modes (0755 when executable, else 0644), a symbolic link, or (when dirs
// is set) a directory. Anything else, and a file gone since it was
// listed, is skipped: an untracked nested repository shows up as a
// directory, and is not part of this one.
func addFile(tw *tar.Writer, p, name string, dirs bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, ModTime: modTime, Format: tar.FormatPAX}
	switch {
	case fi.Mode().IsRegular():
		h.Typeflag, h.Size, h.Mode = tar.TypeReg, fi.Size(), 0o644
		if fi.Mode()&0o111 != 0 {
			h.Mode = 0o755
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		if h.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
		h.Typeflag, h.Mode = tar.TypeSymlink, 0o777
	case fi.IsDir() && dirs:
		h.Typeflag, h.Mode, h.Name = tar.TypeDir, 0o755, name+"/"
	default:
		return nil
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// A file that grew since Lstat is cut at the size written above; one
	// that shrank fails the archive rather than padding it.
	if _, err := io.CopyN(tw, f, h.Size); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// writeArchive writes a tar with fill into a new file in tmp, hashing it
// as it goes.
func writeArchive(tmp string, fill func(*tar.Writer) error) (*Archive, error) {
	f, err := os.CreateTemp(tmp, "dstack-archive-*.tar")
	if err != nil {
		return nil, err
	}
	a := &Archive{Path: f.Name()}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	tw := tar.NewWriter(cw)
	err = fill(tw)
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.Remove()
		return nil, err
	}
	a.Hash, a.Size = hex.EncodeToString(h.Sum(nil)), cw.n
	return a, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
