package lang

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseRepo reads the short form of a repos entry as dstack does: "URL",
// "URL:PATH", "LOCAL" or "LOCAL:PATH". The text is split at colons; the
// first two parts are a URL when the first holds "@" (git@host:org/repo)
// or the second starts with "//" (https://host/repo), and a Windows
// drive ("C:\dir") stays one part. More parts than that is an error.
// Unlike dstack, a scheme URL keeps its user, password and port
// (https://host:8443/repo): only a colon after its path starts the PATH.
func ParseRepo(s string) (Repo, error) {
	if s == "" {
		return Repo{}, errors.New("empty repo")
	}
	if i := strings.Index(s, "://"); i > 0 && !strings.ContainsAny(s[:i], "/@:") {
		rest := s[i+3:]
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return Repo{URL: s}, nil
		}
		if j := strings.LastIndexByte(rest[slash:], ':'); j >= 0 {
			return Repo{URL: s[:i+3+slash+j], Path: rest[slash+j+1:]}, nil
		}
		return Repo{URL: s}, nil
	}
	parts, isURL := splitRepo(s)
	switch {
	case len(parts) == 1 && isURL:
		return Repo{URL: parts[0]}, nil
	case len(parts) == 1:
		return Repo{LocalPath: parts[0]}, nil
	case len(parts) == 2 && isURL:
		return Repo{URL: parts[0], Path: parts[1]}, nil
	case len(parts) == 2 && parts[0] != "":
		return Repo{LocalPath: parts[0], Path: parts[1]}, nil
	}
	return Repo{}, fmt.Errorf("invalid repo %q: want URL, URL:PATH, LOCAL_PATH or LOCAL_PATH:PATH", s)
}

func splitRepo(s string) ([]string, bool) {
	parts := strings.Split(s, ":")
	isURL := false
	if len(parts) > 1 {
		switch {
		case strings.Contains(parts[0], "@") || strings.HasPrefix(parts[1], "//"):
			parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
			isURL = true
		case windowsDrive(parts):
			parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
		}
	}
	return parts, isURL
}

// windowsDrive reports whether parts start with a drive letter and a
// path ("C", "\dir").
func windowsDrive(parts []string) bool {
	if len(parts) < 2 || len(parts[0]) != 1 {
		return false
	}
	c := parts[0][0]
	return (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') && (strings.HasPrefix(parts[1], "\\") || strings.HasPrefix(parts[1], "/"))
}

// ParseFileMapping reads the short form of a files entry as dstack does:
// "LOCAL" (the same path in the run) or "LOCAL:PATH".
func ParseFileMapping(s string) (FileMapping, error) {
	parts := strings.Split(s, ":")
	if windowsDrive(parts) {
		parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
	}
	switch {
	case s == "" || parts[0] == "":
		return FileMapping{}, errors.New("empty local path")
	case len(parts) == 1:
		return FileMapping{LocalPath: parts[0], Path: parts[0]}, nil
	case len(parts) == 2 && parts[1] != "":
		return FileMapping{LocalPath: parts[0], Path: parts[1]}, nil
	}
	return FileMapping{}, fmt.Errorf("invalid file mapping %q: want LOCAL_PATH or LOCAL_PATH:PATH", s)
}

// runPath checks a path in the run (a repo's or a file's): dstack refuses
// ~user.
func runPath(p string) error {
	if strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/") {
		return errors.New("~user is not supported; write ~/ for the run user's home or an absolute path")
	}
	if strings.ContainsAny(p, "\x00\n") {
		return errors.New("control characters")
	}
	return nil
}

// reposFiles checks repos and files: what the engine can deliver, as
// dstack does, and what it cannot (refused here rather than ignored).
func (v *validator) reposFiles(r *RunConfig, commands bool) {
	if len(r.Repos) > 1 {
		v.valueErrorf("repos[1]", "Too many repos", "A run takes one repo, as in dstack; put the others in files or clone them in commands.")
	}
	if (len(r.Repos) > 0 || len(r.Files) > 0) && !commands {
		f := "repos"
		if len(r.Repos) == 0 {
			f = "files"
		}
		v.errorf(f, "repos and files need commands", "The run's shell puts the repo and files in place before its commands; without commands the image's own command runs and nothing would deliver them. Add commands.")
	}
	if (len(r.Repos) > 0 || len(r.Files) > 0) && r.Entrypoint != "" {
		v.exclusive("entrypoint", "repos", "the run's shell puts the repo in place, and entrypoint replaces it.")
		v.exclusive("entrypoint", "files", "the run's shell puts the files in place, and entrypoint replaces it.")
	}
	if r.SingleBranch != nil && !*r.SingleBranch && len(r.Repos) > 0 {
		v.valueErrorf("single_branch", "single_branch: false is not supported", "The run gets the files of one commit, not the repository's history, so there are no other branches to clone. Remove single_branch.")
	}
	for i, rp := range r.Repos {
		p := fmt.Sprintf("repos[%d]", i)
		if u, err := url.Parse(rp.URL); rp.URL != "" && err == nil && u.User != nil {
			if _, hasPass := u.User.Password(); hasPass {
				v.valueErrorf(p, "Credentials in a repo URL", "The URL would be kept in the state. Remove the password; git's credential helper or SSH agent on this machine is used to clone.")
			}
		}
		if err := runPath(rp.Path); err != nil {
			v.valueErrorf(p, "Invalid repo path", "%v.", err)
		}
	}
	for i, f := range r.Files {
		if err := runPath(f.Path); err != nil {
			v.valueErrorf(fmt.Sprintf("files[%d]", i), "Invalid file path", "%v.", err)
		}
	}
	if r.Runtime == "host" {
		for _, f := range []string{"image", "python", "nvcc", "docker"} {
			v.exclusive("runtime", f, "runtime: host runs the commands as processes on the host, with no image.")
		}
	}
}
