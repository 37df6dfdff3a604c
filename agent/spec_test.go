package agent_test

import (
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/agent"
)

// TestValidateContainerOnly: what only a container can have (an SSH
// server, the Engine's socket, the dstack CLI) is refused on a job
// without an image, which runs as a host process, instead of being
// ignored there.
func TestValidateContainerOnly(t *testing.T) {
	tests := []struct {
		name    string
		spec    agent.JobSpec
		wantErr string
	}{
		{name: "ssh on the host", spec: agent.JobSpec{ID: "a", Commands: []string{"x"}, SSH: &agent.SSHServer{Port: 10022}}, wantErr: "need a container"},
		{name: "docker on the host", spec: agent.JobSpec{ID: "a", Commands: []string{"x"}, DockerSocket: true}, wantErr: "need a container"},
		{name: "dstack on the host", spec: agent.JobSpec{ID: "a", Commands: []string{"x"}, DstackCLI: true}, wantErr: "need a container"},
		{name: "bad ssh port", spec: agent.JobSpec{ID: "a", Image: "i", SSH: &agent.SSHServer{Port: 70000}}, wantErr: "ssh port 70000"},
		{name: "ssh in a container", spec: agent.JobSpec{ID: "a", Image: "i", SSH: &agent.SSHServer{Port: 10022}, DockerSocket: true, DstackCLI: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
