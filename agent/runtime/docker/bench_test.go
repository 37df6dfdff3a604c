package docker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// warmUp runs a short job to its end, untimed, so that the timed ones
// start warm: on an Engine that may not lift RLIMIT_MEMLOCK, the first job
// of the process pays for finding out with a failed start.
func warmUp(b *testing.B, r *docker.Runtime, img string) {
	b.Helper()
	ctx := context.Background()
	spec := newJob(b, img, "true")
	h, err := r.Start(ctx, spec, filepath.Join(b.TempDir(), "log"), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := h.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Remove(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSubmitToRunning measures a warm start (the image is there) to a
// running container: the runtime's Start (create with the job's config,
// log follower, start, ports read back) beside `docker run -d` of the same
// image and command through the docker CLI. Removing the container is not
// timed.
func BenchmarkSubmitToRunning(b *testing.B) {
	r, img := newRuntime(b)
	const label = "ai.dstack.bench=submit-to-running"
	dockertest.RemoveContainers(b, label)
	warmUp(b, r, img)
	b.Run("dstack", func(b *testing.B) {
		dir := b.TempDir()
		ctx := context.Background()
		for b.Loop() {
			spec := newJob(b, img, "exec sleep 3600")
			spec.Labels = map[string]string{"ai.dstack.bench": "submit-to-running"}
			h, err := r.Start(ctx, spec, filepath.Join(dir, spec.ID+".log"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := h.Remove(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("docker", func(b *testing.B) {
		dockertest.BenchmarkRunDetached(b, img, label)
	})
}

// BenchmarkLogThroughput measures a job that prints 64 MiB as fast as it
// can, from start to all of it on the receiving side: the runtime's log
// file (Start to Wait's return; the container writes it itself, see
// direct.go), beside `docker run` attached with its output read by the CLI
// (through the Engine's logger).
func BenchmarkLogThroughput(b *testing.B) {
	r, img := newRuntime(b)
	const size = 64 << 20
	dockertest.RemoveContainers(b, "ai.dstack.bench=log-throughput")
	// 64-byte lines.
	cmd := "yes 012345678901234567890123456789012345678901234567890123456789012 | head -c " + strconv.Itoa(size)
	b.Run("dstack", func(b *testing.B) {
		b.SetBytes(size)
		dir := b.TempDir()
		ctx := context.Background()
		for b.Loop() {
			spec := newJob(b, img, cmd)
			logPath := filepath.Join(dir, spec.ID+".log")
			h, err := r.Start(ctx, spec, logPath, nil)
			if err != nil {
				b.Fatal(err)
			}
			if code, reason, err := h.Wait(ctx); err != nil || code != 0 {
				b.Fatalf("Wait: %d %s %v", code, reason, err)
			}
			b.StopTimer()
			if st, err := os.Stat(logPath); err != nil || st.Size() != size {
				b.Fatalf("log: %v %v, want %d bytes", st.Size(), err, size)
			}
			h.Remove(ctx)
			os.Remove(logPath)
			b.StartTimer()
		}
	})
	b.Run("docker", func(b *testing.B) {
		b.SetBytes(size)
		cli := dockertest.CLI(b)
		for b.Loop() {
			c := exec.Command(cli, "run", "--rm", "--label", "ai.dstack.bench=log-throughput", img, "sh", "-c", cmd)
			if out, err := c.Output(); err != nil || len(out) != size {
				b.Fatalf("docker run: %v (%d bytes)", err, len(out))
			}
		}
	})
}
