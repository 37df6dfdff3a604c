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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/objlock"
)

// DefaultPrefix is the prefix setting's default.
const DefaultPrefix = "dstack"

const (
	// defaultEndpoint is the JSON API's base URL. Object uploads go to
	// /upload/storage/v1/ on the same host.
	defaultEndpoint = "https://storage.googleapis.com/storage/v1/"
	// scope is the OAuth scope requests are authorized for: reading,
	// writing and deleting objects.
	scope = "https://www.googleapis.com/auth/devstorage.read_write"
	// tokenTimeout bounds one request for an access token, which the
	// oauth2 library makes without the caller's context.
	tokenTimeout = time.Minute
)

// Retries of transient failures (408, 429, 5xx, dropped connections) of
// requests that are safe to repeat: reads, lists, and writes and deletes
// conditional on a generation.
const (
	maxAttempts    = 5
	initialBackoff = 500 * time.Millisecond
	maxBackoff     = 8 * time.Second
)

// settings are the configuration keys New knows, for error messages.
var settings = []string{"bucket", "credentials", "encryption_key", "endpoint", "lock_ttl", "prefix"}

// credentialTypes are the kinds of credentials JSON New accepts, by the
// JSON's "type" field. Naming the type, rather than letting the library
// guess, keeps a credentials file of an unexpected kind from being used.
var credentialTypes = map[string]google.CredentialsType{
	"service_account":              google.ServiceAccount,
	"authorized_user":              google.AuthorizedUser,
	"impersonated_service_account": google.ImpersonatedServiceAccount,
	"external_account":             google.ExternalAccount,
}

// Backend is a state.Backend on a GCS bucket. It is safe for concurrent
// use.
type Backend struct {
	client    *http.Client // authorizes its requests, unless an emulator's
	transport *http.Transport
	endpoint  string // the JSON API's base URL, ending in "/"
	uploadURL string // the media upload base URL, ending in "/"
	bucket    string
	prefix    string
	key       []byte // customer-supplied encryption key, or nil
	ttl       time.Duration
	now       func() time.Time
	// backoff is the first pause before a retry; each further one
	// doubles, up to maxBackoff.
	backoff time.Duration
	// pageSize is the maxResults of a list request; 0 leaves it to the
	// server.
	pageSize int
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
	credsType google.CredentialsType
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
// The backend speaks the GCS JSON API over HTTPS. Reads, lists, and
// writes and deletes conditional on a generation are retried a few times,
// with backoff, when they fail transiently (408, 429, 5xx, a dropped
// connection).
//
// An unknown setting is an error. New reads credentials from the
// environment and local files but makes no request to the bucket.
func New(cfg map[string]string) (*Backend, error) {
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 100
	transport.MaxIdleConnsPerHost = 100
	b := &Backend{
		client:    &http.Client{Transport: transport},
		transport: transport,
		endpoint:  defaultEndpoint,
		bucket:    c.bucket,
		prefix:    c.prefix,
		key:       c.key,
		ttl:       c.ttl,
		now:       time.Now,
		backoff:   initialBackoff,
	}
	switch host := os.Getenv("STORAGE_EMULATOR_HOST"); {
	case c.endpoint != "":
		b.endpoint = c.endpoint
	case host != "":
		if b.endpoint, err = emulatorEndpoint(host); err != nil {
			return nil, err
		}
	default:
		if err := b.authorize(c); err != nil {
			return nil, fmt.Errorf("gcs backend: creating the storage client: %w", err)
		}
	}
	u, err := url.Parse(b.endpoint)
	if err != nil {
		return nil, fmt.Errorf("gcs backend: endpoint %q: %w", b.endpoint, err)
	}
	// Uploads go to /upload/storage/v1/ on the endpoint's host, whatever
	// the endpoint's path, as Google's client libraries send them.
	b.uploadURL = u.ResolveReference(&url.URL{Path: "/upload/storage/v1/"}).String()
	return b, nil
}

// emulatorEndpoint is the JSON API endpoint of STORAGE_EMULATOR_HOST,
// "host:port" or a URL; http when it names no scheme.
func emulatorEndpoint(host string) (string, error) {
	u := &url.URL{Scheme: "http", Host: host}
	if strings.Contains(host, "://") {
		var err error
		if u, err = url.Parse(host); err != nil || u.Host == "" {
			return "", fmt.Errorf("gcs backend: STORAGE_EMULATOR_HOST %q is not a host:port or an http URL", host)
		}
	}
	u.Path = "/storage/v1/"
	u.RawPath = ""
	return u.String(), nil
}

// authorize finds the credentials (the credentials setting, or
// Application Default Credentials) and makes b's client send an access
// token with every request. It reads files and the environment; it asks
// for no token yet.
func (b *Backend) authorize(c *config) error {
	// The context is kept by the credentials for the token requests they
	// make later: it carries the HTTP client those use, which has a
	// timeout since the requests are not bound by a caller's context.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: b.transport, Timeout: tokenTimeout})
	var creds *google.Credentials
	var err error
	if c.credsJSON != nil {
		creds, err = google.CredentialsFromJSONWithType(ctx, c.credsJSON, c.credsType, scope)
	} else {
		creds, err = google.FindDefaultCredentials(ctx, scope)
	}
	if err != nil {
		return err
	}
	// Credentials of another universe (a credentials file's
	// universe_domain) reach its storage endpoint. On Google Compute
	// Engine the universe is the metadata server's to tell; that is not
	// asked, the default is used.
	if creds.UniverseDomainProvider == nil {
		if ud, err := creds.GetUniverseDomain(); err == nil && ud != "" && ud != "googleapis.com" {
			b.endpoint = "https://storage." + ud + "/storage/v1/"
		}
	}
	b.client = &http.Client{Transport: &bearer{base: b.transport, src: oauth2.ReuseTokenSource(nil, creds.TokenSource)}}
	return nil
}

// bearer is an http.RoundTripper that adds an OAuth access token to each
// request. Unlike oauth2.Transport, it gives up waiting for a token when
// the request's context ends.
type bearer struct {
	base http.RoundTripper
	src  oauth2.TokenSource // caches the token
}

func (t *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.token(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	tok.SetAuthHeader(r)
	return t.base.RoundTrip(r)
}

func (t *bearer) token(ctx context.Context) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := t.src.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("getting an access token: %w", r.err)
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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

// Close releases the backend's idle connections.
func (b *Backend) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

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

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	if err := checkWorkspace(workspace); err != nil {
		return nil, err
	}
	name := b.StateObject(workspace)
	data, gen, err := b.get(ctx, name)
	if errors.Is(err, errNotExist) {
		return nil, state.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading state %s: %w", b.where(name), err)
	}
	s, err := state.Decode(data, b.where(name))
	if err != nil {
		return nil, state.WithVersion(err, version(gen))
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
	gen, err := b.generationOf(ctx, name)
	if err != nil {
		return ""
	}
	return version(gen)
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
	var list []string
	err := b.list(ctx, prefix, func(name string) {
		ws, ok := strings.CutSuffix(strings.TrimPrefix(name, prefix), ".json")
		if ok && ws != "" {
			list = append(list, ws)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing workspaces under %s: %w", b.where(prefix), err)
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
		err := b.remove(ctx, name, 0, noCondition)
		if err != nil && !errors.Is(err, errNotExist) {
			return fmt.Errorf("deleting workspace %q: deleting %s: %w", workspace, b.where(name), err)
		}
	}
	return nil
}

// noCondition is an upload's or a delete's ifGenerationMatch when it has
// none.
const noCondition int64 = -1

// errNotExist is what a 404 Not Found answer matches with errors.Is: the
// object (or the bucket) does not exist.
var errNotExist = errors.New("object does not exist")

// apiError is an answer of the JSON API other than 2xx.
type apiError struct {
	Code    int
	Message string // the error's message, or the start of the body
	Reason  string // the first error's reason, such as "conditionNotMet"
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("GCS answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Is makes a 404 match errNotExist.
func (e *apiError) Is(target error) bool {
	return target == errNotExist && e.Code == http.StatusNotFound
}

// newAPIError reads an error answer: {"error": {"code", "message",
// "errors": [{"reason"}]}}, or any text.
func newAPIError(resp *http.Response) *apiError {
	e := &apiError{Code: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error.Message != "" {
		e.Message = doc.Error.Message
		if len(doc.Error.Errors) > 0 {
			e.Reason = doc.Error.Errors[0].Reason
		}
		return e
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	e.Message = strings.ToValidUTF8(text, "?")
	return e
}

// call is one JSON API request.
type call struct {
	method string
	url    string
	body   []byte // uploaded as application/json; nil: no body
	// object says the request addresses an object's data or metadata, so
	// it carries the encryption key when there is one.
	object bool
	// idempotent says the request may be sent again after a transient
	// failure: repeating it cannot undo or duplicate another client's
	// change.
	idempotent bool
}

// do sends c, retrying it, when it is idempotent, after transient
// failures. It returns the headers and body of a 2xx answer; any other
// answer is an *apiError.
func (b *Backend) do(ctx context.Context, c call) (http.Header, []byte, error) {
	pause := b.backoff
	for attempt := 1; ; attempt++ {
		header, body, err := b.send(ctx, c)
		if err == nil {
			return header, body, nil
		}
		if ctx.Err() != nil || !c.idempotent || !retryable(err) {
			return nil, nil, err
		}
		if attempt == maxAttempts {
			return nil, nil, fmt.Errorf("%w (tried %d times)", err, attempt)
		}
		// A pause between half and all of the backoff, so that clients
		// that failed together do not retry together.
		t := time.NewTimer(pause/2 + rand.N(pause/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%w (while waiting to retry after: %w)", ctx.Err(), err)
		case <-t.C:
		}
		pause = min(2*pause, maxBackoff)
	}
}

// send makes one attempt at c.
func (b *Backend) send(ctx context.Context, c call) (http.Header, []byte, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, body)
	if err != nil {
		return nil, nil, err
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.object && b.key != nil {
		sum := sha256.Sum256(b.key)
		req.Header.Set("X-Goog-Encryption-Algorithm", "AES256")
		req.Header.Set("X-Goog-Encryption-Key", base64.StdEncoding.EncodeToString(b.key))
		req.Header.Set("X-Goog-Encryption-Key-Sha256", base64.StdEncoding.EncodeToString(sum[:]))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, newAPIError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp.Header, data, nil
}

// retryable reports a failure that another attempt may not meet: 408,
// 429 and 5xx answers, and connections refused, reset or closed early.
func retryable(err error) bool {
	var aerr *apiError
	if errors.As(err, &aerr) {
		return aerr.Code == http.StatusRequestTimeout || aerr.Code == http.StatusTooManyRequests || aerr.Code >= 500
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var uerr *url.Error
	if errors.As(err, &uerr) && (errors.Is(err, io.EOF) || strings.Contains(uerr.Error(), "server closed idle connection")) {
		return true
	}
	var derr *net.DNSError
	if errors.As(err, &derr) {
		return derr.IsTemporary
	}
	// Such as a token request that failed with a 5xx.
	var terr interface{ Temporary() bool }
	return errors.As(err, &terr) && terr.Temporary()
}

// objectURL is the JSON API URL of an object, with query q.
func (b *Backend) objectURL(name string, q url.Values) string {
	u := b.endpoint + "b/" + url.PathEscape(b.bucket) + "/o/" + url.PathEscape(name)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// get returns an object's bytes and generation, read in one request so
// that they belong together.
func (b *Backend) get(ctx context.Context, name string) ([]byte, int64, error) {
	header, data, err := b.do(ctx, call{method: http.MethodGet, url: b.objectURL(name, url.Values{"alt": {"media"}}), object: true, idempotent: true})
	if err != nil {
		return nil, 0, err
	}
	gen, err := strconv.ParseInt(header.Get("X-Goog-Generation"), 10, 64)
	if err != nil || gen <= 0 {
		return nil, 0, fmt.Errorf("the download of %s has no generation (X-Goog-Generation %q)", b.where(name), header.Get("X-Goog-Generation"))
	}
	return data, gen, nil
}

// generationOf returns an object's live generation, from its metadata.
func (b *Backend) generationOf(ctx context.Context, name string) (int64, error) {
	_, data, err := b.do(ctx, call{method: http.MethodGet, url: b.objectURL(name, url.Values{"fields": {"generation"}}), object: true, idempotent: true})
	if err != nil {
		return 0, err
	}
	return parseGeneration(data)
}

// parseGeneration reads the generation of an object resource. The JSON
// API sends int64s as strings; a number is accepted too.
func parseGeneration(data []byte) (int64, error) {
	var o struct {
		Generation json.RawMessage `json:"generation"`
	}
	if err := json.Unmarshal(data, &o); err != nil {
		return 0, fmt.Errorf("reading the object's metadata: %w", err)
	}
	gen, err := strconv.ParseInt(strings.Trim(string(o.Generation), `"`), 10, 64)
	if err != nil || gen <= 0 {
		return 0, fmt.Errorf("the object's metadata has no generation (%s)", o.Generation)
	}
	return gen, nil
}

// put stores an object if its generation is still gen, or, when gen is
// 0, if it does not exist. It returns the new generation.
func (b *Backend) put(ctx context.Context, name string, data []byte, gen int64) (int64, error) {
	return b.upload(ctx, name, data, gen)
}

// upload stores an object with ifGenerationMatch=match (0: the object must
// not exist), or unconditionally when match is noCondition, in one media
// upload. It returns the new generation.
func (b *Backend) upload(ctx context.Context, name string, data []byte, match int64) (int64, error) {
	q := url.Values{"uploadType": {"media"}, "name": {name}, "fields": {"generation"}}
	if match != noCondition {
		q.Set("ifGenerationMatch", strconv.FormatInt(match, 10))
	}
	if data == nil {
		data = []byte{}
	}
	u := b.uploadURL + "b/" + url.PathEscape(b.bucket) + "/o?" + q.Encode()
	_, resp, err := b.do(ctx, call{method: http.MethodPost, url: u, body: data, object: true, idempotent: match != noCondition})
	if err != nil {
		return 0, err
	}
	return parseGeneration(resp)
}

// remove deletes generation gen of an object (0: the live one) with
// ifGenerationMatch=match, or without a precondition when match is
// noCondition.
func (b *Backend) remove(ctx context.Context, name string, gen, match int64) error {
	q := url.Values{}
	if gen != 0 {
		q.Set("generation", strconv.FormatInt(gen, 10))
	}
	if match != noCondition {
		q.Set("ifGenerationMatch", strconv.FormatInt(match, 10))
	}
	_, _, err := b.do(ctx, call{method: http.MethodDelete, url: b.objectURL(name, q), idempotent: gen != 0 || match != noCondition})
	return err
}

// list calls fn with the name of every object directly under prefix
// ("folders" left out), page by page.
func (b *Backend) list(ctx context.Context, prefix string, fn func(name string)) error {
	token := ""
	for {
		q := url.Values{"prefix": {prefix}, "delimiter": {"/"}, "fields": {"items(name),nextPageToken"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		if b.pageSize > 0 {
			q.Set("maxResults", strconv.Itoa(b.pageSize))
		}
		_, data, err := b.do(ctx, call{method: http.MethodGet, url: b.endpoint + "b/" + url.PathEscape(b.bucket) + "/o?" + q.Encode(), idempotent: true})
		if err != nil {
			return err
		}
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return fmt.Errorf("reading the object list: %w", err)
		}
		for _, o := range page.Items {
			fn(o.Name)
		}
		if page.NextPageToken == "" || page.NextPageToken == token {
			return nil
		}
		token = page.NextPageToken
	}
}

// lockStore is a lock object, for objlock: its revisions are
// generations.
type lockStore struct {
	b    *Backend
	name string
}

func (s lockStore) Get(ctx context.Context) ([]byte, string, bool, error) {
	data, gen, err := s.b.get(ctx, s.name)
	if errors.Is(err, errNotExist) {
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
	return b.remove(ctx, name, gen, gen)
}

// lostRace reports a conditional request on a lock object that failed
// because the object changed or vanished since it was read.
func lostRace(err error) bool {
	return isPrecondition(err) || errors.Is(err, errNotExist)
}

// isPrecondition reports a failed precondition: 412 Precondition Failed.
func isPrecondition(err error) bool {
	var aerr *apiError
	return errors.As(err, &aerr) && aerr.Code == http.StatusPreconditionFailed
}
