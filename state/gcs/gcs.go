// Package gcs stores dstack state in a Google Cloud Storage bucket, or in
// a GCS emulator that honours generation preconditions (fake-gcs-server).
//
// Layout, as Terraform's gcs backend lays it out: a workspace's state is
// the object <prefix>/<workspace>.json, and its lock is the object
// <prefix>/<workspace>.lock beside it, holding a JSON state.LockInfo.
//
// Safety comes from GCS's generation preconditions, not from a lock table:
//
//   - A state's Version is its object generation. Write replaces the
//     object only with ifGenerationMatch on the generation the writer read
//     (ifGenerationMatch=0, "does not exist", when it read nothing), so a
//     lost compare-and-swap is a 412 and nothing changes.
//   - A lock is created with ifGenerationMatch=0, and renewed and taken
//     over once expired with ifGenerationMatch on the lock object's
//     generation, so of two clients racing for the same lock exactly one
//     wins. It is deleted by naming its generation and with
//     ifGenerationMatch, so a delete can only ever remove the lock object
//     that was read, never one another client wrote since.
//
// Lease expiry compares the lock's Expires with the local clock, so the
// clocks of clients sharing a state must roughly agree (within a small
// fraction of the lease TTL).
//
// Start with New; its settings are listed on New. The Backend contract is
// documented on state.Backend and checked by state/statetest.
package gcs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/objlock"
)

// DefaultPrefix is the prefix setting's default.
const DefaultPrefix = "dstack"

// settings are the configuration keys New knows, for error messages.
var settings = []string{"bucket", "credentials", "encryption_key", "endpoint", "lock_ttl", "prefix"}

// credentialTypes are the kinds of credentials JSON New accepts, by the
// JSON's "type" field. Naming the type, rather than letting the library
// guess, keeps a credentials file of an unexpected kind from being used.
var credentialTypes = map[string]option.CredentialsType{
	"service_account":              option.ServiceAccount,
	"authorized_user":              option.AuthorizedUser,
	"impersonated_service_account": option.ImpersonatedServiceAccount,
	"external_account":             option.ExternalAccount,
}

// Backend is a state.Backend on a GCS bucket. It is safe for concurrent
// use.
type Backend struct {
	client *storage.Client
	bucket string
	prefix string
	key    []byte // customer-supplied encryption key, or nil
	ttl    time.Duration
	now    func() time.Time
}

var _ state.Backend = (*Backend)(nil)

// config is New's settings, checked.
type config struct {
	bucket   string
	prefix   string
	key      []byte
	ttl      time.Duration
	endpoint string
	// credsJSON and credsType are the credentials setting, read; empty
	// means Application Default Credentials.
	credsJSON []byte
	credsType option.CredentialsType
}

// New returns a backend from its settings:
//
//	bucket          the bucket (required)
//	prefix          the folder the objects live in (default "dstack"):
//	                <prefix>/<workspace>.json and <prefix>/<workspace>.lock
//	credentials     a credentials JSON file, or its contents (default:
//	                GOOGLE_APPLICATION_CREDENTIALS, then Application Default
//	                Credentials); service_account, authorized_user,
//	                impersonated_service_account and external_account
//	                credentials are accepted
//	endpoint        the JSON API endpoint URL, for emulators such as
//	                fake-gcs-server ("http://localhost:4443"; "/storage/v1/"
//	                is added when the URL has no path). Requests to it are
//	                not authenticated.
//	encryption_key  a customer-supplied AES-256 key, base64, that objects are
//	                encrypted with
//	lock_ttl        the lease used when a caller asks for none (default 2m)
//
// Without endpoint, STORAGE_EMULATOR_HOST, when set, points the backend
// at an emulator as it does every GCS client.
//
// An unknown setting is an error. New reads credentials from the
// environment and local files but makes no request to the bucket.
func New(cfg map[string]string) (*Backend, error) {
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	opts := []option.ClientOption{storage.WithJSONReads()}
	switch {
	case c.endpoint != "":
		opts = append(opts, option.WithEndpoint(c.endpoint), option.WithoutAuthentication())
	case os.Getenv("STORAGE_EMULATOR_HOST") != "":
		// NewClient points itself at the emulator, without credentials.
	case c.credsJSON != nil:
		opts = append(opts, option.WithAuthCredentialsJSON(c.credsType, c.credsJSON))
	}
	// The context bounds only the client's set-up (finding credentials),
	// not the requests it makes later.
	client, err := storage.NewClient(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs backend: creating the storage client: %w", err)
	}
	return &Backend{client: client, bucket: c.bucket, prefix: c.prefix, key: c.key, ttl: c.ttl, now: time.Now}, nil
}

// parseConfig checks the settings; it touches no network.
func parseConfig(cfg map[string]string) (*config, error) {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(settings, k) {
			return nil, state.UnknownSetting("gcs", k, settings)
		}
	}
	c := &config{bucket: cfg["bucket"], prefix: cfg["prefix"], ttl: state.DefaultLeaseTTL}
	if c.bucket == "" {
		return nil, errors.New("gcs backend: bucket is required")
	}
	if strings.ContainsAny(c.bucket, "/ ") {
		return nil, fmt.Errorf("gcs backend: bucket %q is a bucket name, without gs:// or a path; put a folder in prefix", c.bucket)
	}
	c.prefix = strings.TrimRight(c.prefix, "/")
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if strings.HasPrefix(c.prefix, "/") {
		return nil, fmt.Errorf("gcs backend: prefix %q must not start with a slash", cfg["prefix"])
	}
	if v := cfg["lock_ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("gcs backend: lock_ttl %q is not a positive duration such as 2m", v)
		}
		c.ttl = d
	}
	if v := cfg["encryption_key"]; v != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(key) != 32 {
			return nil, errors.New("gcs backend: encryption_key must be a base64-encoded 32-byte AES-256 key")
		}
		c.key = key
	}
	if v := cfg["endpoint"]; v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("gcs backend: endpoint %q is not an http or https URL", v)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/storage/v1/"
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		c.endpoint = u.String()
	}
	creds := strings.TrimSpace(cfg["credentials"])
	if creds != "" && c.endpoint != "" {
		return nil, errors.New("gcs backend: credentials and endpoint cannot be used together: requests to an endpoint are not authenticated")
	}
	if creds != "" {
		data := []byte(creds)
		where := "the credentials setting"
		if !strings.HasPrefix(creds, "{") {
			var err error
			if data, err = os.ReadFile(creds); err != nil {
				return nil, fmt.Errorf("gcs backend: reading credentials: %w", err)
			}
			where = creds
		}
		var f struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("gcs backend: %s is not credentials JSON: %v", where, err)
		}
		t, ok := credentialTypes[f.Type]
		if !ok {
			return nil, fmt.Errorf("gcs backend: %s holds credentials of type %q; use service_account, authorized_user, impersonated_service_account or external_account credentials", where, f.Type)
		}
		c.credsJSON, c.credsType = data, t
	}
	return c, nil
}

// Close releases the backend's connections.
func (b *Backend) Close() error { return b.client.Close() }

// Bucket is the bucket the backend stores state in.
func (b *Backend) Bucket() string { return b.bucket }

// StateObject returns the object name of a workspace's state.
func (b *Backend) StateObject(workspace string) string {
	if workspace == "" {
		workspace = state.DefaultWorkspace
	}
	return b.prefix + "/" + workspace + ".json"
}

// LockObject returns the object name of a workspace's lock.
func (b *Backend) LockObject(workspace string) string {
	if workspace == "" {
		workspace = state.DefaultWorkspace
	}
	return b.prefix + "/" + workspace + ".lock"
}

func (b *Backend) where(name string) string { return "gs://" + b.bucket + "/" + name }

// checkWorkspace refuses a name that would leave the prefix or make the
// workspace list ambiguous.
func checkWorkspace(workspace string) error {
	if workspace == "." || workspace == ".." || strings.ContainsAny(workspace, "/\\\r\n") {
		return fmt.Errorf("invalid workspace name %q", workspace)
	}
	return nil
}

// obj is the handle of an object, with the encryption key when there is
// one.
func (b *Backend) obj(name string) *storage.ObjectHandle {
	o := b.client.Bucket(b.bucket).Object(name)
	if b.key != nil {
		o = o.Key(b.key)
	}
	return o
}

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	if err := checkWorkspace(workspace); err != nil {
		return nil, err
	}
	name := b.StateObject(workspace)
	data, gen, err := b.get(ctx, name)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, state.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading state %s: %w", b.where(name), err)
	}
	s, err := state.Decode(data, b.where(name))
	if err != nil {
		return nil, err
	}
	return &state.Snapshot{State: s, Version: version(gen)}, nil
}

// Write implements state.Backend. With a lockID it first checks the lock
// object and refuses to write under another holder's live lock; the write
// itself is conditional on prev whatever the lock says.
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	if err := checkWorkspace(workspace); err != nil {
		return "", err
	}
	var gen int64 // 0: the object must not exist
	if prev != "" {
		var err error
		if gen, err = strconv.ParseInt(string(prev), 10, 64); err != nil || gen <= 0 {
			return "", fmt.Errorf("writing state of workspace %q: version %q is not a GCS object generation", workspace, prev)
		}
	}
	if lockID != "" {
		if err := b.lockObject(workspace).CheckWrite(ctx, lockID); err != nil {
			return "", err
		}
	}
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	name := b.StateObject(workspace)
	newGen, err := b.put(ctx, name, data, gen)
	if isPrecondition(err) {
		return "", &state.ConflictError{Workspace: workspace, Expected: prev, Actual: b.currentVersion(ctx, name)}
	}
	if err != nil {
		return "", fmt.Errorf("writing state %s: %w", b.where(name), err)
	}
	return version(newGen), nil
}

// currentVersion is what ConflictError reports as Actual: best effort,
// "" when the object is gone or its attributes cannot be read.
func (b *Backend) currentVersion(ctx context.Context, name string) state.Version {
	attrs, err := b.obj(name).Attrs(ctx)
	if err != nil {
		return ""
	}
	return version(attrs.Generation)
}

func version(gen int64) state.Version { return state.Version(strconv.FormatInt(gen, 10)) }

// lock checks a workspace's name and returns its lock object.
func (b *Backend) lock(workspace string) (*objlock.Object, error) {
	if err := checkWorkspace(workspace); err != nil {
		return nil, err
	}
	return b.lockObject(workspace), nil
}

// lockObject returns a workspace's lock object, without checking the
// workspace's name.
func (b *Backend) lockObject(workspace string) *objlock.Object {
	name := b.LockObject(workspace)
	return &objlock.Object{Store: lockStore{b, name}, Where: b.where(name), Workspace: workspace, TTL: b.ttl, Now: b.now}
}

// Lock implements state.Backend.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	o, err := b.lock(workspace)
	if err != nil {
		return nil, err
	}
	if info.Path == "" {
		info.Path = b.where(b.StateObject(workspace))
	}
	return o.Lock(ctx, info, ttl)
}

// Renew implements state.Backend.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	o, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.Renew(ctx, id, ttl)
}

// Unlock implements state.Backend.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	o, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.Unlock(ctx, id)
}

// ForceUnlock implements state.Backend.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	o, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.ForceUnlock(ctx, id)
}

// LockInfo implements state.Backend. It returns the stored lock even when
// its lease has run out; callers check Live.
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	o, err := b.lock(workspace)
	if err != nil {
		return nil, err
	}
	return o.Info(ctx)
}

// Workspaces implements state.Backend: every <prefix>/<workspace>.json.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	prefix := b.prefix + "/"
	it := b.client.Bucket(b.bucket).Objects(ctx, &storage.Query{Prefix: prefix, Delimiter: "/"})
	var list []string
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing workspaces under %s: %w", b.where(prefix), err)
		}
		if o.Name == "" { // a "folder" under the prefix
			continue
		}
		ws, ok := strings.CutSuffix(strings.TrimPrefix(o.Name, prefix), ".json")
		if ok && ws != "" {
			list = append(list, ws)
		}
	}
	slices.Sort(list)
	return slices.Compact(list), nil
}

// DeleteWorkspace implements state.Backend. It deletes the state and the
// lock, whoever holds it.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	if err := checkWorkspace(workspace); err != nil {
		return err
	}
	for _, name := range []string{b.StateObject(workspace), b.LockObject(workspace)} {
		err := b.client.Bucket(b.bucket).Object(name).Delete(ctx)
		if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return fmt.Errorf("deleting workspace %q: deleting %s: %w", workspace, b.where(name), err)
		}
	}
	return nil
}

// get returns an object's bytes and generation, read in one request so
// that they belong together.
func (b *Backend) get(ctx context.Context, name string) ([]byte, int64, error) {
	r, err := b.obj(name).NewReader(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	return data, r.Attrs.Generation, nil
}

// put stores an object if its generation is still gen, or, when gen is
// 0, if it does not exist. It returns the new generation.
func (b *Backend) put(ctx context.Context, name string, data []byte, gen int64) (int64, error) {
	cond := storage.Conditions{DoesNotExist: true}
	if gen != 0 {
		cond = storage.Conditions{GenerationMatch: gen}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the upload if Write or Close fails
	w := b.obj(name).If(cond).NewWriter(ctx)
	w.ContentType = "application/json"
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Attrs().Generation, nil
}

// lockStore is a lock object, for objlock: its revisions are
// generations.
type lockStore struct {
	b    *Backend
	name string
}

func (s lockStore) Get(ctx context.Context) ([]byte, string, bool, error) {
	data, gen, err := s.b.get(ctx, s.name)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	return data, strconv.FormatInt(gen, 10), true, nil
}

// Create writes with ifGenerationMatch=0.
func (s lockStore) Create(ctx context.Context, data []byte) error {
	_, err := s.b.put(ctx, s.name, data, 0)
	if isPrecondition(err) {
		return fmt.Errorf("%w: %w", objlock.ErrPrecondition, err)
	}
	return err
}

// Replace writes with ifGenerationMatch.
func (s lockStore) Replace(ctx context.Context, data []byte, token string) error {
	gen, err := generation(token)
	if err != nil {
		return err
	}
	_, err = s.b.put(ctx, s.name, data, gen)
	return raced(err)
}

// Delete deletes the generation token names, with ifGenerationMatch.
func (s lockStore) Delete(ctx context.Context, token string) error {
	gen, err := generation(token)
	if err != nil {
		return err
	}
	return raced(s.b.deleteGeneration(ctx, s.name, gen))
}

// generation parses a lock token, which Get made from a generation.
func generation(token string) (int64, error) {
	gen, err := strconv.ParseInt(token, 10, 64)
	if err != nil || gen <= 0 {
		return 0, fmt.Errorf("lock token %q is not a GCS object generation", token)
	}
	return gen, nil
}

// raced marks a conditional change of a lock object that lost a race as
// objlock.ErrPrecondition.
func raced(err error) error {
	if lostRace(err) {
		return fmt.Errorf("%w: %w", objlock.ErrPrecondition, err)
	}
	return err
}

// deleteGeneration deletes generation gen of an object, if it is still
// the live one. Naming the generation as well as the precondition means
// that even a server that ignored ifGenerationMatch on deletes could only
// remove the object that was read.
func (b *Backend) deleteGeneration(ctx context.Context, name string, gen int64) error {
	return b.client.Bucket(b.bucket).Object(name).Generation(gen).If(storage.Conditions{GenerationMatch: gen}).Delete(ctx)
}

// lostRace reports a conditional request on a lock object that failed
// because the object changed or vanished since it was read.
func lostRace(err error) bool {
	return isPrecondition(err) || errors.Is(err, storage.ErrObjectNotExist)
}

// isPrecondition reports a failed precondition: 412 Precondition Failed.
func isPrecondition(err error) bool {
	if err == nil {
		return false
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
		return true
	}
	var aerr *apierror.APIError
	return errors.As(err, &aerr) && aerr.HTTPCode() == http.StatusPreconditionFailed
}
