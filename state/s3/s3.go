// Package s3 stores dstack state in an S3 bucket, or in any server that
// speaks the S3 API and honours conditional requests (MinIO, versitygw,
// Cloudflare R2, ...).
//
// Layout, as Terraform's s3 backend lays it out: the default workspace's
// state is the object <key>; another workspace's is
// <workspace_key_prefix>/<workspace>/<key>. Each state's lock is the
// object beside it, <state key>.lock, holding a JSON state.LockInfo.
//
// Safety comes from S3's conditional requests, not from a lock table:
//
//   - A state's Version is its ETag. Write replaces the object only with
//     If-Match on the Version the writer read (If-None-Match: * when it read
//     nothing), so a lost compare-and-swap is a 412 and nothing changes.
//   - A lock is created with If-None-Match: *, and renewed, taken over
//     once expired, and deleted with If-Match on the lock object's ETag, so
//     of two clients racing for the same lock exactly one wins.
//
// Lease expiry compares the lock's Expires with the local clock, so the
// clocks of clients sharing a state must roughly agree (within a small
// fraction of the lease TTL).
//
// Start with New; its settings are listed on New. The Backend contract is
// documented on state.Backend and checked by state/statetest.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/objlock"
)

// Defaults for the settings New takes.
const (
	DefaultKey                = "dstack/state.json"
	DefaultWorkspaceKeyPrefix = "env:"
	// defaultRegion signs requests when neither the settings nor the AWS
	// environment name a region; S3-compatible servers mostly ignore it.
	defaultRegion = "us-east-1"
)

// settings are the configuration keys New knows, for error messages.
var settings = []string{
	"access_key", "bucket", "encrypt", "endpoint", "key", "lock_ttl",
	"profile", "region", "secret_key", "use_path_style", "workspace_key_prefix",
}

// Backend is a state.Backend on an S3 bucket. It is safe for concurrent
// use.
type Backend struct {
	client  *s3.Client
	bucket  string
	key     string
	prefix  string
	encrypt bool
	ttl     time.Duration
	now     func() time.Time
}

var _ state.Backend = (*Backend)(nil)

// New returns a backend from its settings:
//
//	bucket                the bucket (required)
//	key                   the default workspace's state object (default "dstack/state.json")
//	workspace_key_prefix  where other workspaces live: <prefix>/<workspace>/<key> (default "env:")
//	region                the bucket's region (default: AWS_REGION, the shared config, then us-east-1)
//	endpoint              the S3 endpoint URL, for S3-compatible servers
//	use_path_style        "true" to address the bucket by path, not by host name
//	access_key, secret_key  static credentials (default: the AWS environment
//	                      variables, shared config and credentials files, then instance roles)
//	profile               the shared config profile to use
//	encrypt               "true" to store objects with server-side encryption (AES256)
//	lock_ttl              the lease used when a caller asks for none (default 2m)
//
// An unknown setting is an error. New reads the AWS environment and shared
// config files but makes no request. For an S3-compatible server that
// rejects the SDK's default request checksums, set the standard
// AWS_REQUEST_CHECKSUM_CALCULATION=when_required.
func New(cfg map[string]string) (*Backend, error) {
	for k := range cfg {
		if !slices.Contains(settings, k) {
			return nil, state.UnknownSetting("s3", k, settings)
		}
	}
	b := &Backend{
		bucket: cfg["bucket"],
		key:    cfg["key"],
		prefix: cfg["workspace_key_prefix"],
		ttl:    state.DefaultLeaseTTL,
		now:    time.Now,
	}
	if b.bucket == "" {
		return nil, errors.New("s3 backend: bucket is required")
	}
	if b.key == "" {
		b.key = DefaultKey
	}
	if strings.HasPrefix(b.key, "/") || strings.HasSuffix(b.key, "/") {
		return nil, fmt.Errorf("s3 backend: key %q must not start or end with a slash", b.key)
	}
	if _, ok := cfg["workspace_key_prefix"]; !ok {
		b.prefix = DefaultWorkspaceKeyPrefix
	}
	if b.prefix == "" || strings.HasPrefix(b.prefix, "/") || strings.HasSuffix(b.prefix, "/") {
		return nil, fmt.Errorf("s3 backend: workspace_key_prefix %q must be non-empty and not start or end with a slash", b.prefix)
	}
	var err error
	if b.encrypt, err = boolSetting(cfg, "encrypt"); err != nil {
		return nil, err
	}
	pathStyle, err := boolSetting(cfg, "use_path_style")
	if err != nil {
		return nil, err
	}
	if v := cfg["lock_ttl"]; v != "" {
		if b.ttl, err = time.ParseDuration(v); err != nil || b.ttl <= 0 {
			return nil, fmt.Errorf("s3 backend: lock_ttl %q is not a positive duration such as 2m", v)
		}
	}
	access, secret := cfg["access_key"], cfg["secret_key"]
	if (access == "") != (secret == "") {
		return nil, errors.New("s3 backend: access_key and secret_key must be set together")
	}

	var opts []func(*config.LoadOptions) error
	if r := cfg["region"]; r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if p := cfg["profile"]; p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	if access != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(access, secret, "")))
	}
	// LoadDefaultConfig reads only the environment and local files; the
	// context bounds nothing that goes over the network.
	awsCfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = defaultRegion
	}
	endpoint := cfg["endpoint"]
	b.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	return b, nil
}

func boolSetting(cfg map[string]string, k string) (bool, error) {
	v, ok := cfg[k]
	if !ok || v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("s3 backend: %s %q is not true or false", k, v)
	}
	return on, nil
}

// StateKey returns the object key of a workspace's state.
func (b *Backend) StateKey(workspace string) string {
	if workspace == "" || workspace == state.DefaultWorkspace {
		return b.key
	}
	return b.prefix + "/" + workspace + "/" + b.key
}

func (b *Backend) where(key string) string { return "s3://" + b.bucket + "/" + key }

// stateKey checks a workspace name and returns its state's key. A name
// with a slash would make the workspace list ambiguous.
func (b *Backend) stateKey(workspace string) (string, error) {
	if workspace == "." || workspace == ".." || strings.ContainsAny(workspace, "/\\") {
		return "", fmt.Errorf("invalid workspace name %q", workspace)
	}
	return b.StateKey(workspace), nil
}

func lockKey(stateKey string) string { return stateKey + ".lock" }

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	key, err := b.stateKey(workspace)
	if err != nil {
		return nil, err
	}
	data, etag, err := b.get(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return nil, state.ErrNotFound
		}
		return nil, fmt.Errorf("reading state %s: %w", b.where(key), err)
	}
	s, err := state.Decode(data, b.where(key))
	if err != nil {
		return nil, state.WithVersion(err, state.Version(etag))
	}
	return &state.Snapshot{State: s, Version: state.Version(etag)}, nil
}

// Write implements state.Backend. With a lockID it first checks the lock
// object and refuses to write under another holder's live lock; the write
// itself is conditional on prev whatever the lock says.
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	key, err := b.stateKey(workspace)
	if err != nil {
		return "", err
	}
	if lockID != "" {
		if err := b.lockObject(workspace, key).CheckWrite(ctx, lockID); err != nil {
			return "", err
		}
	}
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	etag, err := b.put(ctx, key, data, "application/json", string(prev))
	// S3 answers If-Match on a missing object with 404 NoSuchKey: the
	// state read was deleted since, which is a lost compare-and-swap too.
	if isPrecondition(err) || (prev != "" && isNotFound(err)) {
		return "", &state.ConflictError{Workspace: workspace, Expected: prev, Actual: b.currentETag(ctx, key)}
	}
	if err != nil {
		return "", fmt.Errorf("writing state %s: %w", b.where(key), err)
	}
	return state.Version(etag), nil
}

// currentETag is what ConflictError reports as Actual: best effort, ""
// when the object is gone or the HEAD fails.
func (b *Backend) currentETag(ctx context.Context, key string) state.Version {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return ""
	}
	return state.Version(aws.ToString(out.ETag))
}

// lock returns a workspace's lock object and its state's key.
func (b *Backend) lock(workspace string) (*objlock.Object, string, error) {
	key, err := b.stateKey(workspace)
	if err != nil {
		return nil, "", err
	}
	return b.lockObject(workspace, key), key, nil
}

// lockObject returns the lock of the workspace whose state is at key.
func (b *Backend) lockObject(workspace, key string) *objlock.Object {
	lk := lockKey(key)
	return &objlock.Object{Store: lockStore{b, lk}, Where: b.where(lk), Workspace: workspace, TTL: b.ttl, Now: b.now}
}

// Lock implements state.Backend.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	o, key, err := b.lock(workspace)
	if err != nil {
		return nil, err
	}
	if info.Path == "" {
		info.Path = b.where(key)
	}
	return o.Lock(ctx, info, ttl)
}

// Renew implements state.Backend.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	o, _, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.Renew(ctx, id, ttl)
}

// Unlock implements state.Backend.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	o, _, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.Unlock(ctx, id)
}

// ForceUnlock implements state.Backend.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	o, _, err := b.lock(workspace)
	if err != nil {
		return err
	}
	return o.ForceUnlock(ctx, id)
}

// LockInfo implements state.Backend. It returns the stored lock even when
// its lease has run out; callers check Live.
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	o, _, err := b.lock(workspace)
	if err != nil {
		return nil, err
	}
	return o.Info(ctx)
}

// Workspaces implements state.Backend: "default" when the default state
// exists, and every <prefix>/<workspace>/<key>.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	var list []string
	_, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &b.key})
	switch {
	case err == nil:
		list = append(list, state.DefaultWorkspace)
	case !isNotFound(err):
		return nil, fmt.Errorf("listing workspaces: checking %s: %w", b.where(b.key), err)
	}
	prefix := b.prefix + "/"
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing workspaces under %s: %w", b.where(prefix), err)
		}
		for _, o := range page.Contents {
			ws, rest, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), prefix), "/")
			if ok && ws != "" && rest == b.key && ws != state.DefaultWorkspace {
				list = append(list, ws)
			}
		}
	}
	slices.Sort(list)
	return slices.Compact(list), nil
}

// DeleteWorkspace implements state.Backend. It deletes the state and the
// lock, whoever holds it.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	key, err := b.stateKey(workspace)
	if err != nil {
		return err
	}
	for _, k := range []string{key, lockKey(key)} {
		// Deleting a missing object succeeds in S3.
		if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &k}); err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting workspace %q: deleting %s: %w", workspace, b.where(k), err)
		}
	}
	return nil
}

// get returns an object's bytes and ETag.
func (b *Backend) get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", err
	}
	return data, aws.ToString(out.ETag), nil
}

// put stores an object if its ETag is still ifMatch, or, when ifMatch is
// "", if it does not exist. It returns the new ETag.
func (b *Backend) put(ctx context.Context, key string, data []byte, contentType, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String(contentType),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	if b.encrypt {
		in.ServerSideEncryption = types.ServerSideEncryptionAes256
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// lockStore is a lock object, for objlock: its revisions are ETags.
type lockStore struct {
	b   *Backend
	key string
}

func (s lockStore) Get(ctx context.Context) ([]byte, string, bool, error) {
	data, etag, err := s.b.get(ctx, s.key)
	if isNotFound(err) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	return data, etag, true, nil
}

// Create PUTs with If-None-Match: *.
func (s lockStore) Create(ctx context.Context, data []byte) error {
	_, err := s.b.put(ctx, s.key, data, "application/json", "")
	if isPrecondition(err) {
		return fmt.Errorf("%w: %w", objlock.ErrPrecondition, err)
	}
	return err
}

// Replace PUTs with If-Match.
func (s lockStore) Replace(ctx context.Context, data []byte, etag string) error {
	_, err := s.b.put(ctx, s.key, data, "application/json", etag)
	return raced(err)
}

// Delete DELETEs with If-Match.
func (s lockStore) Delete(ctx context.Context, etag string) error {
	_, err := s.b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.b.bucket, Key: &s.key, IfMatch: &etag})
	return raced(err)
}

// raced marks a conditional change of a lock object that lost a race as
// objlock.ErrPrecondition.
func raced(err error) error {
	if lostRace(err) {
		return fmt.Errorf("%w: %w", objlock.ErrPrecondition, err)
	}
	return err
}

// lostRace reports a conditional request on a lock object that failed
// because the object changed or vanished since it was read.
func lostRace(err error) bool { return isPrecondition(err) || isNotFound(err) }

// isPrecondition reports a failed conditional request: 412 Precondition
// Failed, or 409 ConditionalRequestConflict (a concurrent conditional
// request on the same key won).
func isPrecondition(err error) bool {
	if err == nil {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	status := httpStatus(err)
	return status == http.StatusPreconditionFailed || status == http.StatusConflict
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
		return true
	}
	return httpStatus(err) == http.StatusNotFound && !isNoSuchBucket(err)
}

func isNoSuchBucket(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
