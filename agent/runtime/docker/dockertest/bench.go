package dockertest

import (
	"os/exec"
	"strings"
	"testing"
)

// CLI returns the docker command line client, or skips b: benchmarks
// compare dstack with it where it is installed.
func CLI(b *testing.B) string {
	b.Helper()
	cli, err := exec.LookPath("docker")
	if err != nil {
		b.Skip("the docker CLI is not on PATH (.ci/install-docker.sh installs docker.io)")
	}
	return cli
}

// BenchmarkRunDetached is the docker CLI's side of a submit-to-running
// benchmark: `docker run -d` of image running `sleep`, labelled, each
// container removed untimed.
func BenchmarkRunDetached(b *testing.B, image, label string) {
	cli := CLI(b)
	RemoveContainers(b, label)
	for b.Loop() {
		out, err := exec.Command(cli, "run", "-d", "--label", label, image, "sh", "-c", "exec sleep 3600").CombinedOutput()
		if err != nil {
			b.Fatalf("docker run: %v\n%s", err, out)
		}
		b.StopTimer()
		if out, err := exec.Command(cli, "rm", "-f", strings.TrimSpace(string(out))).CombinedOutput(); err != nil {
			b.Fatalf("docker rm: %v\n%s", err, out)
		}
		b.StartTimer()
	}
}
