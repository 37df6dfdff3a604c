package docker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/runtime/docker"
)

// TestDirectLogInterleaving: a job that alternates between stdout and
// stderr, line by line, has its lines in the log exactly in the order
// written, none through the Engine's logger.
func TestDirectLogInterleaving(t *testing.T) {
	r, img := newRuntime(t)
	const n = 2000
	spec := newJob(t, img, fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`, n))
	ctx := ctxFor(t, 2*time.Minute)
	logPath := filepath.Join(t.TempDir(), "job.log")
	h, err := r.Start(ctx, spec, logPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove(context.Background())
	if code, reason, err := h.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("Wait: %d %q %v", code, reason, err)
	}
	checkDirect(t, spec.ID, true)
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "out %d\nerr %d\n", i, i)
	}
	if got := readFile(t, logPath); got != want.String() {
		t.Fatalf("log of %d bytes differs from the %d bytes written; it starts %q", len(got), want.Len(), got[:min(len(got), 200)])
	}
}

// TestDirectLogBig: a job printing tens of megabytes as fast as it can has
// all of them in the log, in order, once Wait returns.
func TestDirectLogBig(t *testing.T) {
	r, img := newRuntime(t)
	const n = 3_000_000 // about 23 MB
	_, _, log := run(t, r, newJob(t, img, fmt.Sprintf("seq 1 %d", n), "echo done >&2"))
	if !strings.HasSuffix(log, "\ndone\n") {
		t.Fatalf("log ends %q, want the last line written to stderr", log[max(0, len(log)-100):])
	}
	checkNumbered(t, strings.TrimSuffix(log, "done\n"), "", n)
}

// TestDirectLogUsers: a job run as a user other than root, named by the
// image or by a bare UID with no account, can write its log.
func TestDirectLogUsers(t *testing.T) {
	r, img := newRuntime(t)
	for _, user := range []string{"nobody", "4321:4321"} {
		t.Run(user, func(t *testing.T) {
			t.Parallel()
			spec := newJob(t, img, "id -u", "echo on stderr >&2")
			spec.User = user
			code, reason, log := run(t, r, spec)
			uid, _, _ := strings.Cut(user, ":")
			if uid == "nobody" {
				uid = "65534"
			}
			if code != 0 || log != uid+"\non stderr\n" {
				t.Errorf("exit %d (%s), log %q; want the uid %s and the stderr line", code, reason, log, uid)
			}
		})
	}
}

// TestEngineLogFallback: jobs whose output cannot be redirected by their
// shell (an entrypoint, with or without commands) log through the Engine
// as before, and their logs are complete.
func TestEngineLogFallback(t *testing.T) {
	r, img := newRuntime(t)
	t.Run("entrypoint without commands", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img)
		spec.Entrypoint = []string{"/bin/sh", "-c", "echo from the entrypoint; echo and its stderr >&2; exit 4"}
		ctx := ctxFor(t, time.Minute)
		logPath := filepath.Join(t.TempDir(), "job.log")
		h, err := r.Start(ctx, spec, logPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Remove(context.Background())
		code, reason, err := h.Wait(ctx)
		if err != nil || code != 4 || reason != "exit code 4" {
			t.Fatalf("Wait: %d %q %v", code, reason, err)
		}
		checkDirect(t, spec.ID, false)
		// Two pipes through the Engine: each stream's order is kept.
		if log := readFile(t, logPath); log != "from the entrypoint\nand its stderr\n" && log != "and its stderr\nfrom the entrypoint\n" {
			t.Errorf("log %q", log)
		}
	})
	t.Run("volume over the log's mount", func(t *testing.T) {
		t.Parallel()
		spec := newJob(t, img, "echo still logged")
		spec.Volumes = []agent.Mount{{HostPath: t.TempDir(), Path: filepath.Dir(docker.LogMountPath)}}
		ctx := ctxFor(t, time.Minute)
		logPath := filepath.Join(t.TempDir(), "job.log")
		h, err := r.Start(ctx, spec, logPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Remove(context.Background())
		if code, _, err := h.Wait(ctx); err != nil || code != 0 {
			t.Fatalf("Wait: %d %v", code, err)
		}
		checkDirect(t, spec.ID, false)
		if log := readFile(t, logPath); log != "still logged\n" {
			t.Errorf("log %q", log)
		}
	})
}

// TestDirectLogEngineMessages: what a job's shell says before its output
// is redirected (here: a "shell" that rejects -c) lands in the Engine's
// log; Wait appends it to the job's log, once, even across a reattach.
func TestDirectLogEngineMessages(t *testing.T) {
	for _, src := range []struct {
		name string
		opts []docker.Option
	}{
		{"file", nil},
		{"endpoint", []docker.Option{docker.WithEndpointLogs()}},
	} {
		t.Run(src.name, func(t *testing.T) {
			r, img := newRuntime(t, src.opts...)
			spec := newJob(t, img, "echo never")
			spec.Shell = "/bin/env"
			ctx := ctxFor(t, time.Minute)
			logPath := filepath.Join(t.TempDir(), "job.log")
			h, err := r.Start(ctx, spec, logPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Remove(context.Background())
			if code, _, err := h.Wait(ctx); err != nil || code != 1 {
				t.Fatalf("Wait: %d %v", code, err)
			}
			log := readFile(t, logPath)
			if !strings.Contains(log, "env: invalid option -- 'c'\n") || strings.Contains(log, "never") {
				t.Fatalf("log %q, want env's complaint", log)
			}
			h.(*docker.Handle).Detach()
			h2, ok, err := r.Reattach(ctx, spec, logPath)
			if err != nil || !ok {
				t.Fatalf("Reattach: %v %v", ok, err)
			}
			if code, _, err := h2.Wait(ctx); err != nil || code != 1 {
				t.Fatalf("Wait after reattach: %d %v", code, err)
			}
			if again := readFile(t, logPath); again != log {
				t.Fatalf("the Engine's messages were copied again: %q", again)
			}
		})
	}
}
