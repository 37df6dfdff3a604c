package gcs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/dstackai/dstack-go/state"
)

// mockGCS serves handler as a JSON API endpoint and returns a backend on
// it that retries without waiting.
func mockGCS(t *testing.T, handler http.HandlerFunc) *Backend {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	b := newBackend(t, map[string]string{"bucket": "bkt", "prefix": "team/infra", "endpoint": srv.URL})
	b.backoff = time.Millisecond
	return b
}

// TestRequests checks the requests the backend sends: their URLs,
// preconditions and encryption headers.
func TestRequests(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	sum := sha256.Sum256(key)
	var mu sync.Mutex
	var got []string
	b := mockGCS(t, func(w http.ResponseWriter, r *http.Request) {
		line := r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.RawQuery
		if r.Header.Get("X-Goog-Encryption-Key") != "" {
			if r.Header.Get("X-Goog-Encryption-Algorithm") != "AES256" ||
				r.Header.Get("X-Goog-Encryption-Key") != base64.StdEncoding.EncodeToString(key) ||
				r.Header.Get("X-Goog-Encryption-Key-Sha256") != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Errorf("%s: bad encryption headers %v", line, r.Header)
			}
			line += " +key"
		}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			line += fmt.Sprintf(" %s %q", r.Header.Get("Content-Type"), body)
		}
		mu.Lock()
		got = append(got, line)
		mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Get("alt") == "media":
			w.Header().Set("X-Goog-Generation", "7")
			_, _ = w.Write([]byte(`{"id":"x"}`))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/o"):
			_, _ = w.Write([]byte(`{"items":[{"name":"team/infra/a.json"}]}`))
		case r.Method == http.MethodGet:
			_, _ = w.Write([]byte(`{"generation":"9"}`))
		case r.Method == http.MethodPost:
			_, _ = w.Write([]byte(`{"generation":"8"}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	b.key = key
	ctx := context.Background()
	lock := "team/infra/a b+c.lock"
	if _, gen, err := b.get(ctx, lock); err != nil || gen != 7 {
		t.Fatalf("get: %d, %v", gen, err)
	}
	if gen, err := b.put(ctx, lock, []byte(`{}`), 0); err != nil || gen != 8 {
		t.Fatalf("create: %d, %v", gen, err)
	}
	if _, err := b.put(ctx, lock, []byte(`{}`), 7); err != nil {
		t.Fatal(err)
	}
	if gen, err := b.generationOf(ctx, lock); err != nil || gen != 9 {
		t.Fatalf("generation: %d, %v", gen, err)
	}
	if err := b.deleteGeneration(ctx, lock, 7); err != nil {
		t.Fatal(err)
	}
	if list, err := b.Workspaces(ctx); err != nil || !slices.Equal(list, []string{"a"}) {
		t.Fatalf("workspaces: %q, %v", list, err)
	}
	if err := b.DeleteWorkspace(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /storage/v1/b/bkt/o/team%2Finfra%2Fa%20b+c.lock?alt=media +key",
		`POST /upload/storage/v1/b/bkt/o?fields=generation&ifGenerationMatch=0&name=team%2Finfra%2Fa+b%2Bc.lock&uploadType=media +key application/json "{}"`,
		`POST /upload/storage/v1/b/bkt/o?fields=generation&ifGenerationMatch=7&name=team%2Finfra%2Fa+b%2Bc.lock&uploadType=media +key application/json "{}"`,
		"GET /storage/v1/b/bkt/o/team%2Finfra%2Fa%20b+c.lock?fields=generation +key",
		"DELETE /storage/v1/b/bkt/o/team%2Finfra%2Fa%20b+c.lock?generation=7&ifGenerationMatch=7",
		"GET /storage/v1/b/bkt/o?delimiter=%2F&fields=items%28name%29%2CnextPageToken&prefix=team%2Finfra%2F",
		"DELETE /storage/v1/b/bkt/o/team%2Finfra%2Fa.json?",
		"DELETE /storage/v1/b/bkt/o/team%2Finfra%2Fa.lock?",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestErrors checks how answers other than 2xx are reported, and which are
// retried.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	var calls, status atomic.Int32
	set := func(code int) {
		status.Store(int32(code))
		calls.Store(0)
	}
	set(http.StatusPreconditionFailed)
	b := mockGCS(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		code := int(status.Load())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"nope","errors":[{"reason":"why"}]}}`, code)
	})
	_, err := b.put(ctx, "x", []byte("{}"), 3)
	if !isPrecondition(err) || !lostRace(err) || calls.Load() != 1 {
		t.Errorf("412: %v after %d calls, want a precondition failure, not retried", err, calls.Load())
	}
	if want := "GCS answered 412 Precondition Failed: nope (why)"; err == nil || err.Error() != want {
		t.Errorf("412: %v, want %q", err, want)
	}
	set(http.StatusNotFound)
	if _, _, err := b.get(ctx, "x"); !errors.Is(err, errNotExist) || isPrecondition(err) || calls.Load() != 1 {
		t.Errorf("404: %v after %d calls, want errNotExist, not retried", err, calls.Load())
	}
	if !lostRace(b.deleteGeneration(ctx, "x", 3)) {
		t.Error("a 404 delete of a generation did not lose the race")
	}
	if _, err := b.Read(ctx, "default"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Read of a 404: %v, want ErrNotFound", err)
	}
	if err := b.DeleteWorkspace(ctx, "default"); err != nil {
		t.Errorf("DeleteWorkspace of 404s: %v", err)
	}

	// Transient failures of idempotent requests are retried, a bounded
	// number of times.
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		set(code)
		_, _, err := b.get(ctx, "x")
		var aerr *apiError
		if !errors.As(err, &aerr) || aerr.Code != code || calls.Load() != maxAttempts {
			t.Errorf("%d: %v after %d calls, want %d calls", code, err, calls.Load(), maxAttempts)
		}
	}
	// An unconditional delete is not idempotent: it is sent once.
	set(http.StatusServiceUnavailable)
	if err := b.remove(ctx, "x", 0, noCondition); err == nil || calls.Load() != 1 {
		t.Errorf("unconditional delete: %v after %d calls, want 1 call", err, calls.Load())
	}
	// Nor is an unconditional upload.
	calls.Store(0)
	if _, err := b.upload(ctx, "x", nil, noCondition); err == nil || calls.Load() != 1 {
		t.Errorf("unconditional upload: %v after %d calls, want 1 call", err, calls.Load())
	}
	// A conditional one is.
	calls.Store(0)
	if _, err := b.put(ctx, "x", nil, 0); err == nil || calls.Load() != maxAttempts {
		t.Errorf("conditional upload: %v after %d calls, want %d calls", err, calls.Load(), maxAttempts)
	}
}

// TestRetry checks that a request that fails transiently and then
// succeeds succeeds, and that the context bounds the waits between tries.
func TestRetry(t *testing.T) {
	var calls atomic.Int32
	b := mockGCS(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Goog-Generation", "5")
		_, _ = w.Write([]byte("data"))
	})
	data, gen, err := b.get(context.Background(), "x")
	if err != nil || string(data) != "data" || gen != 5 || calls.Load() != 3 {
		t.Fatalf("get: %q %d %v after %d calls", data, gen, err, calls.Load())
	}

	calls.Store(-100)
	b.backoff = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = b.get(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("get with a deadline, waiting to retry: %v after %v", err, time.Since(start))
	}
}

// TestCancel checks that a request waiting for the server gives up when
// its context ends.
func TestCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	b := mockGCS(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Read(ctx, "default"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read against a stuck server: %v", err)
	}
}

// TestCredentials checks that requests carry the access token of the
// credentials setting, got from the credentials' token endpoint.
func TestCredentials(t *testing.T) {
	var tokens atomic.Int32
	var auth sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokens.Add(1)
			_ = r.ParseForm()
			if r.Form.Get("refresh_token") != "refresh" || r.Form.Get("grant_type") != "refresh_token" {
				t.Errorf("token request %v", r.Form)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok123","token_type":"Bearer","expires_in":3600}`))
			return
		}
		auth.Store(r.Header.Get("Authorization"), true)
		w.Header().Set("X-Goog-Generation", "1")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	creds := fmt.Sprintf(`{"type":"authorized_user","client_id":"id","client_secret":"secret","refresh_token":"refresh","token_uri":%q}`, srv.URL+"/token")
	b := newBackend(t, map[string]string{"bucket": "bkt", "credentials": creds})
	if b.endpoint != defaultEndpoint || b.uploadURL != "https://storage.googleapis.com/upload/storage/v1/" {
		t.Errorf("endpoints %q %q", b.endpoint, b.uploadURL)
	}
	b.endpoint = srv.URL + "/storage/v1/"
	for range 3 {
		if _, _, err := b.get(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := auth.Load("Bearer tok123"); !ok || tokens.Load() != 1 {
		var seen []any
		auth.Range(func(k, _ any) bool { seen = append(seen, k); return true })
		t.Errorf("authorization %q after %d token requests, want Bearer tok123 after 1", seen, tokens.Load())
	}

	// A service account of another universe talks to its storage host.
	b = newBackend(t, map[string]string{"bucket": "bkt", "credentials": `{"type":"service_account","client_email":"a@b","private_key":"k","universe_domain":"example.test"}`})
	if b.endpoint != "https://storage.example.test/storage/v1/" || b.uploadURL != "https://storage.example.test/upload/storage/v1/" {
		t.Errorf("endpoints of universe example.test: %q %q", b.endpoint, b.uploadURL)
	}
}

// blockingTokens never returns a token.
type blockingTokens chan struct{}

func (c blockingTokens) Token() (*oauth2.Token, error) {
	<-c
	return nil, errors.New("released")
}

// TestTokenCancel checks that a request waiting for an access token gives
// up when its context ends.
func TestTokenCancel(t *testing.T) {
	src := make(blockingTokens)
	defer close(src)
	b := mockGCS(t, func(w http.ResponseWriter, r *http.Request) { t.Error("a request without a token was sent") })
	b.client = &http.Client{Transport: &bearer{base: b.transport, src: src}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := b.get(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get while the token does not come: %v", err)
	}
}

func TestEmulatorEndpoint(t *testing.T) {
	for host, want := range map[string]string{
		"localhost:4443":          "http://localhost:4443/storage/v1/",
		"http://127.0.0.1:9000":   "http://127.0.0.1:9000/storage/v1/",
		"https://gcs.example/foo": "https://gcs.example/storage/v1/",
	} {
		if got, err := emulatorEndpoint(host); err != nil || got != want {
			t.Errorf("emulatorEndpoint(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
}

// TestPages checks, against fake-gcs-server, that Workspaces follows
// nextPageToken.
func TestPages(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, testConfig(t))
	b.pageSize = 2
	want := []string{"a", "b", "c", "d", "e"}
	for _, ws := range want {
		if _, err := b.Write(ctx, ws, state.New("test"), "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "me"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Workspaces(ctx)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("workspaces %q, %v; want %q", got, err, want)
	}
}
