// Package gatewaytest builds what the gateway's end-to-end tests and its
// benchmark run: the replica image (the static replica program of
// ./replica on Debian's busybox, imported into the Docker Engine as
// dstack-test/replica:latest, no registry needed) and the programs.
package gatewaytest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// ReplicaImageName is the replica image.
const ReplicaImageName = "dstack-test/replica:latest"

var (
	imageMu   sync.Mutex
	imageDone bool
)

// Build builds a main package of this module (e.g.
// "./gateway/gatewaytest/replica") statically into dir, named name,
// and returns its path.
func Build(t testing.TB, pkg, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "github.com/dstackai/dstack-go/"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

// ReplicaImage imports the replica image (once per process) and returns
// its name. The replica runs as /usr/bin/replica; the image has
// busybox's shell for the job's commands.
func ReplicaImage(t testing.TB) string {
	t.Helper()
	c := dockertest.Client(t)
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageDone {
		return ReplicaImageName
	}
	if _, err := os.Stat(dockertest.BusyboxPath); err != nil {
		t.Skipf("no static busybox at %s", dockertest.BusyboxPath)
	}
	bin := Build(t, "gateway/gatewaytest/replica", t.TempDir(), "replica")
	base, err := dockertest.Rootfs(dockertest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(base))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/replica", Mode: 0o755, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ReplicaImageName, image.ImportOptions{
		Changes: []string{`CMD ["/usr/bin/replica"]`, "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err != nil {
		t.Fatalf("importing %s: %v", ReplicaImageName, err)
	}
	out, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || bytes.Contains(out, []byte(`"errorDetail"`)) {
		t.Fatalf("importing %s: %v %s", ReplicaImageName, err, out)
	}
	imageDone = true
	return ReplicaImageName
}
