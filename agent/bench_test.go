package agent_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
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
