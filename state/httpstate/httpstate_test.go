package httpstate

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/httpstate/httpstatetest"
	"github.com/dstackai/dstack-go/state/statetest"
)

func TestMain(m *testing.M) {
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

// startServer runs a test server over TCP on 127.0.0.1 until the test
// ends, with its states in a fresh directory: each test, and each run of
// -count, starts from an empty store, as the suite's fixed workspace
// names need. It runs in the test process only; the suite's SIGKILL
// child reaches it over the network through Harness.Config. handler,
// when set, wraps the server's handler.
func startServer(t testing.TB, setup func(*httpstatetest.Server), handler func(http.Handler) http.Handler) (*httpstatetest.Server, string) {
	srv := httpstatetest.NewServer(t.TempDir())
	if setup != nil {
		setup(srv)
	}
	var h http.Handler = srv
	if handler != nil {
		h = handler(srv)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

func newBackend(t testing.TB, cfg map[string]string) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	srv, base := startServer(t, func(s *httpstatetest.Server) { s.Username, s.Password = "dstack", "s3cret" }, nil)
	cfg := map[string]string{
		"address":            base + "/state/{workspace}",
		"workspaces_address": base + "/workspaces",
		"username":           "dstack",
		"password":           "s3cret",
	}
	statetest.Run(t, statetest.Harness{
		New: func(t testing.TB) state.Backend { return newBackend(t, cfg) },
		PutRaw: func(t testing.TB, ws string, data []byte) {
			if err := srv.PutRaw(ws, data); err != nil {
				t.Fatal(err)
			}
		},
		Config: cfg,
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

func counterState(n int) *state.State {
	s := state.New("test")
	s.Serial = uint64(n)
	s.Put(&state.Resource{Address: "task.counter", Attributes: map[string]any{"n": n}})
	return s
}

// TestPlainServer runs the client against a server with none of the
// extensions, as most Terraform state servers are: no ETags, no
// conditional writes, locks without expiry. Reads, writes and locks work;
// what is weaker is shown here and in TestRaceWindow.
func TestPlainServer(t *testing.T) {
	_, base := startServer(t, func(s *httpstatetest.Server) { s.Plain = true }, nil)
	ctx := t.Context()
	a := newBackend(t, map[string]string{"address": base + "/state/only"})
	b := newBackend(t, map[string]string{"address": base + "/state/only"})
	ws := state.DefaultWorkspace

	if _, err := a.Read(ctx, ws); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("read before any write: %v, want ErrNotFound", err)
	}
	if list, err := a.Workspaces(ctx); err != nil || len(list) != 0 {
		t.Fatalf("workspaces before any write: %v %v", list, err)
	}
	v1, err := a.Write(ctx, ws, counterState(1), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(v1), hashPrefix) {
		t.Errorf("version %q from a server without ETags is not a content hash", v1)
	}
	snap, err := b.Read(ctx, ws)
	if err != nil || snap.Version != v1 {
		t.Fatalf("read back: %v, version %q, want %q", err, snap.Version, v1)
	}
	if list, err := a.Workspaces(ctx); err != nil || len(list) != 1 || list[0] != ws {
		t.Fatalf("workspaces: %v %v", list, err)
	}
	// A stale version is caught by the GET before the write.
	var conflict *state.ConflictError
	if _, err := a.Write(ctx, ws, counterState(2), "", ""); !errors.As(err, &conflict) {
		t.Fatalf("create over a state: %v, want *ConflictError", err)
	}
	v2, err := a.Write(ctx, ws, counterState(2), v1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(ctx, ws, counterState(3), v1, ""); !errors.As(err, &conflict) {
		t.Fatalf("write against a stale version: %v, want *ConflictError", err)
	}

	// Locks.
	if l, err := b.LockInfo(ctx, ws); err != nil || l != nil {
		t.Fatalf("lock info with no lock: %+v %v", l, err)
	}
	la, err := a.Lock(ctx, ws, state.LockInfo{Operation: "apply", Who: "alice"}, time.Second)
	if err != nil {
		t.Fatalf("lock after the probe: %v (the probe must release what it took)", err)
	}
	var locked *state.LockedError
	if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "bob"}, time.Second); !errors.As(err, &locked) || locked.Holder.ID != la.ID || locked.Holder.Who != "alice" {
		t.Fatalf("second lock: %v, want *LockedError naming alice's lock", err)
	}
	if l, err := b.LockInfo(ctx, ws); err != nil || l == nil || l.ID != la.ID {
		t.Fatalf("lock info: %+v %v", l, err)
	}
	if err := a.Renew(ctx, ws, la.ID, time.Second); err != nil {
		t.Fatalf("renew of a held lock: %v", err)
	}
	var lost *state.LockLostError
	if err := b.Renew(ctx, ws, "not-the-id", time.Second); !errors.As(err, &lost) {
		t.Fatalf("renew with another ID: %v, want *LockLostError", err)
	}
	// The plain server does not expire locks: after the lease, the lock
	// is still held.
	time.Sleep(time.Until(la.Expires) + 50*time.Millisecond)
	if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "bob"}, time.Second); !errors.As(err, &locked) {
		t.Fatalf("lock after alice's lease ran out: %v, want *LockedError (no expiry on a plain server)", err)
	}
	// A write naming another lock is refused by a server that checks ?ID=.
	if _, err := b.Write(ctx, ws, counterState(3), v2, "bobs-lock"); !errors.As(err, &lost) {
		t.Fatalf("write under another's lock: %v, want *LockLostError", err)
	}
	if err := b.ForceUnlock(ctx, ws, "not-the-id"); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("force-unlock with a wrong ID: %v", err)
	}
	if err := b.ForceUnlock(ctx, ws, la.ID); err != nil {
		t.Fatalf("force-unlock: %v", err)
	}
	// Renewing a broken lock takes the free lock on a plain server; the
	// client gives it back and reports the loss.
	if err := a.Renew(ctx, ws, la.ID, time.Second); !errors.As(err, &lost) {
		t.Fatalf("renew after force-unlock: %v, want *LockLostError", err)
	}
	if l, err := b.LockInfo(ctx, ws); err != nil || l != nil {
		t.Fatalf("after the failed renewal the lock is %+v (%v), want none", l, err)
	}
	if err := b.ForceUnlock(ctx, ws, la.ID); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("force-unlock of no lock: %v, want ErrNotLocked", err)
	}
	lb, err := b.Lock(ctx, ws, state.LockInfo{Who: "bob"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(ctx, ws, counterState(3), v2, lb.ID); err != nil {
		t.Fatalf("write under the lock: %v", err)
	}
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatalf("unlock of a lock not held: %v", err)
	}

	// No {workspace} in the address: one workspace only.
	if _, err := a.Read(ctx, "other"); !errors.Is(err, ErrSingleWorkspace) {
		t.Fatalf("read of another workspace: %v, want ErrSingleWorkspace", err)
	}
	if err := a.DeleteWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(ctx, ws); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
}

// TestRaceWindow shows what If-Match adds: a write that lands between
// the client's check and its own write is refused by a server honouring
// If-Match, and overwritten by one that does not (the documented window
// of plain servers).
func TestRaceWindow(t *testing.T) {
	for _, tc := range []struct {
		name         string
		plain        bool
		wantConflict bool
	}{
		{"conditional", false, true},
		{"plain", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httpstatetest.Server
			var intruder []byte
			var armed atomic.Bool
			srv, base := startServer(t, func(s *httpstatetest.Server) { s.Plain = tc.plain }, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && armed.CompareAndSwap(true, false) {
						if err := srv.PutRaw("default", intruder); err != nil {
							t.Error(err)
						}
					}
					next.ServeHTTP(w, r)
				})
			})
			ctx := t.Context()
			b := newBackend(t, map[string]string{"address": base + "/state/default"})
			v1, err := b.Write(ctx, "default", counterState(1), "", "")
			if err != nil {
				t.Fatal(err)
			}
			intruder, _ = state.Encode(counterState(50))
			armed.Store(true)
			_, err = b.Write(ctx, "default", counterState(2), v1, "")
			var conflict *state.ConflictError
			if got := errors.As(err, &conflict); got != tc.wantConflict {
				t.Fatalf("write racing another: err %v, want conflict %v", err, tc.wantConflict)
			}
			snap, err := b.Read(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(2)
			if tc.wantConflict {
				want = 50
			}
			if snap.State.Serial != want {
				t.Fatalf("stored serial %d, want %d", snap.State.Serial, want)
			}
		})
	}
}

// flaky fails the first n requests matching match with 503, after
// passing them on to the server when deliver is set (the answer is lost
// on the way back).
func flaky(n int32, deliver bool, match func(*http.Request) bool) func(http.Handler) http.Handler {
	var left atomic.Int32
	left.Store(n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) && left.Add(-1) >= 0 {
				if deliver {
					next.ServeHTTP(httptest.NewRecorder(), r)
				}
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestRetry(t *testing.T) {
	isGet := func(r *http.Request) bool { return r.Method == http.MethodGet }
	isPost := func(r *http.Request) bool { return r.Method == http.MethodPost }
	fast := map[string]string{"retry_wait_min": "1ms", "retry_wait_max": "5ms"}
	with := func(base string, extra map[string]string) map[string]string {
		cfg := map[string]string{"address": base + "/state/default"}
		for k, v := range fast {
			cfg[k] = v
		}
		for k, v := range extra {
			cfg[k] = v
		}
		return cfg
	}

	t.Run("recovers", func(t *testing.T) {
		_, base := startServer(t, nil, flaky(2, false, isGet))
		b := newBackend(t, with(base, nil))
		if _, err := b.Read(t.Context(), "default"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("read after two 503s: %v, want ErrNotFound", err)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		_, base := startServer(t, nil, flaky(5, false, isGet))
		b := newBackend(t, with(base, map[string]string{"retry_max": "1"}))
		_, err := b.Read(t.Context(), "default")
		if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != http.StatusServiceUnavailable {
			t.Fatalf("read after retries ran out: %v, want a 503 *StatusError", err)
		}
	})
	t.Run("write that landed", func(t *testing.T) {
		// The first POST is carried out but its answer is lost; the retry
		// gets 412 and finds its own bytes stored.
		_, base := startServer(t, nil, flaky(1, true, isPost))
		b := newBackend(t, with(base, nil))
		v, err := b.Write(t.Context(), "default", counterState(1), "", "")
		if err != nil {
			t.Fatalf("write whose first answer was lost: %v", err)
		}
		snap, err := b.Read(t.Context(), "default")
		if err != nil || snap.Version != v {
			t.Fatalf("read back %v, version %q want %q", err, snap.Version, v)
		}
	})
}

// TestServerClock checks that the lease is measured on the server's
// clock: a server an hour ahead of the client neither frees the lock at
// once nor keeps it an hour.
func TestServerClock(t *testing.T) {
	_, base := startServer(t, func(s *httpstatetest.Server) {
		s.Now = func() time.Time { return time.Now().Add(time.Hour) }
	}, nil)
	ctx := t.Context()
	cfg := map[string]string{"address": base + "/state/{workspace}"}
	a, b := newBackend(t, cfg), newBackend(t, cfg)
	la, err := a.Lock(ctx, "clock", state.LockInfo{Who: "a"}, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := la.Expires.Sub(la.Created); d != 500*time.Millisecond {
		t.Fatalf("stored lease %v, want 500ms", d)
	}
	var locked *state.LockedError
	if _, err := b.Lock(ctx, "clock", state.LockInfo{Who: "b"}, time.Minute); !errors.As(err, &locked) {
		t.Fatalf("lock during the lease: %v, want *LockedError", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.Lock(ctx, "clock", state.LockInfo{Who: "b"}, time.Minute)
		if err == nil {
			break
		}
		if !errors.As(err, &locked) || time.Now().After(deadline) {
			t.Fatalf("lock after the lease: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCredentials(t *testing.T) {
	_, base := startServer(t, func(s *httpstatetest.Server) { s.Username, s.Password = "u", "p" }, nil)
	addr := map[string]string{"address": base + "/state/default"}
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv("TF_HTTP_USERNAME", "u")
		t.Setenv("TF_HTTP_PASSWORD", "p")
		t.Setenv("DSTACK_HTTP_USERNAME", "")
		t.Setenv("DSTACK_HTTP_PASSWORD", "")
		if _, err := newBackend(t, addr).Read(t.Context(), "default"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("read with TF_HTTP_ credentials: %v", err)
		}
	})
	t.Run("dstack's variables first", func(t *testing.T) {
		t.Setenv("TF_HTTP_USERNAME", "wrong")
		t.Setenv("TF_HTTP_PASSWORD", "wrong")
		t.Setenv("DSTACK_HTTP_USERNAME", "u")
		t.Setenv("DSTACK_HTTP_PASSWORD", "p")
		if _, err := newBackend(t, addr).Read(t.Context(), "default"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("read with DSTACK_HTTP_ credentials: %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Setenv("TF_HTTP_USERNAME", "")
		t.Setenv("TF_HTTP_PASSWORD", "")
		t.Setenv("DSTACK_HTTP_USERNAME", "")
		t.Setenv("DSTACK_HTTP_PASSWORD", "")
		_, err := newBackend(t, map[string]string{"address": addr["address"], "password": "nope"}).Read(t.Context(), "default")
		se, ok := errors.AsType[*StatusError](err)
		if !ok || se.Code != http.StatusUnauthorized || !strings.Contains(err.Error(), "username and password") {
			t.Fatalf("read with a wrong password: %v", err)
		}
		if strings.Contains(err.Error(), "nope") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
}

func TestTLS(t *testing.T) {
	srv := httpstatetest.NewServer(t.TempDir())
	ts := httptest.NewTLSServer(srv)
	t.Cleanup(ts.Close)
	addr := ts.URL + "/state/default"
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		cfg    map[string]string
		wantOK bool
	}{
		{"unknown CA", map[string]string{"address": addr, "retry_max": "0"}, false},
		{"skip verification", map[string]string{"address": addr, "skip_cert_verification": "true"}, true},
		{"CA given", map[string]string{"address": addr, "client_ca_certificate_pem": caPEM}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newBackend(t, tc.cfg).Read(ctx, "default")
			if got := errors.Is(err, state.ErrNotFound); got != tc.wantOK {
				t.Fatalf("read: %v", err)
			}
		})
	}
}

func TestWorkspaceAddress(t *testing.T) {
	b := newBackend(t, map[string]string{"address": "https://state.example.com/state/{workspace}?project=1"})
	for _, tc := range []struct {
		ws, want, wantErr string
	}{
		{ws: "default", want: "https://state.example.com/state/default?project=1"},
		{ws: "staging eu", want: "https://state.example.com/state/staging%20eu?project=1"},
		{ws: "a/b", wantErr: "invalid workspace name"},
		{ws: "..", wantErr: "invalid workspace name"},
		{ws: "", wantErr: "invalid workspace name"},
	} {
		got, err := b.Address(tc.ws)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Address(%q): %q, %v; want error %q", tc.ws, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Address(%q) = %q, %v; want %q", tc.ws, got, err, tc.want)
		}
	}
}

// TestCancelledContext checks that a cancelled request is not retried
// into the backoff.
func TestCancelledContext(t *testing.T) {
	_, base := startServer(t, nil, nil)
	b := newBackend(t, map[string]string{"address": base + "/state/default"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if _, err := b.Read(ctx, "default"); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled context: %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Fatalf("a cancelled read took %v", time.Since(start))
	}
}
