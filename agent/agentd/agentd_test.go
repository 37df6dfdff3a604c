package agentd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/imds/imdstest"
)

func TestParseArgs(t *testing.T) {
	a, err := parseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.listen != "127.0.0.1:9480" || !strings.HasSuffix(a.dataDir, filepath.Join(".dstack", "agent")) || a.logLimitMB != 64 {
		t.Errorf("defaults = %+v", a)
	}
	if a.watchInterruptions || a.imdsEndpoint != "http://169.254.169.254" || a.imdsInterval != 5*time.Second {
		t.Errorf("interruption defaults = %+v", a)
	}
	t.Setenv("DSTACK_AGENT_WATCH_INTERRUPTIONS", "1")
	t.Setenv("DSTACK_AGENT_IMDS_ENDPOINT", "http://127.0.0.1:1338")
	t.Setenv("DSTACK_AGENT_IMDS_INTERVAL", "250ms")
	if a, err := parseArgs(nil, io.Discard); err != nil || !a.watchInterruptions || a.imdsEndpoint != "http://127.0.0.1:1338" || a.imdsInterval != 250*time.Millisecond {
		t.Errorf("from the environment: %+v, %v", a, err)
	}
	for _, bad := range [][]string{{"-log-limit-mb", "0"}, {"extra"}, {"-nope"}, {"-imds-interval", "0s"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}

// TestSpotInterruption runs the agent as dstack-agent does, watching
// amazon-ec2-metadata-mock's spot scenario (IMDSv2 only): a job that
// ignores SIGTERM is killed once its stop grace period (the run's
// stop_duration) has passed after the notice, and ends failed by
// "interruption"; the agent then takes no more jobs.
func TestSpotInterruption(t *testing.T) {
	if imdstest.Binary() == "" {
		imdstest.Spot(t, 0) // skips, or fails with DSTACK_REQUIRE_EC2_METADATA_MOCK set
	}
	// The metadata service comes up once the job runs: until then the
	// agent's polls fail, and it keeps polling.
	port, err := imdstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var logs syncBuffer
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, []string{"-listen", "127.0.0.1:0", "-data-dir", dir,
			"-watch-interruptions", "-imds-endpoint", endpoint, "-imds-interval", "100ms"}, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	c := dial(t, dir)
	const grace = 2
	if _, _, err := c.Submit(t.Context(), agent.JobSpec{ID: "train", StopGraceSeconds: grace,
		Commands: []string{"trap '' TERM", "echo training", "sleep 600"}}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if _, err := c.WaitFor(wctx, "train", func(j agent.Job) bool { return j.State == agent.StateRunning }); err != nil {
		t.Fatalf("the job never ran: %v\nagent log:\n%s", err, logs.String())
	}
	// Its trap is set once it has said so.
	for out := ""; !strings.Contains(out, "training"); time.Sleep(20 * time.Millisecond) {
		if wctx.Err() != nil {
			t.Fatalf("the job never printed its first line; log: %q", out)
		}
		if s, err := c.Logs(wctx, "train", 0, false); err == nil {
			b, _ := io.ReadAll(s)
			s.Close()
			out = string(b)
		}
	}
	mock, err := imdstest.Launch(t.TempDir(), port, "spot", "--imdsv2", "--mock-delay-sec", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer mock.Stop()
	job, err := c.WaitFor(wctx, "train", func(j agent.Job) bool { return j.State.Finished() })
	if err != nil {
		t.Fatalf("the job never ended: %v (%+v)\nagent log:\n%s", err, job, logs.String())
	}
	h, err := c.Health(t.Context())
	if err != nil || h.Interruption == nil || !strings.HasPrefix(h.Interruption.Notice, "spot interruption notice: terminate at ") {
		t.Fatalf("health: %+v, %v", h, err)
	}
	if job.State != agent.StateFailed || job.Termination != agent.TerminationInterruption || job.ExitCode == nil || *job.ExitCode != 137 ||
		!strings.HasPrefix(job.Reason, "interrupted ("+h.Interruption.Notice+")") {
		t.Errorf("job: state %s, termination %q, reason %q", job.State, job.Termination, job.Reason)
	}
	if took := job.FinishedAt.Sub(h.Interruption.At); took < grace*time.Second || took > (grace+2)*time.Second {
		t.Errorf("the job ended %s after the notice, want its %ds stop grace period", took, grace)
	}
	if _, _, err := c.Submit(t.Context(), agent.JobSpec{ID: "next", Commands: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("submit after the notice: %v", err)
	}
}

// dial waits for the agent on dir to write its address and answer.
func dial(t *testing.T, dir string) *client.Client {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		addr, err1 := os.ReadFile(filepath.Join(dir, "agent.addr"))
		token, err2 := os.ReadFile(filepath.Join(dir, "token"))
		if err1 != nil || err2 != nil {
			continue
		}
		c, err := client.New("http://"+strings.TrimSpace(string(addr)), strings.TrimSpace(string(token)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Health(t.Context()); err == nil {
			return c
		}
	}
	t.Fatal("the agent never answered")
	return nil
}

// syncBuffer is a bytes.Buffer safe for the agent's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
