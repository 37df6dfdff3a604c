package local

import (
	"fmt"
	"slices"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
)

// SSHPort is the port of a dev environment's SSH server in its container
// (published on the host's loopback like the run's other ports).
const SSHPort = 10022

// DindImage is the image a run with `docker: true` runs in when it names
// none (it may not: `docker` and `image` exclude each other), dstack's
// docker-in-docker image. Here the job gets the host's Engine (see
// agent.JobSpec.DockerSocket); the image brings a shell and a docker CLI
// for hosts without a static one to lend.
const DindImage = "dstackai/dind"

// runExtras adds what a run's kind and flags ask of its container: Docker
// for `docker: true`, the dstack CLI and the configuration's directory
// for `dstack: true`, and a dev environment's SSH server (in a container:
// a host process is reached by SSH to the host itself).
func runExtras(spec *agent.JobSpec, req providers.CreateRequest, r run) error {
	if r.cfg.Docker {
		spec.DockerSocket = true
		if spec.Image == "" {
			spec.Image = DindImage
		}
	}
	if r.cfg.Dstack {
		if req.ConfigDir == "" {
			return fmt.Errorf("%s: dstack: true needs the configuration's directory, which was not given", req.Address)
		}
		if spec.Image == "" {
			// A host process runs on the machine of the configuration.
			spec.Env["DSTACK_CONFIG_DIR"] = req.ConfigDir
		} else {
			spec.DstackCLI = true
			spec.Volumes = append(spec.Volumes, agent.Mount{HostPath: req.ConfigDir, Path: DstackConfigMountPath})
			spec.Env["DSTACK_CONFIG_DIR"] = DstackConfigMountPath
		}
	}
	if _, ok := r.spec.(*lang.DevEnvironment); ok && spec.Image != "" {
		spec.SSH = &agent.SSHServer{Port: SSHPort, AuthorizedKeys: slices.Clone(req.SSHKeys)}
		spec.Ports = append(spec.Ports, agent.PortBinding{Container: SSHPort})
	}
	return nil
}

// DstackConfigMountPath is where a run with `dstack: true` finds the
// configuration's directory ($DSTACK_CONFIG_DIR): `cd $DSTACK_CONFIG_DIR
// && dstack state list` reads the state its apply wrote (a local state,
// or a remote backend the files name, without credentials).
const DstackConfigMountPath = "/dstack/config"
