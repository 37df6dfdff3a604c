package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/providers/offers"
)

// FromConfig reads the settings of a backend block in dstack's shape
// (`type: aws`, `regions`, `vpc_name`, ..., and `creds` of type
// `default`, `access_key` (with access_key, secret_key) or `profile`).
// Unknown settings are refused.
func FromConfig(block map[string]any) (Settings, error) {
	m := map[string]any{}
	for k, v := range block {
		switch k {
		case "type":
		case "creds":
			creds, ok := v.(map[string]any)
			if !ok {
				return Settings{}, fmt.Errorf("aws backend: creds must be a mapping with a type")
			}
			switch t, _ := creds["type"].(string); t {
			case "", "default":
			case "access_key":
				for _, name := range []string{"access_key", "secret_key", "session_token"} {
					if s, ok := creds[name].(string); ok {
						m[name] = s
					}
				}
			case "profile":
				m["profile"] = creds["profile"]
			default:
				return Settings{}, fmt.Errorf("aws backend: creds type %q is none of default, access_key, profile", t)
			}
		default:
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return Settings{}, fmt.Errorf("aws backend: %w", err)
	}
	return ParseSettings(b)
}

// envNames are the variables the EC2 program reads (the SDK's default
// chain and endpoint): passed to it as the caller's environment has them.
var envNames = []string{"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_PRICING", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "HOME"}

// ProcessCloud is the Cloud of settings in dstack-provider-aws, started
// on the first call that needs EC2; the environment it runs in is this
// process's with the AWS variables lookup finds. Its offers are the
// account's, kept in cache (see OfferCache and accountOffers); with no
// cache, they come from the embedded catalog until the program runs.
func ProcessCloud(s Settings, lookup func(string) (string, bool), cache *OfferCache) Cloud {
	return &lazyCloud{settings: s, cache: cache, start: func(ctx context.Context) (Cloud, error) {
		prog, err := FindProgram()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(prog)
		env := os.Environ()
		for _, name := range envNames {
			if lookup == nil {
				break
			}
			env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
			if v, ok := lookup(name); ok {
				env = append(env, name+"="+v)
			}
		}
		cmd.Env = env
		return StartProcess(ctx, cmd, s)
	}}
}

// lazyCloud starts its Cloud on first use.
type lazyCloud struct {
	settings Settings
	start    func(context.Context) (Cloud, error)
	cache    *OfferCache // nil: no account offers until the program runs

	mu    sync.Mutex
	cloud Cloud
}

func (l *lazyCloud) get(ctx context.Context) (Cloud, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cloud != nil {
		return l.cloud, nil
	}
	c, err := l.start(ctx)
	if err != nil {
		return nil, err
	}
	l.cloud = c
	return c, nil
}

// Close closes the cloud when it was started.
func (l *lazyCloud) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.cloud.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Offers implements Cloud: with a cache, the account's (see
// accountOffers); without, the catalog's, without starting the program,
// unless it runs already.
func (l *lazyCloud) Offers(ctx context.Context) ([]offers.Offer, error) {
	if l.cache != nil {
		return accountOffers(ctx, l.cache, l.settings, l.get)
	}
	l.mu.Lock()
	c := l.cloud
	l.mu.Unlock()
	if c != nil {
		return c.Offers(ctx)
	}
	return CatalogOffers(l.settings.Regions)
}

// CatalogOffers are the embedded catalog's aws offers in regions (all
// when none).
func CatalogOffers(regions []string) ([]offers.Offer, error) {
	all, err := offers.Catalog()
	if err != nil {
		return nil, err
	}
	var out []offers.Offer
	for _, o := range all {
		if o.Backend == Backend && (len(regions) == 0 || slices.Contains(regions, o.Region)) {
			out = append(out, o)
		}
	}
	return out, nil
}

// CatalogRegions are the regions of the catalog's aws offers.
func CatalogRegions() []string {
	all, _ := CatalogOffers(nil)
	seen := map[string]bool{}
	var out []string
	for _, o := range all {
		if !seen[o.Region] {
			seen[o.Region] = true
			out = append(out, o.Region)
		}
	}
	sort.Strings(out)
	return out
}

func (l *lazyCloud) Launch(ctx context.Context, req LaunchRequest) (Instance, error) {
	c, err := l.get(ctx)
	if err != nil {
		return Instance{}, err
	}
	return c.Launch(ctx, req)
}

func (l *lazyCloud) Instances(ctx context.Context, tokens []string) ([]Instance, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Instances(ctx, tokens)
}

func (l *lazyCloud) Terminate(ctx context.Context, region, id string) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.Terminate(ctx, region, id)
}

func (l *lazyCloud) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	c, err := l.get(ctx)
	if err != nil {
		return Volume{}, err
	}
	return c.CreateVolume(ctx, req)
}

func (l *lazyCloud) Volumes(ctx context.Context, tokens []string, ids []VolumeRef) ([]Volume, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Volumes(ctx, tokens, ids)
}

func (l *lazyCloud) AttachVolume(ctx context.Context, region, volumeID, instanceID, device string) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.AttachVolume(ctx, region, volumeID, instanceID, device)
}

func (l *lazyCloud) DetachVolume(ctx context.Context, region, volumeID string) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.DetachVolume(ctx, region, volumeID)
}

func (l *lazyCloud) DeleteVolume(ctx context.Context, region, volumeID string) error {
	c, err := l.get(ctx)
	if err != nil {
		return err
	}
	return c.DeleteVolume(ctx, region, volumeID)
}

func (l *lazyCloud) ConsoleOutput(ctx context.Context, region, instanceID string) (string, error) {
	c, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return c.ConsoleOutput(ctx, region, instanceID)
}
