package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/repo"
)

// dstack's base image, as dstack names it (settings.DSTACK_DOCKER_BASE_IMAGE
// and version.docker_base_image): dstackai/base:VERSION-FLAVOR-ubuntuUBUNTU,
// where FLAVOR is "base", or "devel" (with the CUDA compiler) for nvcc.
// Python is not part of the tag: the image has uv, and `python:` makes a
// virtual environment of that version when the job starts.
const (
	BaseImage        = "dstackai/base"
	BaseImageVersion = "0.15"
	BaseImageUbuntu  = "24.04"
)

// DefaultImage is the image of a run that names none: dstack's base image,
// its devel flavour when nvcc is set.
func DefaultImage(nvcc bool) string {
	flavor := "base"
	if nvcc {
		flavor = "devel"
	}
	return fmt.Sprintf("%s:%s-%s-ubuntu%s", BaseImage, BaseImageVersion, flavor, BaseImageUbuntu)
}

// RuntimeHost is the runtime: value that runs a job's commands as host
// processes instead of in a container.
const RuntimeHost = "host"

// pythonSetup is what dstack runs first in its base image for `python:`:
// a virtual environment of that Python, made with the image's uv, active
// for the commands. An image without uv (a stand-in) says so and goes on.
func pythonSetup(version string) string {
	return fmt.Sprintf(`if command -v uv >/dev/null 2>&1; then
  export DSTACK_VENV_DIR="${DSTACK_VENV_DIR:-/dstack/venv}"
  rm -rf "$DSTACK_VENV_DIR"
  uv venv -q --prompt dstack -p %s --seed "$DSTACK_VENV_DIR"
  . "$DSTACK_VENV_DIR/bin/activate"
else
  echo "dstack: the image has no uv: python %s is not set up" >&2
fi`, version, version)
}

// defaultImage makes a run without image run in dstack's base image (the
// docker runtime), unless it asks for host processes with runtime: host.
func defaultImage(spec *agent.JobSpec, c *lang.RunConfig) {
	if spec.Image != "" || c.Runtime == RuntimeHost || c.Docker {
		return // docker: true runs dstack's docker-in-docker image
	}
	spec.Image = DefaultImage(c.Nvcc)
	if spec.Shell == "" {
		spec.Shell = "bash" // dstack's shell in its base image
	}
	if c.Python != "" && len(spec.Entrypoint) == 0 && len(spec.Commands) > 0 {
		spec.Commands = append([]string{pythonSetup(c.Python)}, spec.Commands...)
	}
}

// legacyRepoDir is where dstack before 0.20 put the repo; a relative
// working_dir of a container run is still taken from it, as dstack does.
const legacyRepoDir = "/workflow"

// containerWorkingDir resolves a container run's working_dir as dstack
// does: absolute and ~/... as written (the agent expands ~ in the run
// user's home), a relative one under /workflow. A host process's
// relative working_dir stays inside the job's own directory.
func containerWorkingDir(spec *agent.JobSpec) {
	wd := spec.WorkingDir
	if spec.Image == "" || wd == "" || path.IsAbs(wd) || wd == "~" || strings.HasPrefix(wd, "~/") {
		return
	}
	spec.WorkingDir = path.Join(legacyRepoDir, wd)
}

// BlobPutter is the optional capability of an agent to store blobs (the
// agent's client has it): uploading a file under its SHA-256 unless the
// agent has it already.
type BlobPutter interface {
	PutBlob(ctx context.Context, hash, path string) (sent bool, err error)
}

// deliver builds the run's repo and files archives on this machine,
// uploads those the agent does not hold (once per content hash per host),
// and names them in spec for the agent to unpack. The archives' files are
// removed when it returns.
func deliver(ctx context.Context, a Agent, req providers.CreateRequest, c *lang.RunConfig, spec *agent.JobSpec) error {
	if len(c.Repos) == 0 && len(c.Files) == 0 {
		return nil
	}
	up, ok := a.(BlobPutter)
	if !ok {
		return fmt.Errorf("%s: the agent cannot take repos or files", req.Address)
	}
	opts := repo.Options{Dir: req.Dir}
	if dir, err := os.UserCacheDir(); err == nil {
		// A commit's tree is packed once on this machine, not per job.
		opts.CacheDir = filepath.Join(dir, "dstack", "archives")
	}
	if opts.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("%s: %w", req.Address, err)
		}
		opts.Dir = wd
	}
	put := func(ar *repo.Archive) (string, error) {
		if ar == nil {
			return "", nil
		}
		if _, err := up.PutBlob(ctx, ar.Hash, ar.Path); err != nil {
			return "", classify(fmt.Errorf("uploading %s's archive %s to the agent: %w", req.Address, ar.Hash, err))
		}
		return ar.Hash, nil
	}
	for _, r := range c.Repos {
		if req.Progress != nil {
			req.Progress("packing the repo " + r.URL + r.LocalPath)
		}
		b, err := repo.Build(ctx, r, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", req.Address, err)
		}
		defer b.Remove()
		ra := &agent.RepoArchive{Path: r.Path, Deleted: b.Deleted, IfExists: r.IfExists, Commit: b.Commit}
		if ra.Base, err = put(b.Base); err != nil {
			return err
		}
		if ra.Diff, err = put(b.Diff); err != nil {
			return err
		}
		spec.Repo = ra
	}
	for _, f := range c.Files {
		ar, err := repo.BuildFiles(ctx, f, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", req.Address, err)
		}
		defer ar.Remove()
		h, err := put(ar)
		if err != nil {
			return err
		}
		dest := f.Path
		if dest == "" {
			dest = f.LocalPath
		}
		spec.Files = append(spec.Files, agent.FileArchive{Path: dest, Blob: h})
	}
	return nil
}

// noDocker explains an agent's refusal of a container job on a host
// without Docker: the run may ask for host processes instead.
func noDocker(err error, spec agent.JobSpec) error {
	var ce *client.Error
	if spec.Image != "" && errors.As(err, &ce) && ce.StatusCode == 422 && strings.Contains(ce.Message, "docker runtime") {
		return fmt.Errorf("%w: the host has no Docker Engine; install Docker there, or set runtime: host to run the commands as host processes (without an image)", err)
	}
	return err
}
