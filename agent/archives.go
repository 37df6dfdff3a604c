package agent

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// RepoArchive is a run's repository, as the agent unpacks it before the
// job's commands run: Base (the commit's tree), then the removal of
// Deleted, then Diff (the uncommitted files), all into Path.
type RepoArchive struct {
	// Path is where the repository goes: absolute, ~ or ~/... (the job
	// user's home), or relative to the job's working directory ("." or
	// empty: the working directory itself, as dstack puts it).
	Path string `json:"path,omitempty"`
	// Base and Diff are blob hashes (SHA-256, hex); either may be empty.
	Base string `json:"base,omitempty"`
	Diff string `json:"diff,omitempty"`
	// Deleted are paths, relative to Path, that the working tree no
	// longer has.
	Deleted []string `json:"deleted,omitempty"`
	// IfExists says what happens when Path exists and is not empty:
	// "error" (the default) fails the job, "skip" leaves it as it is.
	IfExists string `json:"if_exists,omitempty"`
	// Commit is the commit Base holds, for the record.
	Commit string `json:"commit,omitempty"`
}

// FileArchive is one files entry: the blob's single top entry "x" (a
// file, or a directory with its tree) replaces whatever is at Path.
type FileArchive struct {
	// Path is where the file goes, as RepoArchive.Path.
	Path string `json:"path"`
	Blob string `json:"blob"`
}

// BlobMountDir is where the docker runtime mounts a job's blobs, one
// read-only file each, for the job's own shell to unpack.
const BlobMountDir = "/.dstack/blobs"

// blobs lists the blob hashes the spec names, without duplicates.
func (s JobSpec) blobs() []string {
	var out []string
	if r := s.Repo; r != nil {
		for _, h := range []string{r.Base, r.Diff} {
			if h != "" {
				out = append(out, h)
			}
		}
	}
	for _, f := range s.Files {
		out = append(out, f.Blob)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (s JobSpec) validateArchives() []error {
	if s.Repo == nil && len(s.Files) == 0 {
		return nil
	}
	var errs []error
	if len(s.Commands) == 0 || len(s.Entrypoint) > 0 {
		errs = append(errs, errors.New("repo and files are unpacked by the job's shell before its commands: they need commands and no entrypoint"))
	}
	if r := s.Repo; r != nil {
		for _, h := range []string{r.Base, r.Diff} {
			if h != "" && !validBlobHash(h) {
				errs = append(errs, fmt.Errorf("repo blob %q: want a SHA-256 in lower-case hex", h))
			}
		}
		switch r.IfExists {
		case "", "error", "skip":
		default:
			errs = append(errs, fmt.Errorf("repo if_exists %q: want error or skip", r.IfExists))
		}
		for _, d := range r.Deleted {
			if !localRelPath(d) {
				errs = append(errs, fmt.Errorf("repo deleted path %q: want a relative path inside the repository", d))
			}
		}
		if err := validDest(r.Path, true); err != nil {
			errs = append(errs, fmt.Errorf("repo path: %w", err))
		}
	}
	for _, f := range s.Files {
		if !validBlobHash(f.Blob) {
			errs = append(errs, fmt.Errorf("file blob %q: want a SHA-256 in lower-case hex", f.Blob))
		}
		if err := validDest(f.Path, false); err != nil {
			errs = append(errs, fmt.Errorf("file path: %w", err))
		}
	}
	return errs
}

// localRelPath reports whether p is a clean relative path that stays
// inside its directory.
func localRelPath(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

func validDest(p string, emptyOK bool) error {
	switch {
	case p == "" && !emptyOK:
		return errors.New("empty")
	case strings.ContainsRune(p, 0), strings.ContainsRune(p, '\n'):
		return fmt.Errorf("%q: control characters", p)
	case strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/"):
		return fmt.Errorf("%q: ~user is not supported", p)
	}
	return nil
}

// runSpec returns the spec the runtime runs. A working directory in the
// user's home (~ or ~/...), which neither Docker nor the host runtime can
// expand, becomes a first command that makes it and enters it. For a job
// with a repo or files, the next command is a POSIX sh script that
// unpacks them, reading each blob at its path, and sets DSTACK_REPO_DIR
// and DSTACK_WORKING_DIR as dstack does. Only tar, mkdir, mktemp, mv, rm
// and ls are needed, which the dstack base image, busybox and every host
// have. The docker runtime gets the blobs mounted read-only at
// BlobMountDir, one file each (a job sees no other job's blobs); the
// host runtime reads them where the agent keeps them.
func (s JobSpec) runSpec(runtime string, store *blobStore) JobSpec {
	home := s.WorkingDir == "~" || strings.HasPrefix(s.WorkingDir, "~/")
	if (s.Repo == nil && len(s.Files) == 0 && !home) || len(s.Commands) == 0 || len(s.Entrypoint) > 0 {
		return s
	}
	out := s.Redacted()
	out.RegistryAuth = s.RegistryAuth
	var pre []string
	if home {
		out.WorkingDir = ""
		pre = append(pre, fmt.Sprintf(`mkdir -p "$HOME"%s && cd "$HOME"%s`, shq(strings.TrimPrefix(s.WorkingDir, "~")), shq(strings.TrimPrefix(s.WorkingDir, "~"))))
	}
	if s.Repo != nil || len(s.Files) > 0 {
		blobPath := store.path
		if runtime != "host" {
			blobPath = func(h string) string { return BlobMountDir + "/" + h }
			for _, h := range s.blobs() {
				out.Volumes = append(out.Volumes, Mount{HostPath: store.path(h), Path: blobPath(h), ReadOnly: true})
			}
		}
		pre = append(pre, unpackScript(s, blobPath))
	}
	out.Commands = append(pre, s.Commands...)
	return out
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// unpackScript is the shell that puts a job's repo and files in place.
func unpackScript(s JobSpec, blobPath func(string) string) string {
	var b strings.Builder
	b.WriteString(`__dstack_wd=$(pwd)
__dstack_path() {
  case "$1" in
    ""|.) printf '%s' "$__dstack_wd" ;;
    "~") printf '%s' "$HOME" ;;
    "~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;;
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$__dstack_wd" "$1" ;;
  esac
}
export DSTACK_WORKING_DIR="$__dstack_wd"
`)
	if r := s.Repo; r != nil {
		fmt.Fprintf(&b, "__dstack_repo=$(__dstack_path %s)\n", shq(r.Path))
		b.WriteString(`if [ -e "$__dstack_repo" ] && [ -n "$(ls -A "$__dstack_repo" 2>/dev/null)" ]; then
`)
		if r.IfExists == "skip" {
			b.WriteString(`  echo "dstack: the repo directory $__dstack_repo is not empty: skipping the repo (if_exists: skip)" >&2
`)
		} else {
			b.WriteString(`  echo "dstack: the repo directory $__dstack_repo is not empty (set if_exists: skip to keep what is there)" >&2
  exit 1
`)
		}
		b.WriteString("else\n  mkdir -p \"$__dstack_repo\"\n")
		if r.Base != "" {
			fmt.Fprintf(&b, "  tar -xf %s -C \"$__dstack_repo\"\n", shq(blobPath(r.Base)))
		}
		if len(r.Deleted) > 0 {
			b.WriteString("  (cd \"$__dstack_repo\" && rm -rf --")
			for _, d := range r.Deleted {
				b.WriteString(" " + shq(d))
			}
			b.WriteString(")\n")
		}
		if r.Diff != "" {
			fmt.Fprintf(&b, "  tar -xf %s -C \"$__dstack_repo\"\n", shq(blobPath(r.Diff)))
		}
		b.WriteString("fi\nexport DSTACK_REPO_DIR=\"$__dstack_repo\"\n")
	}
	for _, f := range s.Files {
		fmt.Fprintf(&b, `__dstack_f=$(__dstack_path %s)
__dstack_t=$(mktemp -d)
tar -xf %s -C "$__dstack_t"
rm -rf "$__dstack_f"
mkdir -p "$(dirname "$__dstack_f")"
mv "$__dstack_t/x" "$__dstack_f"
rmdir "$__dstack_t"
`, shq(f.Path), shq(blobPath(f.Blob)))
	}
	b.WriteString(`unset __dstack_repo __dstack_f __dstack_t
cd "$__dstack_wd"`)
	return b.String()
}
