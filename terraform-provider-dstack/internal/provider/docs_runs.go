package provider

// RunsDoc says what a run gets (its image, its code and files), for the
// index page of the registry docs.
const RunsDoc = "## What a run gets: its image, code and files\n\n" +
	"- A task, service or dev environment without `image` runs in a container of dstack's base image,\n" +
	"  `dstackai/base:0.15-base-ubuntu24.04` (`-devel-` with the CUDA compiler when `nvcc = true`), with\n" +
	"  `bash`; `python` makes a virtual environment of that Python with the image's `uv` first.\n" +
	"- `runtime = \"host\"` runs the commands as processes on the host instead, for hosts without Docker.\n" +
	"  It is never chosen for you: a run that needs Docker on a host without it fails, saying so.\n" +
	"- `repos` (one, as in dstack) puts a git repository into the run's working directory (or its\n" +
	"  `path`): a local one at its current commit plus the uncommitted changes (modified, added and\n" +
	"  untracked files that git does not ignore; deletions and renames too), or a URL, cloned on the\n" +
	"  machine running Terraform with your own git credentials and SSH agent. `branch` or `hash` pick\n" +
	"  another commit, without the uncommitted changes. Nothing of the credentials reaches the state.\n" +
	"- `files` copies local files and directories into the run; a relative path in the run is taken\n" +
	"  from the working directory, `~/` from the run user's home.\n" +
	"- Both travel as archives named by the SHA-256 of their content, sent to a host's agent only when\n" +
	"  it does not hold them yet: a large repository crosses the network once per commit and host.\n" +
	"  `.dstack/` (the local state) and paths in a `.dstackignore` are never sent.\n"
