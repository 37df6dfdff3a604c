package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
)

// BaseImage imports the busybox root file system under each of names
// (dstack's base image names, which tests cannot pull) as a stand-in for
// dstack's base image: its working directory is /dstack/run, as the real
// image's, and /bin/bash, which dstack runs commands with there, is a
// script that hands over to busybox's sh. /etc/dstack-stand-in says
// "dstackai/base stand-in", for jobs to show where they run (a test
// machine may itself be a container, with a /.dockerenv of its own). An
// image of the same names made
// by this version of the helper is kept.
func BaseImage(t testing.TB, names ...string) {
	t.Helper()
	c := Client(t)
	imageMu.Lock()
	defer imageMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const version = imageVersion + "-base2"
	for _, name := range names {
		if insp, err := c.ImageInspect(ctx, name); err == nil && insp.Config != nil && insp.Config.Labels[versionLabel] == version {
			continue
		}
		if _, err := os.Stat(BusyboxPath); err != nil {
			unavailable(t, "dockertest: no static busybox at %s to build the stand-in base image from (apt-get install busybox-static)", BusyboxPath)
		}
		rootfs, err := Rootfs(BusyboxPath)
		if err != nil {
			t.Fatalf("dockertest: %v", err)
		}
		rootfs, err = withBash(rootfs)
		if err != nil {
			t.Fatalf("dockertest: %v", err)
		}
		rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, name, image.ImportOptions{
			Changes: []string{
				`CMD ["sh"]`,
				"WORKDIR /dstack/run",
				"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"LABEL " + versionLabel + "=" + version,
			},
		})
		if err != nil {
			t.Fatalf("dockertest: importing %s: %v", name, err)
		}
		out, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || bytes.Contains(out, []byte(`"errorDetail"`)) {
			t.Fatalf("dockertest: importing %s: %v %s", name, err, out)
		}
	}
}

// withBash appends /bin/bash (a script running busybox's sh) and
// /etc/dstack-stand-in to a root file system's tar.
func withBash(rootfs []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(rootfs))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	marker := []byte("dstackai/base stand-in\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/dstack-stand-in", Mode: 0o644, Size: int64(len(marker)), ModTime: time.Now()}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(marker); err != nil {
		return nil, err
	}
	script := []byte("#!/bin/sh\nexec /bin/sh \"$@\"\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/bash", Mode: 0o755, Size: int64(len(script)), ModTime: time.Now()}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(script); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
