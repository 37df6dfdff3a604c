package azurerm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/statetest"
)

func TestMain(m *testing.M) {
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

func newBackend(t testing.TB, cfg map[string]string) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	cfg := azuriteConfig(t, "conformance")
	statetest.Run(t, statetest.Harness{
		New: func(t testing.TB) state.Backend { return newBackend(t, cfg) },
		PutRaw: func(t testing.TB, ws string, data []byte) {
			b := newBackend(t, cfg)
			_, err := b.client.NewBlockBlobClient(b.BlobName(ws)).Upload(t.Context(), streaming.NopCloser(bytes.NewReader(data)), nil)
			if err != nil {
				t.Fatal(err)
			}
		},
		Config: cfg,
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

func TestParseConfig(t *testing.T) {
	t.Setenv("ARM_ACCESS_KEY", "")
	t.Setenv("ARM_SAS_TOKEN", "")
	base := func(kv ...string) map[string]string {
		m := map[string]string{"storage_account_name": "acct", "container_name": "tfstate"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		cfg  map[string]string
		want Config
		err  []string // substrings of the error, all of them
	}{
		{
			name: "defaults",
			cfg:  base("access_key", devKey),
			want: Config{Account: "acct", Container: "tfstate", Key: DefaultKey, AccessKey: devKey,
				Endpoint: "https://acct.blob.core.windows.net", LockTTL: state.DefaultLeaseTTL},
		},
		{
			name: "everything",
			cfg:  base("key", "prod.json", "sas_token", "?sv=1&sig=x", "endpoint", "http://127.0.0.1:10000/devstoreaccount1/", "lock_ttl", "90s"),
			want: Config{Account: "acct", Container: "tfstate", Key: "prod.json", SASToken: "sv=1&sig=x",
				Endpoint: "http://127.0.0.1:10000/devstoreaccount1", LockTTL: 90 * time.Second},
		},
		{name: "missing required", cfg: map[string]string{"access_key": devKey}, err: []string{"storage_account_name is required", "container_name is required"}},
		{name: "typo", cfg: base("access_key", devKey, "container", "x"), err: []string{`unknown setting "container"`, `did you mean "container_name"`}},
		{name: "unknown", cfg: base("access_key", devKey, "use_azuread_auth", "true"), err: []string{`unknown setting "use_azuread_auth"`, "known: storage_account_name"}},
		{name: "no credentials", cfg: base(), err: []string{"no credentials", "ARM_ACCESS_KEY"}},
		{name: "two credentials", cfg: base("access_key", devKey, "sas_token", "sv=1"), err: []string{"both set"}},
		{name: "bad ttl", cfg: base("access_key", devKey, "lock_ttl", "2"), err: []string{`lock_ttl "2"`}},
		{name: "negative ttl", cfg: base("access_key", devKey, "lock_ttl", "-1m"), err: []string{"positive duration"}},
		{name: "bad endpoint", cfg: base("access_key", devKey, "endpoint", "127.0.0.1:10000"), err: []string{`endpoint "127.0.0.1:10000"`}},
		{name: "empty key", cfg: base("access_key", devKey, "key", ""), err: []string{"key must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(tt.cfg)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				for _, want := range tt.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	cfg := map[string]string{"storage_account_name": "acct", "container_name": "c"}
	t.Setenv("ARM_ACCESS_KEY", devKey)
	t.Setenv("ARM_SAS_TOKEN", "sv=1")
	if c, err := ParseConfig(cfg); err != nil || c.AccessKey != devKey || c.SASToken != "" {
		t.Fatalf("with ARM_ACCESS_KEY: %+v %v", c, err)
	}
	t.Setenv("ARM_ACCESS_KEY", "")
	if c, err := ParseConfig(cfg); err != nil || c.SASToken != "sv=1" {
		t.Fatalf("with ARM_SAS_TOKEN: %+v %v", c, err)
	}
	cfg["sas_token"] = "sv=2"
	t.Setenv("ARM_ACCESS_KEY", devKey)
	if c, err := ParseConfig(cfg); err != nil || c.AccessKey != "" || c.SASToken != "sv=2" {
		t.Fatalf("the config's sas_token should win over ARM_ACCESS_KEY: %+v %v", c, err)
	}
	if _, err := New(map[string]string{"storage_account_name": "acct", "container_name": "c", "access_key": "not base64!"}); err == nil || !strings.Contains(err.Error(), "access_key") {
		t.Fatalf("a malformed access key: %v", err)
	}
}

func TestBlobNames(t *testing.T) {
	b := newBackend(t, map[string]string{"storage_account_name": "acct", "container_name": "c", "access_key": devKey, "key": "app.tfstate"})
	for _, c := range []struct{ ws, state, lock string }{
		{state.DefaultWorkspace, "app.tfstate", "app.tfstate.lock"},
		{"prod", "app.tfstateenv:prod", "app.tfstate.lockenv:prod"},
		{"x.lock", "app.tfstateenv:x.lock", "app.tfstate.lockenv:x.lock"},
	} {
		if got := b.BlobName(c.ws); got != c.state {
			t.Errorf("state blob of %q: %q, want %q", c.ws, got, c.state)
		}
		if got := b.LockBlobName(c.ws); got != c.lock {
			t.Errorf("lock blob of %q: %q, want %q", c.ws, got, c.lock)
		}
	}
}

// TestAzuriteConditions checks that the server refuses what the backend
// relies on it to refuse, so that the conformance suite's passing means
// something.
func TestAzuriteConditions(t *testing.T) {
	b := newBackend(t, azuriteConfig(t, "conditions"))
	ctx := t.Context()
	bb := b.client.NewBlockBlobClient("probe")
	up := func(cond *blob.ModifiedAccessConditions, leaseID string) (azcore.ETag, error) {
		ac := &blob.AccessConditions{ModifiedAccessConditions: cond}
		if leaseID != "" {
			ac.LeaseAccessConditions = &blob.LeaseAccessConditions{LeaseID: &leaseID}
		}
		r, err := bb.Upload(ctx, streaming.NopCloser(strings.NewReader("x")), &blockblob.UploadOptions{AccessConditions: ac})
		if err != nil {
			return "", err
		}
		return *r.ETag, nil
	}
	wantCode := func(what string, err error, code bloberror.Code) {
		t.Helper()
		if !bloberror.HasCode(err, code) {
			t.Errorf("%s: got %v, want %s", what, err, code)
		}
	}
	e1, err := up(&blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = up(&blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}, "")
	wantCode("create over an existing blob", err, bloberror.BlobAlreadyExists)
	_, err = up(&blob.ModifiedAccessConditions{IfMatch: to(azcore.ETag(`"0x1"`))}, "")
	wantCode("upload with a wrong If-Match", err, bloberror.ConditionNotMet)
	e2, err := up(&blob.ModifiedAccessConditions{IfMatch: &e1}, "")
	if err != nil || e2 == e1 {
		t.Fatalf("upload with the right If-Match: %q %v", e2, err)
	}
	err = b.deleteBlob(ctx, "probe", e1, "")
	wantCode("delete with a stale If-Match", err, bloberror.ConditionNotMet)

	lc, err := lease.NewBlobClient(bb, &lease.BlobClientOptions{LeaseID: to(fenceLeaseID("a"))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lc.AcquireLease(ctx, fenceSeconds, &lease.BlobAcquireOptions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e1}})
	wantCode("lease with a stale If-Match", err, bloberror.ConditionNotMet)
	if _, err := lc.AcquireLease(ctx, fenceSeconds, &lease.BlobAcquireOptions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx, fenceSeconds, nil); err != nil {
		t.Errorf("acquiring again with the same lease ID: %v", err)
	}
	if v := b.currentVersion(ctx, "probe"); v != state.Version(e2) {
		t.Errorf("a lease changed the ETag from %q to %q", e2, v)
	}
	other, _ := lease.NewBlobClient(bb, &lease.BlobClientOptions{LeaseID: to(fenceLeaseID("b"))})
	_, err = other.AcquireLease(ctx, fenceSeconds, nil)
	wantCode("a second lease", err, bloberror.LeaseAlreadyPresent)
	_, err = up(&blob.ModifiedAccessConditions{IfMatch: &e2}, "")
	wantCode("upload without the lease ID", err, bloberror.LeaseIDMissing)
	err = b.deleteBlob(ctx, "probe", e2, "")
	wantCode("delete without the lease ID", err, bloberror.LeaseIDMissing)
	_, err = up(&blob.ModifiedAccessConditions{IfMatch: &e2}, fenceLeaseID("b"))
	wantCode("upload with another lease ID", err, bloberror.LeaseIDMismatchWithBlobOperation)
	e3, err := up(&blob.ModifiedAccessConditions{IfMatch: &e2}, fenceLeaseID("a"))
	if err != nil {
		t.Fatalf("upload under the lease: %v", err)
	}
	if err := b.breakLease(ctx, "probe", ""); err != nil {
		t.Fatal(err)
	}
	if err := b.deleteBlob(ctx, "probe", e3, ""); err != nil {
		t.Fatalf("delete after the lease was broken: %v", err)
	}
	_, err = up(&blob.ModifiedAccessConditions{IfMatch: &e3}, "")
	if !changed(err) {
		t.Errorf("If-Match on a deleted blob: got %v, want a failed condition", err)
	}
}

func TestWorkspacesIgnoreLocksAndOtherKeys(t *testing.T) {
	cfg := azuriteConfig(t, "names")
	cfg["key"] = "app.tfstate"
	b := newBackend(t, cfg)
	ctx := t.Context()
	for _, ws := range []string{state.DefaultWorkspace, "x.lock", "x"} {
		if _, err := b.Write(ctx, ws, state.New("test"), "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Lock(ctx, ws, state.LockInfo{Who: "t"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	cfg["key"] = "app.tfstate.old"
	if _, err := newBackend(t, cfg).Write(ctx, "y", state.New("test"), "", ""); err != nil {
		t.Fatal(err)
	}
	got, err := b.Workspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{state.DefaultWorkspace, "x", "x.lock"}, got); d != "" {
		t.Errorf("workspaces (-want +got):\n%s", d)
	}
	if err := b.DeleteWorkspace(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if l, err := b.LockInfo(ctx, "x"); err != nil || l != nil {
		t.Errorf("the lock of a deleted workspace: %+v %v", l, err)
	}
	if l, err := b.LockInfo(ctx, "x.lock"); err != nil || l == nil {
		t.Errorf("deleting x took the lock of x.lock: %+v %v", l, err)
	}
}

// TestFence checks the Azure blob lease a write holds on the lock blob:
// while it is held nobody takes the lock over, and its holder still
// renews, writes and unlocks.
func TestFence(t *testing.T) {
	cfg := azuriteConfig(t, "fence")
	a, other := newBackend(t, cfg), newBackend(t, cfg)
	ctx, ws := t.Context(), "fenced"
	v, err := a.Write(ctx, ws, state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.Lock(ctx, ws, state.LockInfo{Who: "a"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// a's write is stuck between taking the fence and releasing it.
	lc, _ := lease.NewBlobClient(a.client.NewBlobClient(a.LockBlobName(ws)), &lease.BlobClientOptions{LeaseID: to(fenceLeaseID(la.ID))})
	if _, err := lc.AcquireLease(ctx, fenceSeconds, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(ctx, ws, la.ID, time.Second); err != nil {
		t.Fatalf("renew under the holder's own fence: %v", err)
	}
	snap, err := a.Read(ctx, ws)
	if err != nil || snap.Version != v {
		t.Fatal(snap, err)
	}
	if v, err = a.Write(ctx, ws, snap.State, v, la.ID); err != nil {
		t.Fatalf("write under the holder's own fence: %v", err)
	}
	if _, err := lc.AcquireLease(ctx, fenceSeconds, nil); err != nil { // the write released it
		t.Fatal(err)
	}
	la, err = a.LockInfo(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(la.Expires) + 50*time.Millisecond)
	var locked *state.LockedError
	if _, err := other.Lock(ctx, ws, state.LockInfo{Who: "other"}, time.Minute); !errors.As(err, &locked) || locked.Holder.ID != la.ID {
		t.Fatalf("takeover of an expired lock under a fence: got %v, want *LockedError naming %s", err, la.ID)
	}
	if _, err := lc.ReleaseLease(ctx, nil); err != nil {
		t.Fatal(err)
	}
	lo, err := other.Lock(ctx, ws, state.LockInfo{Who: "other"}, time.Minute)
	if err != nil {
		t.Fatalf("takeover once the fence is gone: %v", err)
	}
	var lost *state.LockLostError
	if _, err := a.Write(ctx, ws, snap.State, v, la.ID); !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.ID != lo.ID {
		t.Fatalf("write under a lock taken over: got %v, want *LockLostError naming %s", err, lo.ID)
	}
	// A lock-less write is only a compare-and-swap (-lock=false).
	if _, err := a.Write(ctx, ws, snap.State, v, ""); err != nil {
		t.Fatalf("write without a lock: %v", err)
	}
	// Force-unlock breaks a fence left behind.
	lc2, _ := lease.NewBlobClient(other.client.NewBlobClient(other.LockBlobName(ws)), &lease.BlobClientOptions{LeaseID: to(fenceLeaseID(lo.ID))})
	if _, err := lc2.AcquireLease(ctx, fenceSeconds, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.ForceUnlock(ctx, ws, lo.ID); err != nil {
		t.Fatalf("force-unlock under a fence: %v", err)
	}
	if l, err := a.LockInfo(ctx, ws); err != nil || l != nil {
		t.Fatalf("after force-unlock: %+v %v", l, err)
	}
	if err := a.ForceUnlock(ctx, ws, lo.ID); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("force-unlock of nothing: got %v, want ErrNotLocked", err)
	}
}

func TestConflictNamesTheStoredVersion(t *testing.T) {
	b := newBackend(t, azuriteConfig(t, "conflict"))
	ctx := t.Context()
	v, err := b.Write(ctx, "c", state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Write(ctx, "c", state.New("test"), `"0x1"`, "")
	var conflict *state.ConflictError
	if !errors.As(err, &conflict) || conflict.Actual != v || conflict.Expected != `"0x1"` {
		t.Fatalf("got %v, want a conflict naming %q", err, v)
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	cfg := azuriteConfig(t, "errors")
	cfg["container_name"] = "no-such-container"
	_, err := newBackend(t, cfg).Read(t.Context(), "default")
	if err == nil || errors.Is(err, state.ErrNotFound) {
		t.Fatalf("read from a missing container: %v", err)
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "ContainerNotFound") {
		t.Errorf("error %q should be one line naming the Azure error code", err)
	}
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Error("the Azure error is not wrapped")
	}
}
