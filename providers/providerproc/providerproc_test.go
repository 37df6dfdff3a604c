package providerproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/providerproc"
)

// The test binary is also the provider program: with
// PROVIDERPROC_TEST_SERVE set it serves testDispatcher on its standard
// streams, as dstack-provider-aws serves its cloud.
func TestMain(m *testing.M) {
	if os.Getenv("PROVIDERPROC_TEST_SERVE") == "1" {
		if err := providerproc.Serve(os.Stdin, os.Stdout, openTest); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type settings struct {
	Greeting string `json:"greeting"`
	Refuse   bool   `json:"refuse"`
}

type echoArgs struct {
	N     int           `json:"n"`
	Delay time.Duration `json:"delay"`
}

// openTest is the provider the test program serves. Its calls:
// greet (the settings' greeting), echo (N back, after Delay), block
// (until its context ends), canceled (how many blocked calls saw their
// context canceled), fail (a *providers.Error), die (error output, then
// exit 3 mid-call).
func openTest(_ context.Context, raw json.RawMessage) (providerproc.Dispatcher, error) {
	var s settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s.Refuse {
		return nil, &providers.Error{Code: providers.Auth, Err: errors.New("these credentials are refused")}
	}
	var (
		mu       sync.Mutex
		canceled int
	)
	return func(ctx context.Context, op string, args json.RawMessage) (any, error) {
		switch op {
		case "greet":
			return s.Greeting, nil
		case "echo":
			var a echoArgs
			if err := providerproc.Decode(op, args, &a); err != nil {
				return nil, err
			}
			time.Sleep(a.Delay)
			return a.N, nil
		case "block":
			<-ctx.Done()
			if errors.Is(ctx.Err(), context.Canceled) {
				mu.Lock()
				canceled++
				mu.Unlock()
			}
			return nil, ctx.Err()
		case "canceled":
			mu.Lock()
			defer mu.Unlock()
			return canceled, nil
		case "fail":
			return nil, &providers.Error{Code: providers.RateLimited, RetryAfter: 7 * time.Second,
				Scope: providers.ScopeRegion, Err: errors.New("slow down in us-east-1")}
		case "die":
			fmt.Fprintln(os.Stderr, "the disk is on fire")
			os.Exit(3)
		}
		return nil, fmt.Errorf("unknown operation %q", op)
	}, nil
}

func start(t *testing.T, s settings) (*providerproc.Client, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROVIDERPROC_TEST_SERVE=1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := providerproc.Start(ctx, cmd, s)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func mustStart(t *testing.T) *providerproc.Client {
	t.Helper()
	c, err := start(t, settings{Greeting: "hello from the program"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOpenCarriesSettings(t *testing.T) {
	c := mustStart(t)
	var got string
	if err := c.Call(context.Background(), "greet", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got != "hello from the program" {
		t.Fatalf("greet = %q", got)
	}
}

func TestOpenRefused(t *testing.T) {
	_, err := start(t, settings{Refuse: true})
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Code != providers.Auth || !strings.Contains(err.Error(), "these credentials are refused") {
		t.Fatalf("Start with refused settings: %v, want the provider's auth error", err)
	}
}

// TestCallsMatchResponses runs many calls at once whose answers come back
// out of order (the first sent sleep longest): each gets its own.
func TestCallsMatchResponses(t *testing.T) {
	c := mustStart(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			err := c.Call(context.Background(), "echo", echoArgs{N: i, Delay: time.Duration(n-i) * 5 * time.Millisecond}, &got)
			if err == nil && got != i {
				err = fmt.Errorf("call %d got %d", i, got)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestBadArgumentsAndUnknownOp(t *testing.T) {
	c := mustStart(t)
	err := c.Call(context.Background(), "echo", map[string]string{"n": "not a number"}, nil)
	if err == nil || !strings.Contains(err.Error(), "echo: bad arguments") {
		t.Fatalf("echo with bad arguments: %v", err)
	}
	err = c.Call(context.Background(), "fly", nil, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown operation "fly"`) {
		t.Fatalf("unknown op: %v", err)
	}
}

// TestCancelMidCall: canceling a call's context returns at once, and the
// program cancels the call's context on its side.
func TestCancelMidCall(t *testing.T) {
	c := mustStart(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx, "block", nil, nil) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled call: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled call did not return")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := c.Call(context.Background(), "canceled", nil, &n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program saw %d canceled calls, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeadlineTravels: the call's deadline is the program's, and its
// error is still context.DeadlineExceeded once it has crossed back.
func TestDeadlineTravels(t *testing.T) {
	c := mustStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, "block", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline: %v", err)
	}
}

// TestChildDiesMidCall: a program that dies while a call is in flight
// fails that call and every later one with how it exited and the tail of
// its error output.
func TestChildDiesMidCall(t *testing.T) {
	c := mustStart(t)
	blocked := make(chan error, 1)
	go func() { blocked <- c.Call(context.Background(), "block", nil, nil) }()
	time.Sleep(100 * time.Millisecond)
	err := c.Call(context.Background(), "die", nil, nil)
	for _, err := range []error{err, <-blocked, c.Call(context.Background(), "greet", nil, nil)} {
		if err == nil {
			t.Fatal("a call to a dead program succeeded")
		}
		for _, want := range []string{"exited", "exit status 3", "its error output: the disk is on fire"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
}

// TestErrorRoundTrip: a *providers.Error crosses the process with its
// code, retry-after, scope and message.
func TestErrorRoundTrip(t *testing.T) {
	c := mustStart(t)
	err := c.Call(context.Background(), "fail", nil, nil)
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("fail: %v (%T), want a *providers.Error", err, err)
	}
	if pe.Code != providers.RateLimited || pe.RetryAfter != 7*time.Second || pe.Scope != providers.ScopeRegion ||
		pe.Err == nil || pe.Err.Error() != "slow down in us-east-1" {
		t.Fatalf("fail: %+v", pe)
	}
}

func TestWireErrorJSON(t *testing.T) {
	for _, in := range []error{
		&providers.Error{Code: providers.NoCapacity, Scope: providers.ScopeRegion, Err: errors.New("no p5 left")},
		fmt.Errorf("launching: %w", &providers.Error{Code: providers.RateLimited, RetryAfter: time.Minute, Err: errors.New("throttled")}),
		fmt.Errorf("waiting: %w", context.DeadlineExceeded),
		fmt.Errorf("waiting: %w", context.Canceled),
		errors.New("plain"),
	} {
		b, err := json.Marshal(providerproc.ToWire(in))
		if err != nil {
			t.Fatal(err)
		}
		var w providerproc.WireError
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatal(err)
		}
		out := w.Err()
		var pin, pout *providers.Error
		if errors.As(in, &pin) {
			if !errors.As(out, &pout) || pout.Code != pin.Code || pout.RetryAfter != pin.RetryAfter || pout.Scope != pin.Scope || pout.Err.Error() != pin.Err.Error() {
				t.Errorf("%v crossed as %+v", in, out)
			}
		} else if out.Error() != in.Error() && !strings.HasPrefix(out.Error(), in.Error()) {
			t.Errorf("%q crossed as %q", in, out)
		}
		for _, target := range []error{context.Canceled, context.DeadlineExceeded} {
			if errors.Is(in, target) != errors.Is(out, target) {
				t.Errorf("%v crossed as %v: errors.Is(%v) changed", in, out, target)
			}
		}
	}
}

func TestFindProgramNotFound(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := providerproc.FindProgram("dstack-provider-nowhere", "nowhere")
	if err == nil || !strings.Contains(err.Error(), "the nowhere backend runs in its own program, dstack-provider-nowhere") {
		t.Fatalf("FindProgram: %v", err)
	}
}
