package azurerm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dstackai/dstack-go/state"
)

// DefaultKey is the default workspace's blob name when the config names none.
const DefaultKey = "dstack.state.json"

// envPrefix joins the key and a workspace name, as in Terraform's azurerm
// backend: workspace "prod" of key "a.json" is the blob "a.jsonenv:prod".
const envPrefix = "env:"

// lockSuffix follows the key in a lock blob's name (see the package doc).
const lockSuffix = ".lock"

// Config is the backend's parsed configuration.
type Config struct {
	// Account is the storage account (storage_account_name).
	Account string
	// Container holds the state blobs (container_name).
	Container string
	// Key is the default workspace's blob name (key).
	Key string
	// AccessKey is the account's shared key (access_key, else the
	// ARM_ACCESS_KEY environment variable).
	AccessKey string
	// SASToken is a shared access signature used instead of a key
	// (sas_token, else ARM_SAS_TOKEN).
	SASToken string
	// Endpoint is the blob service URL (endpoint); by default
	// https://<account>.blob.core.windows.net. For Azurite it is
	// http://127.0.0.1:10000/devstoreaccount1.
	Endpoint string
	// LockTTL is the lease used when Lock or Renew is given none (lock_ttl,
	// a Go duration such as "90s"); state.DefaultLeaseTTL when unset.
	LockTTL time.Duration
}

var knownKeys = []string{"storage_account_name", "container_name", "key", "access_key", "sas_token", "endpoint", "lock_ttl"}

// ParseConfig reads the backend's settings. Unknown settings are an error
// naming the setting, with the closest known one when it looks like a typo.
func ParseConfig(cfg map[string]string) (Config, error) {
	c := Config{Key: DefaultKey, LockTTL: state.DefaultLeaseTTL}
	var errs []error
	for k, v := range cfg {
		switch k {
		case "storage_account_name":
			c.Account = v
		case "container_name":
			c.Container = v
		case "key":
			c.Key = v
		case "access_key":
			c.AccessKey = v
		case "sas_token":
			c.SASToken = strings.TrimPrefix(v, "?")
		case "endpoint":
			c.Endpoint = strings.TrimRight(v, "/")
		case "lock_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("lock_ttl %q is not a positive duration such as \"2m\" or \"90s\"", v))
				continue
			}
			c.LockTTL = d
		default:
			errs = append(errs, state.UnknownSetting("azurerm", k, knownKeys))
		}
	}
	if c.Account == "" {
		errs = append(errs, errors.New("storage_account_name is required"))
	}
	if c.Container == "" {
		errs = append(errs, errors.New("container_name is required"))
	}
	if c.Key == "" {
		errs = append(errs, errors.New("key must not be empty"))
	}
	if c.AccessKey != "" && c.SASToken != "" {
		errs = append(errs, errors.New("access_key and sas_token are both set; set one"))
	}
	if c.AccessKey == "" && c.SASToken == "" {
		c.AccessKey = os.Getenv("ARM_ACCESS_KEY")
		if c.AccessKey == "" {
			c.SASToken = strings.TrimPrefix(os.Getenv("ARM_SAS_TOKEN"), "?")
		}
		if c.AccessKey == "" && c.SASToken == "" {
			errs = append(errs, errors.New("no credentials: set access_key (or ARM_ACCESS_KEY) or sas_token (or ARM_SAS_TOKEN)"))
		}
	}
	if c.Endpoint == "" && c.Account != "" {
		c.Endpoint = "https://" + c.Account + ".blob.core.windows.net"
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q is not an http(s) URL such as https://ACCOUNT.blob.core.windows.net", c.Endpoint))
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return Config{}, fmt.Errorf("azurerm backend: %w", errors.Join(errs...))
	}
	return c, nil
}

// Backend stores state in an Azure blob container. It is safe for
// concurrent use.
type Backend struct {
	cfg    Config
	client *container.Client
	now    func() time.Time
}

var _ state.Backend = (*Backend)(nil)

// New returns a backend for the container cfg names (see Config for the
// settings). It makes no request: a wrong account or key shows on first use.
func New(cfg map[string]string) (*Backend, error) {
	c, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	containerURL := c.Endpoint + "/" + url.PathEscape(c.Container)
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Telemetry: policy.TelemetryOptions{ApplicationID: "dstack"},
	}}
	var client *container.Client
	if c.AccessKey != "" {
		cred, err := azblob.NewSharedKeyCredential(c.Account, c.AccessKey)
		if err != nil {
			return nil, fmt.Errorf("azurerm backend: access_key is not a storage account key: %w", err)
		}
		client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("azurerm backend: %w", err)
		}
	} else {
		client, err = container.NewClientWithNoCredential(containerURL+"?"+c.SASToken, opts)
		if err != nil {
			return nil, fmt.Errorf("azurerm backend: %w", err)
		}
	}
	return &Backend{cfg: c, client: client, now: time.Now}, nil
}

// Config returns the configuration the backend was made with.
func (b *Backend) Config() Config { return b.cfg }

// BlobName returns the name of the blob holding a workspace's state.
func (b *Backend) BlobName(workspace string) string {
	if workspace == state.DefaultWorkspace {
		return b.cfg.Key
	}
	return b.cfg.Key + envPrefix + workspace
}

// LockBlobName returns the name of the blob holding a workspace's lock.
func (b *Backend) LockBlobName(workspace string) string {
	if workspace == state.DefaultWorkspace {
		return b.cfg.Key + lockSuffix
	}
	return b.cfg.Key + lockSuffix + envPrefix + workspace
}

func (b *Backend) where(name string) string {
	return "azurerm://" + b.cfg.Account + "/" + b.cfg.Container + "/" + name
}

func validWorkspace(ws string) error {
	if ws == "" || strings.ContainsAny(ws, "/\\") || strings.IndexFunc(ws, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("invalid workspace name %q", ws)
	}
	return nil
}

// azureError keeps an Azure SDK error, whose text is a whole HTTP response
// dump, for errors.As, and says in one line what failed.
type azureError struct {
	op  string
	err error
}

func (e *azureError) Error() string {
	var re *azcore.ResponseError
	if errors.As(e.err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "no error code"
		}
		return fmt.Sprintf("%s: %s (HTTP %d)", e.op, code, re.StatusCode)
	}
	return e.op + ": " + e.err.Error()
}

func (e *azureError) Unwrap() error { return e.err }

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return &azureError{op: "azurerm: " + op, err: err}
}

// changed reports whether a conditional request failed because the blob
// is not the revision named (or exists, or is gone).
func changed(err error) bool {
	return bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists, bloberror.BlobNotFound)
}

// busy reports whether a request failed because another client holds an
// Azure blob lease on the blob.
func busy(err error) bool {
	return bloberror.HasCode(err, bloberror.LeaseIDMissing, bloberror.LeaseIDMismatchWithBlobOperation, bloberror.LeaseAlreadyPresent)
}

func to[T any](v T) *T { return &v }

// download returns a blob's bytes and ETag; a missing blob gives
// state.ErrNotFound.
func (b *Backend) download(ctx context.Context, name string) ([]byte, azcore.ETag, error) {
	resp, err := b.client.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, "", state.ErrNotFound
	}
	if err != nil {
		return nil, "", wrap("reading "+b.where(name), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", wrap("reading "+b.where(name), err)
	}
	if resp.ETag == nil {
		return nil, "", fmt.Errorf("azurerm: reading %s: the service sent no ETag", b.where(name))
	}
	return data, *resp.ETag, nil
}

// upload stores data at name if the blob's ETag is still match, or, with
// match "", only if there is no blob. leaseID is the Azure blob lease to
// write under, or "".
func (b *Backend) upload(ctx context.Context, name string, data []byte, match azcore.ETag, leaseID string) (azcore.ETag, error) {
	cond := &blob.ModifiedAccessConditions{}
	if match == "" {
		cond.IfNoneMatch = to(azcore.ETagAny)
	} else {
		cond.IfMatch = to(match)
	}
	ac := &blob.AccessConditions{ModifiedAccessConditions: cond}
	if leaseID != "" {
		ac.LeaseAccessConditions = &blob.LeaseAccessConditions{LeaseID: to(leaseID)}
	}
	resp, err := b.client.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to("application/json")},
		AccessConditions: ac,
	})
	if err != nil {
		return "", err
	}
	if resp.ETag == nil {
		return "", fmt.Errorf("azurerm: writing %s: the service sent no ETag", b.where(name))
	}
	return *resp.ETag, nil
}

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	if err := validWorkspace(workspace); err != nil {
		return nil, err
	}
	name := b.BlobName(workspace)
	data, etag, err := b.download(ctx, name)
	if err != nil {
		return nil, err
	}
	s, err := state.Decode(data, b.where(name))
	if err != nil {
		return nil, state.WithVersion(err, state.Version(etag))
	}
	return &state.Snapshot{State: s, Version: state.Version(etag)}, nil
}

// Write implements state.Backend. With a lockID it is fenced by an Azure
// blob lease on the lock blob (see the package doc).
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	if err := validWorkspace(workspace); err != nil {
		return "", err
	}
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	if lockID == "" {
		return b.put(ctx, workspace, data, prev, "")
	}
	return b.writeFenced(ctx, workspace, data, prev, lockID)
}

// put is the compare-and-swap upload of a state.
func (b *Backend) put(ctx context.Context, workspace string, data []byte, prev state.Version, leaseID string) (state.Version, error) {
	name := b.BlobName(workspace)
	etag, err := b.upload(ctx, name, data, azcore.ETag(prev), leaseID)
	if changed(err) {
		return "", &state.ConflictError{Workspace: workspace, Expected: prev, Actual: b.currentVersion(ctx, name)}
	}
	if err != nil {
		return "", wrap("writing "+b.where(name), err)
	}
	return state.Version(etag), nil
}

// currentVersion is the stored ETag, for a conflict's message; "" when
// there is no blob or it cannot be read.
func (b *Backend) currentVersion(ctx context.Context, name string) state.Version {
	p, err := b.client.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil || p.ETag == nil {
		return ""
	}
	return state.Version(*p.ETag)
}

// Workspaces implements state.Backend.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	var out []string
	pager := b.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to(b.cfg.Key)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, wrap("listing workspaces in "+b.where(b.cfg.Key+"*"), err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			switch name := *item.Name; {
			case name == b.cfg.Key:
				out = append(out, state.DefaultWorkspace)
			case strings.HasPrefix(name, b.cfg.Key+envPrefix):
				out = append(out, strings.TrimPrefix(name, b.cfg.Key+envPrefix))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeleteWorkspace implements state.Backend. It deletes the state blob with
// its snapshots, and the lock blob, breaking any Azure blob lease on it.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	if err := validWorkspace(workspace); err != nil {
		return err
	}
	name := b.BlobName(workspace)
	_, err := b.client.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to(blob.DeleteSnapshotsOptionTypeInclude)})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return wrap("deleting "+b.where(name), err)
	}
	lock := b.LockBlobName(workspace)
	for range maxAttempts {
		err := b.deleteBlob(ctx, lock, "", "")
		if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		if !busy(err) {
			return wrap("deleting "+b.where(lock), err)
		}
		if err := b.breakLease(ctx, lock, ""); err != nil {
			return err
		}
	}
	return fmt.Errorf("azurerm: deleting %s: it stayed leased", b.where(lock))
}

// deleteBlob deletes name if its ETag is still match (any when ""), under
// the Azure blob lease leaseID when not "".
func (b *Backend) deleteBlob(ctx context.Context, name string, match azcore.ETag, leaseID string) error {
	ac := &blob.AccessConditions{}
	if match != "" {
		ac.ModifiedAccessConditions = &blob.ModifiedAccessConditions{IfMatch: to(match)}
	}
	if leaseID != "" {
		ac.LeaseAccessConditions = &blob.LeaseAccessConditions{LeaseID: to(leaseID)}
	}
	_, err := b.client.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{AccessConditions: ac})
	return err
}
