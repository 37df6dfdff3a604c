package agent

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// maxIDLen bounds job IDs: they name directories and container labels.
const maxIDLen = 128

// Validate checks what the agent relies on: a usable ID, a known shell,
// sane ports and mounts. It returns every problem found, joined.
func (s JobSpec) Validate() error {
	var errs []error
	if err := validateID(s.ID); err != nil {
		errs = append(errs, err)
	}
	switch {
	case s.Shell == "" || s.Shell == "sh" || s.Shell == "bash":
	case path.IsAbs(s.Shell):
	default:
		errs = append(errs, fmt.Errorf("shell %q: want sh, bash or an absolute path", s.Shell))
	}
	if len(s.Commands) == 0 && len(s.Entrypoint) == 0 && s.Image == "" {
		errs = append(errs, errors.New("a job without an image needs commands or an entrypoint"))
	}
	for _, p := range s.Ports {
		if p.Container < 1 || p.Container > 65535 {
			errs = append(errs, fmt.Errorf("port %d: out of range 1-65535", p.Container))
		}
		if p.Host < 0 || p.Host > 65535 {
			errs = append(errs, fmt.Errorf("host port %d: out of range 0-65535", p.Host))
		}
	}
	for _, m := range s.Volumes {
		switch {
		case (m.Name == "") == (m.HostPath == ""):
			errs = append(errs, fmt.Errorf("volume at %q: set exactly one of name and host_path", m.Path))
		case m.HostPath != "" && !path.IsAbs(m.HostPath):
			errs = append(errs, fmt.Errorf("volume at %q: host_path %q is not absolute", m.Path, m.HostPath))
		case m.Name != "" && validateID(m.Name) != nil:
			errs = append(errs, fmt.Errorf("volume name %q: want 1-128 characters of [A-Za-z0-9_.-]", m.Name))
		}
		if m.Path == "" {
			errs = append(errs, errors.New("volume without a path"))
		}
	}
	if s.Image == "" && (s.SSH != nil || s.DockerSocket || s.DstackCLI) {
		errs = append(errs, errors.New("ssh, docker_socket and dstack_cli need a container: give the job an image"))
	}
	if s.SSH != nil && (s.SSH.Port < 1 || s.SSH.Port > 65535) {
		errs = append(errs, fmt.Errorf("ssh port %d: out of range 1-65535", s.SSH.Port))
	}
	errs = append(errs, s.validateArchives()...)
	if s.StopGraceSeconds < 0 || s.ShmSizeMB < 0 {
		errs = append(errs, errors.New("stop_grace_seconds and shm_size_mb must not be negative"))
	}
	return errors.Join(errs...)
}

func validateID(id string) error {
	if id == "" {
		return errors.New("job id is empty")
	}
	if len(id) > maxIDLen || id[0] == '.' {
		return fmt.Errorf("job id %q: want 1-%d characters of [A-Za-z0-9_.-], not starting with a dot", id, maxIDLen)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("job id %q: want 1-%d characters of [A-Za-z0-9_.-], not starting with a dot", id, maxIDLen)
		}
	}
	return nil
}

// ShellPath is the absolute path of the shell that runs Commands: /bin/sh
// for "sh" and the default, /bin/bash for "bash".
func (s JobSpec) ShellPath() string {
	switch s.Shell {
	case "", "sh":
		return "/bin/sh"
	case "bash":
		return "/bin/bash"
	}
	return s.Shell
}

// Script is the shell script that runs Commands: `set -e` and then one
// command per line, so the first failing command ends the job with its exit
// code, and a command may hold comments, newlines and here-documents.
func (s JobSpec) Script() string {
	if len(s.Commands) == 0 {
		return ""
	}
	return "set -e\n" + strings.Join(s.Commands, "\n")
}

// ShellCommand is the argv that runs Commands, [ShellPath, "-c", Script],
// or nil when the spec has no commands.
func (s JobSpec) ShellCommand() []string {
	if len(s.Commands) == 0 {
		return nil
	}
	return []string{s.ShellPath(), "-c", s.Script()}
}
