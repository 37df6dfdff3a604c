package planner_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerPrivilegedRefusedWhereUnsupported: a run with docker: true or
// privileged: true placed on a backend that cannot honour it (dstack
// names runpod, vastai, kubernetes) is refused by the plan where the field
// is written; on a backend that runs jobs through the agent it plans.
func TestDockerPrivilegedRefusedWhereUnsupported(t *testing.T) {
	tests := []struct {
		name, field, backend, want string
	}{
		{name: "docker on runpod", field: "docker: true", backend: "runpod", want: ":4:9: task.dind: docker: true cannot be honoured on the runpod backend"},
		{name: "privileged on runpod", field: "privileged: true", backend: "runpod", want: ":4:13: task.dind: privileged: true cannot be honoured on the runpod backend"},
		{name: "docker on aws", field: "docker: true", backend: "aws"},
		{name: "privileged on aws", field: "privileged: true", backend: "aws"},
		{name: "dstack on aws", field: "dstack: true", backend: "aws", want: ":4:9: task.dind: dstack: true is supported on the local backend only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			cfg := w.config(map[string]string{"main.dstack.yml": "type: task\nname: dind\ncommands: [docker ps]\n" + tt.field + "\nbackends: [" + tt.backend + "]\n"})
			_, err := w.plan(cfg, planOpts{})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("plan: %v", err)
				}
				return
			}
			want := filepath.Join(w.dir, "config", "main.dstack.yml") + tt.want
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("plan error %v, want one containing %q", err, want)
			}
		})
	}
}
