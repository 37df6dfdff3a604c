// Package dockertest gives tests a Docker Engine and a small image to run
// without any registry: Image imports (as `docker import` does) a root file
// system holding Debian's static busybox (package busybox-static), with a
// link in /bin for each of its applets (sh, echo, sleep, cat, env, id, nc,
// httpd, seq, ...).
//
// A test that needs Docker is skipped, with the reason, when the Engine
// does not answer or busybox is missing, unless DSTACK_REQUIRE_DOCKER is set
// (CI sets it): then it fails. .ci/install-docker.sh installs both and
// starts the Engine.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// ImageName is the test image.
const ImageName = "dstack-test/busybox:latest"

// RequireEnv makes a missing Engine or busybox a failure instead of a skip.
const RequireEnv = "DSTACK_REQUIRE_DOCKER"

// imageVersion is set as a label on the image; an image of another version
// (made by an older helper) is made again.
const (
	versionLabel = "ai.dstack.test-image"
	imageVersion = "1"
)

// BusyboxPath is where Debian's busybox-static puts busybox.
var BusyboxPath = "/bin/busybox"

var (
	connectOnce sync.Once
	cli         *client.Client
	connectErr  error

	imageMu    sync.Mutex
	imageReady bool
)

// unavailable skips t, or fails it when DSTACK_REQUIRE_DOCKER is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (%s is set, so this is a failure; run .ci/install-docker.sh)", msg, RequireEnv)
	}
	t.Skipf("%s; run .ci/install-docker.sh, or set %s=1 to make this a failure", msg, RequireEnv)
}

// Client returns a client of the Engine the environment points at, shared
// by the tests of the process, skipping (or failing) t when it does not
// answer.
func Client(t testing.TB) *client.Client {
	t.Helper()
	connectOnce.Do(func() {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			connectErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Ping(ctx); err != nil {
			c.Close()
			connectErr = err
			return
		}
		c.NegotiateAPIVersion(ctx)
		cli = c
	})
	if connectErr != nil {
		unavailable(t, "docker: the Engine does not answer: %v", connectErr)
	}
	return cli
}

// Image makes sure the test image exists (importing it once per process
// when it is missing or stale) and returns its name.
func Image(t testing.TB) string {
	t.Helper()
	c := Client(t)
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageReady {
		return ImageName
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if insp, err := c.ImageInspect(ctx, ImageName); err == nil && insp.Config != nil && insp.Config.Labels[versionLabel] == imageVersion {
		imageReady = true
		return ImageName
	}
	if _, err := os.Stat(BusyboxPath); err != nil {
		unavailable(t, "dockertest: no static busybox at %s to build the test image from (apt-get install busybox-static)", BusyboxPath)
	}
	rootfs, err := Rootfs(BusyboxPath)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ImageName, image.ImportOptions{
		Changes: []string{
			`CMD ["sh"]`,
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"LABEL " + versionLabel + "=" + imageVersion,
		},
	})
	if err != nil {
		t.Fatalf("dockertest: importing %s: %v", ImageName, err)
	}
	out, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("dockertest: importing %s: %v", ImageName, err)
	}
	if bytes.Contains(out, []byte(`"errorDetail"`)) {
		t.Fatalf("dockertest: importing %s: %s", ImageName, out)
	}
	imageReady = true
	return ImageName
}

// Rootfs is a tar of a root file system for busybox (the static binary at
// busybox): /bin/busybox, a link in /bin for each applet it lists, /tmp,
// and an /etc/passwd and /etc/group with root and nobody.
func Rootfs(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "etc", "root", "usr", "usr/bin", "var", "var/www"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RemoveContainers force-removes the containers that carry label (as
// "key=value" or "key") when t ends: leftovers of a failed test must not
// trouble the next.
func RemoveContainers(t testing.TB, label string) {
	t.Helper()
	c := Client(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
		if err != nil {
			t.Logf("dockertest: listing containers %s: %v", label, err)
			return
		}
		for _, ct := range list {
			if err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Logf("dockertest: removing container %s: %v", ct.ID, err)
			}
		}
	})
}

// RemoveVolume removes the named volume now (if it exists) and when t
// ends.
func RemoveVolume(t testing.TB, name string) {
	t.Helper()
	c := Client(t)
	rm := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.VolumeRemove(ctx, name, true)
	}
	rm()
	t.Cleanup(rm)
}
