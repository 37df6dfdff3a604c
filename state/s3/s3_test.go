package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/statetest"
)

func TestMain(m *testing.M) {
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	statetest.Run(t, statetest.Harness{
		New: func(t testing.TB) state.Backend { return srv.backend(t) },
		PutRaw: func(t testing.TB, workspace string, data []byte) {
			srv.putRaw(t, srv.backend(t).StateKey(workspace), data)
		},
		Config: srv.Config(),
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

// TestServerConditionalRequests checks that the gateway honours the
// conditional requests the backend's safety rests on. If one of these
// fails, the server (or its version) cannot hold dstack state safely.
func TestServerConditionalRequests(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	bucket, key := aws.String(srv.Bucket), aws.String("conditional/object")
	put := func(body string, mod func(*s3.PutObjectInput)) (string, error) {
		in := &s3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader(body)}
		mod(in)
		out, err := srv.Client.PutObject(ctx, in)
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}
	ifNoneMatch := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
	ifMatch := func(etag string) func(*s3.PutObjectInput) {
		return func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }
	}
	content := func() string {
		out, err := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(out.Body)
		return b.String()
	}

	// If-Match on a missing object must not create it.
	if _, err := put("x", ifMatch(`"0123456789abcdef0123456789abcdef"`)); !lostRace(err) {
		t.Fatalf("PUT If-Match on a missing object: %s, want 412 or 404", errorCode(err))
	}
	if srv.exists(t, *key) {
		t.Fatal("PUT If-Match on a missing object created it")
	}
	e1, err := put("one", ifNoneMatch)
	if err != nil {
		t.Fatalf("PUT If-None-Match: * on a new object: %v", err)
	}
	if _, err := put("two", ifNoneMatch); !isPrecondition(err) {
		t.Fatalf("PUT If-None-Match: * over an object: %s, want 412", errorCode(err))
	}
	if _, err := put("two", ifMatch(`"0123456789abcdef0123456789abcdef"`)); !isPrecondition(err) {
		t.Fatalf("PUT with a wrong If-Match: %s, want 412", errorCode(err))
	}
	if got := content(); got != "one" {
		t.Fatalf("after refused PUTs the object holds %q, want %q", got, "one")
	}
	e2, err := put("two", ifMatch(e1))
	if err != nil {
		t.Fatalf("PUT with the right If-Match: %v", err)
	}
	if e2 == e1 {
		t.Fatalf("the ETag did not change: %s", e2)
	}
	if _, err := put("three", ifMatch(e1)); !isPrecondition(err) {
		t.Fatalf("PUT with a stale If-Match: %s, want 412", errorCode(err))
	}
	_, err = srv.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key, IfMatch: aws.String(e1)})
	if !isPrecondition(err) {
		t.Fatalf("DELETE with a stale If-Match: %s, want 412", errorCode(err))
	}
	if !srv.exists(t, *key) {
		t.Fatal("DELETE with a stale If-Match deleted the object")
	}
	if _, err := srv.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key, IfMatch: aws.String(e2)}); err != nil {
		t.Fatalf("DELETE with the right If-Match: %v", err)
	}
	if srv.exists(t, *key) {
		t.Fatal("DELETE with the right If-Match left the object")
	}
}

// TestLayout checks where objects go: Terraform's layout, so a bucket
// reads the same to people who know it.
func TestLayout(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b := srv.backend(t)
	for _, ws := range []string{"", "dev"} {
		if _, err := b.Write(ctx, ws, state.New("test"), "", ""); err != nil {
			t.Fatalf("write %q: %v", ws, err)
		}
	}
	if _, err := b.Read(ctx, "default"); err != nil {
		t.Fatalf("the default workspace is not the one written as \"\": %v", err)
	}
	for _, key := range []string{"dstack/state.json", "env:/dev/dstack/state.json"} {
		if !srv.exists(t, key) {
			t.Errorf("no object at %s", key)
		}
	}
	l, err := b.Lock(ctx, "dev", state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.exists(t, "env:/dev/dstack/state.json.lock") {
		t.Error("no lock object at env:/dev/dstack/state.json.lock")
	}
	if l.Path != "s3://dstack-state/env:/dev/dstack/state.json" {
		t.Errorf("lock path %q", l.Path)
	}
	// Objects that are not states must not show up as workspaces.
	srv.putRaw(t, "env:/dev/other.json", []byte("{}"))
	srv.putRaw(t, "env:/stray", []byte("{}"))
	list, err := b.Workspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(list), "[default dev]"; got != want {
		t.Errorf("workspaces %s, want %s", got, want)
	}
	if err := b.DeleteWorkspace(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"env:/dev/dstack/state.json", "env:/dev/dstack/state.json.lock"} {
		if srv.exists(t, key) {
			t.Errorf("%s survived DeleteWorkspace", key)
		}
	}
	if _, err := b.Read(ctx, "a/b"); err == nil || !strings.Contains(err.Error(), "invalid workspace") {
		t.Errorf("workspace with a slash: %v", err)
	}

	// Another key and prefix.
	cfg := srv.Config()
	cfg["key"], cfg["workspace_key_prefix"] = "team/x.json", "workspaces"
	other, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write(ctx, "prod", state.New("test"), "", ""); err != nil {
		t.Fatal(err)
	}
	if !srv.exists(t, "workspaces/prod/team/x.json") {
		t.Error("no object at workspaces/prod/team/x.json")
	}
	if list, err := other.Workspaces(ctx); err != nil || fmt.Sprint(list) != "[prod]" {
		t.Errorf("workspaces %v %v, want [prod]", list, err)
	}
}

// TestWriteUnderAnotherLock checks that a writer naming a lock it lost
// is refused before anything is written, even with the right version.
func TestWriteUnderAnotherLock(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b := srv.backend(t)
	v, err := b.Write(ctx, "w", state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := b.Lock(ctx, "w", state.LockInfo{Who: "holder"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	snap.State.Serial++
	var lost *state.LockLostError
	if _, err := b.Write(ctx, "w", snap.State, v, "someone-else"); !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.ID != l.ID {
		t.Fatalf("write naming another lock: %v, want *LockLostError naming %s", err, l.ID)
	}
	if _, err := b.Write(ctx, "w", snap.State, v, l.ID); err != nil {
		t.Fatalf("write by the holder: %v", err)
	}
}

// TestWriteAfterDelete checks that a write naming a version whose object
// was deleted since is a conflict, and does not bring the state back.
func TestWriteAfterDelete(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b := srv.backend(t)
	v, err := b.Write(ctx, "gone", state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteWorkspace(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	var conflict *state.ConflictError
	if _, err := b.Write(ctx, "gone", state.New("test"), v, ""); !errors.As(err, &conflict) || conflict.Actual != "" {
		t.Fatalf("write over a deleted state: %v, want *ConflictError with no actual version", err)
	}
	if _, err := b.Read(ctx, "gone"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after the refused write: %v", err)
	}
}

// TestLockAgainWithOwnID checks that Lock naming the ID of the live lock
// already stored takes it again, as it must when the SDK retried a PUT
// whose first attempt landed; any other ID is refused.
func TestLockAgainWithOwnID(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b := srv.backend(t)
	first, err := b.Lock(ctx, "again", state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Lock(ctx, "again", state.LockInfo{ID: first.ID, Who: "me"}, 2*time.Minute)
	if err != nil {
		t.Fatalf("lock again with the same ID: %v", err)
	}
	if again.ID != first.ID || !again.Expires.After(first.Expires) {
		t.Fatalf("lock again: %+v, want ID %s with a later expiry than %v", again, first.ID, first.Expires)
	}
	var locked *state.LockedError
	if _, err := b.Lock(ctx, "again", state.LockInfo{Who: "other"}, time.Minute); !errors.As(err, &locked) || locked.Holder.ID != first.ID {
		t.Fatalf("lock with another ID: %v, want *LockedError", err)
	}
}

// TestTakeoverRace has many clients race for one expired lock: the
// conditional PUT lets exactly one of them have it.
func TestTakeoverRace(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	old, err := srv.backend(t).Lock(ctx, "race", state.LockInfo{Who: "crashed"}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(old.Expires) + 50*time.Millisecond)
	const clients = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		errs    []error
	)
	for i := range clients {
		b := srv.backend(t)
		wg.Go(func() {
			l, err := b.Lock(ctx, "race", state.LockInfo{Who: fmt.Sprintf("c%d", i)}, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			var locked *state.LockedError
			switch {
			case err == nil:
				winners = append(winners, l.ID)
			case !errors.As(err, &locked):
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(winners) != 1 {
		t.Fatalf("%d clients took the expired lock, want exactly 1", len(winners))
	}
	cur, err := srv.backend(t).LockInfo(ctx, "race")
	if err != nil || cur == nil || cur.ID != winners[0] {
		t.Fatalf("stored lock %+v %v, want the winner %s", cur, err, winners[0])
	}
}

// TestEncrypt checks that encrypt=true asks for server-side encryption
// on every PUT. versitygw accepts the header but neither encrypts nor
// reports it back, so the test looks at the requests sent.
func TestEncrypt(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	cfg := srv.Config()
	cfg["encrypt"] = "true"
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		puts []string // the SSE header of each PUT
	)
	record := middleware.FinalizeMiddlewareFunc("recordSSE", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok && req.Method == "PUT" {
			mu.Lock()
			puts = append(puts, req.Header.Get("X-Amz-Server-Side-Encryption"))
			mu.Unlock()
		}
		return next.HandleFinalize(ctx, in)
	})
	o := b.client.Options()
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error { return st.Finalize.Add(record, middleware.After) })
	b.client = s3.New(o)

	v, err := b.Write(ctx, "enc", state.New("test"), "", "")
	if err != nil {
		t.Fatalf("encrypted write: %v", err)
	}
	if snap, err := b.Read(ctx, "enc"); err != nil || snap.Version != v {
		t.Fatalf("read back: %v %v", snap, err)
	}
	l, err := b.Lock(ctx, "enc", state.LockInfo{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Renew(ctx, "enc", l.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(puts), "[AES256 AES256 AES256]"; got != want {
		t.Errorf("SSE headers of the PUTs %s, want %s", got, want)
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]string
		wantErr string
		check   func(t *testing.T, b *Backend)
	}{
		{
			name: "defaults",
			cfg:  map[string]string{"bucket": "b"},
			check: func(t *testing.T, b *Backend) {
				if b.key != DefaultKey || b.prefix != DefaultWorkspaceKeyPrefix || b.encrypt || b.ttl != state.DefaultLeaseTTL {
					t.Errorf("got key %q prefix %q encrypt %v ttl %v", b.key, b.prefix, b.encrypt, b.ttl)
				}
				if got := b.StateKey("default"); got != "dstack/state.json" {
					t.Errorf("default state key %q", got)
				}
				if got := b.StateKey("dev"); got != "env:/dev/dstack/state.json" {
					t.Errorf("dev state key %q", got)
				}
			},
		},
		{
			name: "everything",
			cfg: map[string]string{
				"bucket": "b", "key": "a/s.json", "workspace_key_prefix": "ws", "region": "eu-west-1",
				"endpoint": "http://127.0.0.1:1", "use_path_style": "true", "access_key": "k", "secret_key": "s",
				"encrypt": "true", "lock_ttl": "30s",
			},
			check: func(t *testing.T, b *Backend) {
				if !b.encrypt || b.ttl != 30*time.Second || b.StateKey("x") != "ws/x/a/s.json" {
					t.Errorf("got encrypt %v ttl %v key %q", b.encrypt, b.ttl, b.StateKey("x"))
				}
				o := b.client.Options()
				if o.Region != "eu-west-1" || !o.UsePathStyle || aws.ToString(o.BaseEndpoint) != "http://127.0.0.1:1" {
					t.Errorf("client options: region %q path style %v endpoint %q", o.Region, o.UsePathStyle, aws.ToString(o.BaseEndpoint))
				}
				creds, err := o.Credentials.Retrieve(context.Background())
				if err != nil || creds.AccessKeyID != "k" || creds.SecretAccessKey != "s" {
					t.Errorf("credentials %+v %v", creds, err)
				}
			},
		},
		{name: "no bucket", cfg: map[string]string{"key": "k"}, wantErr: "bucket is required"},
		{name: "unknown setting", cfg: map[string]string{"bucket": "b", "dynamodb_table": "t"}, wantErr: `unknown setting "dynamodb_table"`},
		{name: "bad encrypt", cfg: map[string]string{"bucket": "b", "encrypt": "yes please"}, wantErr: `encrypt "yes please" is not true or false`},
		{name: "bad path style", cfg: map[string]string{"bucket": "b", "use_path_style": "maybe"}, wantErr: "use_path_style"},
		{name: "bad lock_ttl", cfg: map[string]string{"bucket": "b", "lock_ttl": "soon"}, wantErr: `lock_ttl "soon"`},
		{name: "negative lock_ttl", cfg: map[string]string{"bucket": "b", "lock_ttl": "-1m"}, wantErr: "lock_ttl"},
		{name: "access key alone", cfg: map[string]string{"bucket": "b", "access_key": "k"}, wantErr: "access_key and secret_key must be set together"},
		{name: "secret key alone", cfg: map[string]string{"bucket": "b", "secret_key": "s"}, wantErr: "access_key and secret_key must be set together"},
		{name: "key with leading slash", cfg: map[string]string{"bucket": "b", "key": "/s.json"}, wantErr: "must not start or end with a slash"},
		{name: "key with trailing slash", cfg: map[string]string{"bucket": "b", "key": "dir/"}, wantErr: "must not start or end with a slash"},
		{name: "empty prefix", cfg: map[string]string{"bucket": "b", "workspace_key_prefix": ""}, wantErr: "workspace_key_prefix"},
		{name: "prefix with slash", cfg: map[string]string{"bucket": "b", "workspace_key_prefix": "env/"}, wantErr: "workspace_key_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}
