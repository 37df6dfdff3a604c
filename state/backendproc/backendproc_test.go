package backendproc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backendproc"
	"github.com/dstackai/dstack-go/state/httpstate"
	"github.com/dstackai/dstack-go/state/httpstate/httpstatetest"
	"github.com/dstackai/dstack-go/state/statetest"
)

// serveEnv makes the test binary a backend process serving the http
// backend, as dstack-backend-NAME programs serve theirs.
const serveEnv = "DSTACK_BACKENDPROC_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		backendproc.Main(func(cfg map[string]string) (state.Backend, error) {
			if cfg["exit"] == "now" { // a process that dies under its client
				os.Stderr.WriteString("backend: giving up\n")
				os.Exit(3)
			}
			if cfg["chatty"] != "" { // an SDK that prints to standard output
				fmt.Println("hello from the SDK")
				delete(cfg, "chatty")
			}
			return httpstate.New(cfg)
		})
	}
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) {
		return backendproc.Start(context.Background(), serverCmd(), cfg)
	})
}

func serverCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	return cmd
}

func start(t testing.TB, cfg map[string]string) *backendproc.Client {
	t.Helper()
	c, err := backendproc.Start(context.Background(), serverCmd(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the backend process: %v", err)
		}
	})
	return c
}

func httpServer(t *testing.T) (*httpstatetest.Server, map[string]string) {
	srv := httpstatetest.NewServer(t.TempDir())
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, map[string]string{"address": ts.URL + "/state/{workspace}", "workspaces_address": ts.URL + "/workspaces"}
}

// TestConformance runs the suite every backend passes against the http
// backend served by another process: every call, and every error the
// suite tells apart (not found, locked, lock lost, conflict, corrupt,
// newer version), crosses the process boundary.
func TestConformance(t *testing.T) {
	srv, cfg := httpServer(t)
	statetest.Run(t, statetest.Harness{
		New: func(t testing.TB) state.Backend { return start(t, cfg) },
		PutRaw: func(t testing.TB, ws string, data []byte) {
			if err := srv.PutRaw(ws, data); err != nil {
				t.Fatal(err)
			}
		},
		Config: cfg,
		Open: func(cfg map[string]string) (state.Backend, error) {
			return backendproc.Start(context.Background(), serverCmd(), cfg)
		},
	})
}

// TestStrayOutput: what a backend's SDK prints to standard output does
// not break the protocol (it goes to standard error).
func TestStrayOutput(t *testing.T) {
	_, cfg := httpServer(t)
	cfg["chatty"] = "yes"
	c := start(t, cfg)
	if _, err := c.Workspaces(context.Background()); err != nil {
		t.Fatalf("a call to a backend that printed to standard output: %v", err)
	}
}

// TestRefusedSettings: the backend's own message for settings it
// refuses reaches the caller, and no process is left.
func TestRefusedSettings(t *testing.T) {
	_, err := backendproc.Start(context.Background(), serverCmd(), map[string]string{"adress": "http://x"})
	if err == nil || !strings.Contains(err.Error(), `"adress"`) {
		t.Fatalf("Start with a misspelt setting: %v, want the backend's message naming it", err)
	}
}

// TestProcessDies: a backend process that exits gives its callers an
// error with what it wrote to standard error, instead of a hang.
func TestProcessDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := backendproc.Start(ctx, serverCmd(), map[string]string{"exit": "now"})
	if err == nil || !strings.Contains(err.Error(), "giving up") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start of a process that exits: %v, want its exit status and standard error", err)
	}
}

// TestCancel: a call whose context ends returns at once with the
// context's error, the process cancels its side of the call (the request
// to the server ends), and the client goes on working.
func TestCancel(t *testing.T) {
	srv := httpstatetest.NewServer(t.TempDir())
	ended := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/slow") {
			<-r.Context().Done() // answers only when the call is cancelled
			close(ended)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := start(t, map[string]string{"address": ts.URL + "/state/{workspace}", "workspaces_address": ts.URL + "/workspaces"})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, "slow")
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend process did not cancel its request")
	}
	bg := context.Background()
	if _, err := c.Lock(bg, "w", state.LockInfo{Operation: "apply", Who: "a"}, time.Minute); err != nil {
		t.Fatalf("a call after a cancelled one: %v", err)
	}
	var locked *state.LockedError
	if _, err := c.Lock(bg, "w", state.LockInfo{Operation: "apply", Who: "b"}, time.Minute); !errors.As(err, &locked) || locked.Holder.Who != "a" {
		t.Fatalf("Lock of a held lock: %v, want a *state.LockedError naming a", err)
	}
}
