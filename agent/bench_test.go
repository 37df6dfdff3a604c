package agent_test

import (
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// BenchmarkLogStream measures log streaming through the HTTP API (target:
// at least 50 MB/s to the client). A job prints 500 MB of lines as fast as
// it can.
//
//   - live: the client follows the log from the start while the job
//     writes, until the job's end; the time runs from submit to the end of
//     the stream, so a slow disk under the job's writes bounds it.
//   - written: the client reads the finished log, which measures the
//     agent's streaming path alone.
func BenchmarkLogStream(b *testing.B) {
	const size = 500_000_000
	a := startAgent(b, b.TempDir(), withLogLimit(1<<30))
	command := fmt.Sprintf("yes 'step 123 loss 0.4567 lr 3e-4 tokens/s 98765 a typical training log line' | head -c %d", size)
	stream := func(b *testing.B, id string, follow bool) {
		s, err := a.c.Logs(b.Context(), id, 0, follow)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, s)
		s.Close()
		if err != nil || n != size {
			b.Fatalf("streamed %d bytes (%v), want %d", n, err, size)
		}
	}
	b.Run("live", func(b *testing.B) {
		b.SetBytes(size)
		var elapsed time.Duration
		for i := range b.N {
			id := fmt.Sprintf("live-%d", i)
			start := time.Now()
			a.submit(agent.JobSpec{ID: id, Commands: []string{command}})
			stream(b, id, true)
			elapsed += time.Since(start)
			b.StopTimer()
			if err := a.c.Delete(b.Context(), id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(size)*float64(b.N)/1e6/elapsed.Seconds(), "stream-MB/s")
	})
	a.submit(agent.JobSpec{ID: "written", Commands: []string{command}})
	a.waitFinished("written")
	b.Run("written", func(b *testing.B) {
		b.SetBytes(size)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			stream(b, "written", false)
		}
		b.ReportMetric(float64(size)*float64(b.N)/1e6/time.Since(start).Seconds(), "stream-MB/s")
	})
}

// warmUp runs a short container job to its end, untimed, so that timed
// ones start warm: on an Engine that may not lift RLIMIT_MEMLOCK, the
// runtime's first job pays for finding out with a failed start.
func (a *testAgent) warmUp(img string) {
	a.t.Helper()
	spec := dockerJob(a.t, img, "warm-up", "true")
	a.submit(spec)
	a.waitFinished(spec.ID)
	if err := a.c.Delete(a.t.Context(), spec.ID); err != nil {
		a.t.Fatal(err)
	}
}

// BenchmarkDockerLogStream is BenchmarkLogStream's live case with a
// container job (target: at least 50 MB/s to the client): the client
// follows the log through the HTTP API from submit to the end of the
// stream, while the job prints about 200 MB of lines as fast as it can.
// Beside it, the same container run by `docker run` attached, its output
// read by the CLI, from the command's start to its end. Two jobs:
//
//   - lines: busybox's yes, one write(2) per line: the job's own pace
//     (about 70 MB/s here, sharing the CPUs with the reader) bounds it.
//   - chunks: a megabyte of the same lines written over and over by cat,
//     in large writes, so that the log's path is what is measured.
func BenchmarkDockerLogStream(b *testing.B) {
	const line = "step 123 loss 0.4567 lr 3e-4 tokens/s 98765 a typical training log line"
	const chunkLines = (1 << 20) / (len(line) + 1)
	const chunks = 200
	const size = int64(chunks * chunkLines * (len(line) + 1))
	rt, img := dockerRuntime(b)
	a := startAgent(b, b.TempDir(), withLogLimit(1<<30), withRuntime(rt))
	a.warmUp(img)
	for _, job := range []struct{ name, command string }{
		{"lines", fmt.Sprintf("yes '%s' | head -c %d", line, size)},
		{"chunks", fmt.Sprintf("yes '%s' | head -n %d >/tmp/chunk; i=0; while [ $i -lt %d ]; do cat /tmp/chunk; i=$((i+1)); done", line, chunkLines, chunks)},
	} {
		b.Run(job.name+"/dstack", func(b *testing.B) {
			b.SetBytes(size)
			var elapsed time.Duration
			for i := range b.N {
				b.StopTimer()
				spec := dockerJob(b, img, fmt.Sprintf("stream-%s-%d", job.name, i), job.command)
				b.StartTimer()
				start := time.Now()
				a.submit(spec)
				if n := a.in(b).followDiscard(spec.ID); n != size {
					b.Fatalf("streamed %d bytes, want %d", n, size)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				if err := a.c.Delete(b.Context(), spec.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(size)*float64(b.N)/1e6/elapsed.Seconds(), "stream-MB/s")
		})
		b.Run(job.name+"/docker", func(b *testing.B) {
			cli := dockertest.CLI(b)
			const label = "ai.dstack.bench=agent-log-stream"
			dockertest.RemoveContainers(b, label)
			b.SetBytes(size)
			var elapsed time.Duration
			for range b.N {
				start := time.Now()
				cmd := exec.Command(cli, "run", "--rm", "--label", label, img, "sh", "-c", job.command)
				out, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					b.Fatalf("docker run: %v", err)
				}
				n, err := io.Copy(io.Discard, out)
				if werr := cmd.Wait(); err != nil || werr != nil || n != size {
					b.Fatalf("docker run: %d bytes (%v, %v), want %d", n, err, werr, size)
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(size)*float64(b.N)/1e6/elapsed.Seconds(), "stream-MB/s")
		})
	}
}

// BenchmarkDockerSubmitToRunning measures a warm start (the image is
// there) of a container job through the HTTP API: from POST /jobs until
// GET shows it running (polled every 2 ms), beside `docker run -d` of the
// same image and command through the docker CLI (target: within 1.2x of
// it). Stopping and removing are not timed.
func BenchmarkDockerSubmitToRunning(b *testing.B) {
	rt, img := dockerRuntime(b)
	a := startAgent(b, b.TempDir(), withRuntime(rt))
	a.warmUp(img)
	b.Run("dstack", func(b *testing.B) {
		ctx := b.Context()
		for i := range b.N {
			b.StopTimer()
			spec := dockerJob(b, img, fmt.Sprintf("submit-%d", i), "exec sleep 3600")
			b.StartTimer()
			a.submit(spec)
			for {
				job, err := a.c.Get(ctx, spec.ID)
				if err != nil {
					b.Fatal(err)
				}
				if job.State == agent.StateRunning {
					break
				}
				if job.State.Finished() {
					b.Fatalf("job %s: %s", job.State, job.Reason)
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			if _, err := a.c.Stop(ctx, spec.ID, agent.StopRequest{Abort: true}); err != nil {
				b.Fatal(err)
			}
			if err := a.c.Delete(ctx, spec.ID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("docker", func(b *testing.B) {
		dockertest.BenchmarkRunDetached(b, img, "ai.dstack.bench=agent-submit-to-running")
	})
}
