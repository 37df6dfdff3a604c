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

// StaticDstack builds ./cmd/dstack without cgo, once per test process,
// and returns the binary's path: the helper the docker runtime mounts
// into containers, where it runs as their SSH server (`dstack agent
// sshd`) and as the CLI of `dstack: true` (a test binary is linked
// dynamically and would not start in the busybox image).
func StaticDstack(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			staticErr = err
			return
		}
		dir, err := os.MkdirTemp("", "dstack-static-")
		if err != nil {
			staticErr = err
			return
		}
		staticPath = filepath.Join(dir, "dstack")
		cmd := exec.Command("go", "build", "-o", staticPath, "./cmd/dstack")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		staticOut, staticErr = cmd.CombinedOutput()
	})
	if staticErr != nil {
		t.Fatalf("building a static dstack: %v\n%s", staticErr, staticOut)
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
