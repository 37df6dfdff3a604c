package dockertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	staticOnce sync.Once
	staticPath string
	staticErr  error
	staticOut  []byte
)

// StaticAgent builds ./cmd/dstack-agent without cgo, once per test
// process, and returns the binary's path: the helper the docker runtime
// mounts into containers that run an SSH server (a test binary is linked
// dynamically and would not start in the busybox image).
func StaticAgent(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			staticErr = err
			return
		}
		dir, err := os.MkdirTemp("", "dstack-static-agent-")
		if err != nil {
			staticErr = err
			return
		}
		staticPath = filepath.Join(dir, "dstack-agent")
		cmd := exec.Command("go", "build", "-o", staticPath, "./cmd/dstack-agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		staticOut, staticErr = cmd.CombinedOutput()
	})
	if staticErr != nil {
		t.Fatalf("building a static dstack-agent: %v\n%s", staticErr, staticOut)
	}
	return staticPath
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}
