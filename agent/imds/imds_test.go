package imds_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent/imds"
	"github.com/dstackai/dstack-go/agent/imds/imdstest"
)

// TestInstanceAction asks amazon-ec2-metadata-mock (IMDSv2 only: a
// request without a session token is refused) before and after its spot
// interruption notice appears.
func TestInstanceAction(t *testing.T) {
	endpoint := imdstest.Spot(t, 2*time.Second)
	c := imds.New(endpoint, nil)
	ctx := t.Context()
	if n, ok, err := c.InstanceAction(ctx); err != nil || ok {
		t.Fatalf("before the notice: %+v, %v, %v", n, ok, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, ok, err := c.InstanceAction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if n.Action != "terminate" {
				t.Errorf("action %q, want terminate", n.Action)
			}
			// The mock's default time: the request's plus two minutes.
			if d := time.Until(n.Time); d < 100*time.Second || d > 121*time.Second {
				t.Errorf("notice time %s is %s away, want about 2m", n.Time, d)
			}
			if s := n.String(); !strings.HasPrefix(s, "spot interruption notice: terminate at ") {
				t.Errorf("String() = %q", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no notice 5s after the mock's 2s delay")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatch polls until the notice appears.
func TestWatch(t *testing.T) {
	endpoint := imdstest.Spot(t, 1*time.Second)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := imds.Watch(ctx, imds.New(endpoint, nil), 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second || n.Action != "terminate" {
		t.Fatalf("notice %+v after %s", n, took)
	}
}

// TestWatchUnreachable: a service that does not answer is logged once
// and polled on until the context ends.
func TestWatchUnreachable(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := imds.Watch(ctx, imds.New("http://127.0.0.1:1", nil), 50*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if n := strings.Count(logs.String(), "cannot read the spot interruption notice"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// TestTokenRenewedAfterRestart: a session token the service no longer
// knows (it restarted) is answered 401, and the client gets a new one.
func TestTokenRenewedAfterRestart(t *testing.T) {
	if imdstest.Binary() == "" {
		imdstest.Spot(t, 0) // skips, or fails with DSTACK_REQUIRE_EC2_METADATA_MOCK set
	}
	port, err := imdstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	first, err := imdstest.Launch(t.TempDir(), port, "spot", "--imdsv2", "--mock-delay-sec", "0")
	if err != nil {
		t.Fatal(err)
	}
	c := imds.New("http://127.0.0.1:"+strconv.Itoa(port), nil)
	if _, ok, err := c.InstanceAction(t.Context()); err != nil || !ok {
		t.Fatalf("first service: %v, %v", ok, err)
	}
	first.Stop()
	second, err := imdstest.Launch(t.TempDir(), port, "spot", "--imdsv2", "--mock-delay-sec", "0")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if n, ok, err := c.InstanceAction(t.Context()); err != nil || !ok || n.Action != "terminate" {
		t.Fatalf("after the restart: %+v, %v, %v", n, ok, err)
	}
}
