package gcs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/statetest"
)

const testBucket = "dstack-test"

func TestMain(m *testing.M) {
	// The SIGKILL test's child is this binary again; it builds its backend
	// from the Config it is given, which points at the parent's server.
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

var (
	serverOnce sync.Once
	server     *fakestorage.Server
	serverErr  error
	prefixes   atomic.Int64
)

// fakeGCS starts fake-gcs-server on a free port of 127.0.0.1, once per
// test process, and returns it. It runs until the process exits. Only the
// parent process starts it: statetest.Main runs no test in the child.
func fakeGCS(t testing.TB) *fakestorage.Server {
	t.Helper()
	serverOnce.Do(func() {
		server, serverErr = fakestorage.NewServerWithOptions(fakestorage.Options{
			Scheme: "http",
			Host:   "127.0.0.1",
			Port:   0, // httptest picks a free port on 127.0.0.1
		})
		if serverErr == nil {
			server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
		}
	})
	if serverErr != nil {
		t.Fatalf("starting fake-gcs-server: %v", serverErr)
	}
	return server
}

// testConfig returns settings for a fresh prefix on the fake server, so
// tests (and repeated runs with -count) do not see each other's objects.
func testConfig(t testing.TB) map[string]string {
	srv := fakeGCS(t)
	return map[string]string{
		"bucket":   testBucket,
		"prefix":   fmt.Sprintf("test-%d/dstack", prefixes.Add(1)),
		"endpoint": srv.URL(),
		"lock_ttl": "30s",
	}
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
	cfg := testConfig(t)
	srv := fakeGCS(t)
	layout := newBackend(t, cfg)
	statetest.Run(t, statetest.Harness{
		New: func(t testing.TB) state.Backend { return newBackend(t, cfg) },
		PutRaw: func(t testing.TB, workspace string, data []byte) {
			// Straight into the server's store, past every check.
			srv.CreateObject(fakestorage.Object{
				ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: layout.StateObject(workspace), ContentType: "application/json"},
				Content:     data,
			})
		},
		Config: cfg,
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

// TestFakeServerPreconditions checks, with the backend's raw JSON API
// requests alone, that fake-gcs-server enforces the generation
// preconditions the backend's safety rests on; the conformance suite is
// only as good as this.
func TestFakeServerPreconditions(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, testConfig(t))
	name := b.prefix + "/object"
	// put uploads data to object with ifGenerationMatch=match, or without
	// a precondition when match is noCondition.
	put := func(object string, match int64, data string) (int64, error) {
		return b.upload(ctx, object, []byte(data), match)
	}
	read := func() (string, int64) {
		t.Helper()
		data, gen, err := b.get(ctx, name)
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		return string(data), gen
	}
	wantPrecondition := func(what string, err error) {
		t.Helper()
		var aerr *apiError
		if !errors.As(err, &aerr) || aerr.Code != http.StatusPreconditionFailed {
			t.Fatalf("%s: got %v, want 412 Precondition Failed", what, err)
		}
	}

	// ifGenerationMatch=0 on a write: create only.
	gen1, err := put(name, 0, "one")
	if err != nil {
		t.Fatalf("create with ifGenerationMatch=0: %v", err)
	}
	_, err = put(name, 0, "two")
	wantPrecondition("second create with ifGenerationMatch=0", err)
	if data, gen := read(); data != "one" || gen != gen1 {
		t.Fatalf("after a refused create: %q generation %d, want %q %d", data, gen, "one", gen1)
	}

	// ifGenerationMatch=N on a write: replace only generation N.
	gen2, err := put(name, gen1, "two")
	if err != nil {
		t.Fatalf("write with ifGenerationMatch on the current generation: %v", err)
	}
	if gen2 == gen1 {
		t.Fatalf("a write kept generation %d", gen1)
	}
	_, err = put(name, gen1, "stale")
	wantPrecondition("write with ifGenerationMatch on a replaced generation", err)
	if data, gen := read(); data != "two" || gen != gen2 {
		t.Fatalf("after a refused write: %q generation %d, want %q %d", data, gen, "two", gen2)
	}

	// A delete naming a replaced generation finds nothing to delete.
	err = b.remove(ctx, name, gen1, gen1)
	if !lostRace(err) {
		t.Fatalf("delete of a replaced generation (generation and ifGenerationMatch): got %v, want 404 or 412", err)
	}
	if data, gen := read(); data != "two" || gen != gen2 {
		t.Fatalf("after a refused delete: %q generation %d, want %q %d", data, gen, "two", gen2)
	}

	// Of many racing creates exactly one wins.
	race := b.prefix + "/race"
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := put(race, 0, fmt.Sprint(i))
			switch {
			case err == nil:
				wins.Add(1)
			case !isPrecondition(err):
				t.Errorf("racing create: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d racing creates won, want 1", wins.Load())
	}

	// The backend deletes with both; this is what it relies on.
	if err := b.deleteGeneration(ctx, name, gen2); err != nil {
		t.Fatalf("delete of the current generation: %v", err)
	}
	if _, _, err := b.get(ctx, name); !errors.Is(err, errNotExist) {
		t.Fatalf("after delete: %v", err)
	}

	// ifGenerationMatch alone on a delete, as Terraform's gcs backend
	// sends it. GCS refuses a stale one with 412.
	t.Run("DeleteIfGenerationMatchOnly", func(t *testing.T) {
		gen3, err := put(name, noCondition, "three")
		if err != nil {
			t.Fatal(err)
		}
		err = b.remove(ctx, name, 0, gen3-1)
		if err == nil {
			t.Skipf("fake-gcs-server ignores ifGenerationMatch on DELETE: a delete with ifGenerationMatch=%d of generation %d succeeded and removed the object; the backend also names the generation (?generation=N), which the fake does honour", gen3-1, gen3)
		}
		wantPrecondition("delete with a stale ifGenerationMatch", err)
	})
}

func TestConfig(t *testing.T) {
	credsFile := filepath.Join(t.TempDir(), "creds.json")
	if err := os.WriteFile(credsFile, []byte(`{"type":"service_account","project_id":"p"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name    string
		cfg     map[string]string
		want    *config
		wantErr string
	}{
		{
			name: "defaults",
			cfg:  map[string]string{"bucket": "b"},
			want: &config{bucket: "b", prefix: "dstack", ttl: state.DefaultLeaseTTL},
		},
		{
			name: "all",
			cfg:  map[string]string{"bucket": "b", "prefix": "team/infra/", "lock_ttl": "45s", "encryption_key": key, "endpoint": "http://localhost:4443"},
			want: &config{bucket: "b", prefix: "team/infra", ttl: 45 * time.Second, key: make([]byte, 32), endpoint: "http://localhost:4443/storage/v1/"},
		},
		{
			name: "endpoint with a path",
			cfg:  map[string]string{"bucket": "b", "endpoint": "https://gcs.example.com/storage/v1"},
			want: &config{bucket: "b", prefix: "dstack", ttl: state.DefaultLeaseTTL, endpoint: "https://gcs.example.com/storage/v1/"},
		},
		{
			name: "credentials file",
			cfg:  map[string]string{"bucket": "b", "credentials": credsFile},
			want: &config{bucket: "b", prefix: "dstack", ttl: state.DefaultLeaseTTL, credsJSON: []byte(`{"type":"service_account","project_id":"p"}`), credsType: "service_account"},
		},
		{
			name: "credentials JSON",
			cfg:  map[string]string{"bucket": "b", "credentials": ` {"type":"authorized_user"}`},
			want: &config{bucket: "b", prefix: "dstack", ttl: state.DefaultLeaseTTL, credsJSON: []byte(`{"type":"authorized_user"}`), credsType: "authorized_user"},
		},
		{name: "no bucket", cfg: map[string]string{"prefix": "x"}, wantErr: "bucket is required"},
		{name: "bucket URL", cfg: map[string]string{"bucket": "gs://b/x"}, wantErr: "without gs://"},
		{name: "unknown", cfg: map[string]string{"bucket": "b", "zone": "x"}, wantErr: `unknown setting "zone" (known: bucket, credentials`},
		{name: "typo", cfg: map[string]string{"bucket": "b", "prefx": "x"}, wantErr: `unknown setting "prefx" (did you mean "prefix"?)`},
		{name: "absolute prefix", cfg: map[string]string{"bucket": "b", "prefix": "/x"}, wantErr: "must not start with a slash"},
		{name: "bad ttl", cfg: map[string]string{"bucket": "b", "lock_ttl": "soon"}, wantErr: `lock_ttl "soon"`},
		{name: "negative ttl", cfg: map[string]string{"bucket": "b", "lock_ttl": "-1m"}, wantErr: `lock_ttl "-1m"`},
		{name: "short key", cfg: map[string]string{"bucket": "b", "encryption_key": base64.StdEncoding.EncodeToString([]byte("short"))}, wantErr: "32-byte AES-256 key"},
		{name: "key not base64", cfg: map[string]string{"bucket": "b", "encryption_key": "!!"}, wantErr: "base64"},
		{name: "endpoint not a URL", cfg: map[string]string{"bucket": "b", "endpoint": "localhost:4443"}, wantErr: "not an http or https URL"},
		{name: "missing credentials file", cfg: map[string]string{"bucket": "b", "credentials": filepath.Join(t.TempDir(), "none.json")}, wantErr: "reading credentials"},
		{name: "credentials not JSON", cfg: map[string]string{"bucket": "b", "credentials": "{nope"}, wantErr: "is not credentials JSON"},
		{name: "credentials of an unknown type", cfg: map[string]string{"bucket": "b", "credentials": `{"type":"mystery"}`}, wantErr: `credentials of type "mystery"`},
		{name: "credentials and endpoint", cfg: map[string]string{"bucket": "b", "credentials": `{"type":"service_account"}`, "endpoint": "http://localhost:4443"}, wantErr: "cannot be used together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "gcs backend: ") {
					t.Errorf("error %q does not name the backend", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	srv := fakeGCS(t)
	cfg := testConfig(t)
	b := newBackend(t, cfg)
	if got, want := b.StateObject("default"), cfg["prefix"]+"/default.json"; got != want {
		t.Errorf("state object %q, want %q", got, want)
	}
	if got, want := b.LockObject("prod"), cfg["prefix"]+"/prod.lock"; got != want {
		t.Errorf("lock object %q, want %q", got, want)
	}
	s := state.New("test")
	v, err := b.Write(ctx, "prod", s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := srv.GetObject(testBucket, cfg["prefix"]+"/prod.json")
	if err != nil {
		t.Fatalf("the state is not at <prefix>/prod.json: %v", err)
	}
	if fmt.Sprint(obj.Generation) != string(v) {
		t.Errorf("version %q, object generation %d", v, obj.Generation)
	}
	// Objects that are not states do not make workspaces.
	for _, name := range []string{"orphan.lock", "nested/x.json", "notes.txt"} {
		srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: cfg["prefix"] + "/" + name}, Content: []byte("{}")})
	}
	if _, err := b.Lock(ctx, "prod", state.LockInfo{Who: "me"}, 0); err != nil {
		t.Fatal(err)
	}
	list, err := b.Workspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"prod"}, list); diff != "" {
		t.Errorf("workspaces (-want +got):\n%s", diff)
	}
	if err := b.DeleteWorkspace(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prod.json", "prod.lock"} {
		if _, err := srv.GetObject(testBucket, cfg["prefix"]+"/"+name); err == nil {
			t.Errorf("%s survived DeleteWorkspace", name)
		}
	}
	if err := b.DeleteWorkspace(ctx, "prod"); err != nil {
		t.Errorf("deleting a deleted workspace: %v", err)
	}
	for _, ws := range []string{"a/b", "..", `a\b`} {
		if _, err := b.Read(ctx, ws); err == nil || !strings.Contains(err.Error(), "invalid workspace name") {
			t.Errorf("Read(%q): %v, want an invalid workspace name", ws, err)
		}
	}
	if _, err := b.Write(ctx, "prod", s, "not-a-generation", ""); err == nil || !strings.Contains(err.Error(), "not a GCS object generation") {
		t.Errorf("write with a foreign version: %v", err)
	}
}

// TestLockDefaults checks that a lock without a TTL gets lock_ttl and
// names the state it guards.
func TestLockDefaults(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	b := newBackend(t, cfg)
	l, err := b.Lock(ctx, "default", state.LockInfo{Who: "me"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Expires.Sub(l.Created); got != 30*time.Second {
		t.Errorf("lease %v, want lock_ttl 30s", got)
	}
	if want := "gs://" + testBucket + "/" + cfg["prefix"] + "/default.json"; l.Path != want {
		t.Errorf("lock path %q, want %q", l.Path, want)
	}
	if err := b.Unlock(ctx, "default", l.ID); err != nil {
		t.Fatal(err)
	}
	// Unlocking what is not held is not an error.
	if err := b.Unlock(ctx, "default", l.ID); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	if err := b.ForceUnlock(ctx, "default", l.ID); !errors.Is(err, state.ErrNotLocked) {
		t.Errorf("force-unlock of no lock: %v, want ErrNotLocked", err)
	}
}

// TestEmulatorHost checks that STORAGE_EMULATOR_HOST alone reaches the
// emulator, and that an encryption key is sent along (the fake accepts it
// without encrypting).
func TestEmulatorHost(t *testing.T) {
	srv := fakeGCS(t)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", u.Host)
	cfg := testConfig(t)
	delete(cfg, "endpoint")
	cfg["encryption_key"] = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	b := newBackend(t, cfg)
	ctx := context.Background()
	s := state.New("test")
	v, err := b.Write(ctx, "emulated", s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(ctx, "emulated")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != v || snap.State.Lineage != s.Lineage {
		t.Fatalf("read back %q %q, want %q %q", snap.Version, snap.State.Lineage, v, s.Lineage)
	}
}
