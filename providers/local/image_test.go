package local

import (
	"errors"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestDefaultImage: a run without image runs in dstack's base image
// (devel for nvcc) with bash, python: making its virtual environment
// first; runtime: host runs host processes, with no image.
func TestDefaultImage(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, image, shell string
		python                   bool
	}{
		{"base", "commands: [train]\n", "dstackai/base:0.15-base-ubuntu24.04", "bash", false},
		{"nvcc", "commands: [train]\nnvcc: true\npython: \"3.12\"\n", "dstackai/base:0.15-devel-ubuntu24.04", "bash", true},
		{"shell kept", "commands: [train]\nshell: sh\n", "dstackai/base:0.15-base-ubuntu24.04", "sh", false},
		{"own image", "commands: [train]\nimage: pytorch:2\n", "pytorch:2", "", false},
		{"host", "commands: [train]\nruntime: host\n", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JobSpec(request(t, "type: task\nname: t\n"+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got.Image != tc.image || got.Shell != tc.shell {
				t.Errorf("image %q shell %q, want %q %q", got.Image, got.Shell, tc.image, tc.shell)
			}
			hasVenv := len(got.Commands) == 2 && strings.Contains(got.Commands[0], "uv venv -q --prompt dstack -p 3.12")
			if hasVenv != tc.python || got.Commands[len(got.Commands)-1] != "train" {
				t.Errorf("commands %q: python setup %v, want %v", got.Commands, hasVenv, tc.python)
			}
		})
	}
}

// TestNoDockerSaysRuntimeHost: an agent without Docker refuses a
// container job; the error tells the user the explicit way out.
func TestNoDockerSaysRuntimeHost(t *testing.T) {
	refusal := &client.Error{Method: "POST", Path: "/jobs", StatusCode: 422, Message: "no runtime for the job: it needs the docker runtime"}
	err := noDocker(refusal, agent.JobSpec{Image: DefaultImage(false)})
	if !errors.Is(err, refusal) || !strings.Contains(err.Error(), "set runtime: host") {
		t.Fatalf("err = %v", err)
	}
	if err := noDocker(refusal, agent.JobSpec{}); err != refusal {
		t.Fatalf("a host job's refusal was rewritten: %v", err)
	}
}

// TestContainerWorkingDir: a container run's relative working_dir is
// under /workflow, as in dstack; absolute and ~/ ones stay as written; a
// host process keeps its relative one (inside its own directory).
func TestContainerWorkingDir(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"working_dir: src\n", "/workflow/src"},
		{"working_dir: /app\n", "/app"},
		{"working_dir: ~/app\n", "~/app"},
		{"", ""},
		{"runtime: host\nworking_dir: src\n", "src"},
	} {
		got, err := JobSpec(request(t, "type: task\nname: t\ncommands: [x]\n"+tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got.WorkingDir != tc.want {
			t.Errorf("%q: working dir %q, want %q", tc.yaml, got.WorkingDir, tc.want)
		}
	}
}
