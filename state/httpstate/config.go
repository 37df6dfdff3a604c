package httpstate

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Placeholder is the part of an address replaced by the workspace name.
const Placeholder = "{workspace}"

// settings are the configuration keys New knows, sorted.
var settings = []string{
	"address",
	"client_ca_certificate_pem",
	"client_certificate_pem",
	"client_private_key_pem",
	"lock_address",
	"lock_method",
	"lock_ttl",
	"password",
	"retry_max",
	"retry_wait_max",
	"retry_wait_min",
	"skip_cert_verification",
	"unlock_address",
	"unlock_method",
	"update_method",
	"username",
	"workspaces_address",
}

// config is the parsed configuration. Addresses are templates when
// templated is set.
type config struct {
	address, lockAddress, unlockAddress, workspacesAddress string
	templated                                              bool

	updateMethod, lockMethod, unlockMethod string

	username, password string

	skipCertVerification   bool
	caPEM, certPEM, keyPEM string

	retryMax                   int
	retryWaitMin, retryWaitMax time.Duration

	lockTTL time.Duration
}

// parseConfig reads the settings; the errors name the setting.
func parseConfig(cfg map[string]string) (*config, error) {
	for k := range cfg {
		if !slices.Contains(settings, k) {
			return nil, state.UnknownSetting("http", k, settings)
		}
	}
	c := &config{
		address:           strings.TrimSpace(cfg["address"]),
		lockAddress:       strings.TrimSpace(cfg["lock_address"]),
		unlockAddress:     strings.TrimSpace(cfg["unlock_address"]),
		workspacesAddress: strings.TrimSpace(cfg["workspaces_address"]),
		updateMethod:      orDefault(cfg["update_method"], "POST"),
		lockMethod:        orDefault(cfg["lock_method"], "LOCK"),
		unlockMethod:      orDefault(cfg["unlock_method"], "UNLOCK"),
		username:          firstSet(cfg["username"], os.Getenv("DSTACK_HTTP_USERNAME"), os.Getenv("TF_HTTP_USERNAME")),
		password:          firstSet(cfg["password"], os.Getenv("DSTACK_HTTP_PASSWORD"), os.Getenv("TF_HTTP_PASSWORD")),
		caPEM:             cfg["client_ca_certificate_pem"],
		certPEM:           cfg["client_certificate_pem"],
		keyPEM:            cfg["client_private_key_pem"],
		// Terraform's defaults.
		retryMax:     2,
		retryWaitMin: time.Second,
		retryWaitMax: 30 * time.Second,
		lockTTL:      state.DefaultLeaseTTL,
	}
	if c.address == "" {
		return nil, errors.New("http backend: address is required: the URL the state is read from and written to, e.g. https://state.example.com/state/{workspace}")
	}
	// dstack always locks, so locking cannot be left off as Terraform
	// allows: the lock endpoints default to the state's address, which is
	// where most servers (and Terraform's own documentation) put them.
	if c.lockAddress == "" {
		c.lockAddress = c.address
	}
	if c.unlockAddress == "" {
		c.unlockAddress = c.lockAddress
	}
	c.templated = strings.Contains(c.address, Placeholder)
	for _, a := range []struct{ key, value string }{
		{"address", c.address}, {"lock_address", c.lockAddress}, {"unlock_address", c.unlockAddress},
	} {
		has := strings.Contains(a.value, Placeholder)
		if c.templated && !has {
			return nil, fmt.Errorf("http backend: address holds %s but %s (%s) does not, so every workspace would share one lock; put %s in it too", Placeholder, a.key, redact(a.value), Placeholder)
		}
		if !c.templated && has {
			return nil, fmt.Errorf("http backend: %s holds %s but address does not; put %s in address too, or in neither", a.key, Placeholder, Placeholder)
		}
		if err := checkURL(a.key, strings.ReplaceAll(a.value, Placeholder, state.DefaultWorkspace)); err != nil {
			return nil, err
		}
	}
	if c.workspacesAddress != "" {
		if strings.Contains(c.workspacesAddress, Placeholder) {
			return nil, fmt.Errorf("http backend: workspaces_address lists every workspace, so it cannot hold %s", Placeholder)
		}
		if err := checkURL("workspaces_address", c.workspacesAddress); err != nil {
			return nil, err
		}
	}
	for _, m := range []struct{ key, value string }{
		{"update_method", c.updateMethod}, {"lock_method", c.lockMethod}, {"unlock_method", c.unlockMethod},
	} {
		if !validMethod(m.value) {
			return nil, fmt.Errorf("http backend: %s %q is not an HTTP method", m.key, m.value)
		}
	}
	var err error
	if v := cfg["skip_cert_verification"]; v != "" {
		if c.skipCertVerification, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("http backend: skip_cert_verification %q is not true or false", v)
		}
	}
	if (c.certPEM == "") != (c.keyPEM == "") {
		return nil, errors.New("http backend: client_certificate_pem and client_private_key_pem go together: set both or neither")
	}
	if v := cfg["retry_max"]; v != "" {
		if c.retryMax, err = strconv.Atoi(v); err != nil || c.retryMax < 0 {
			return nil, fmt.Errorf("http backend: retry_max %q is not a whole number of retries, 0 or more", v)
		}
	}
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"retry_wait_min", &c.retryWaitMin}, {"retry_wait_max", &c.retryWaitMax}, {"lock_ttl", &c.lockTTL}} {
		if v := cfg[d.key]; v != "" {
			if *d.to, err = parseSeconds(v); err != nil {
				return nil, fmt.Errorf("http backend: %s %q: %v", d.key, v, err)
			}
		}
	}
	if c.retryWaitMax < c.retryWaitMin {
		return nil, fmt.Errorf("http backend: retry_wait_max (%v) is shorter than retry_wait_min (%v)", c.retryWaitMax, c.retryWaitMin)
	}
	if c.lockTTL <= 0 {
		return nil, fmt.Errorf("http backend: lock_ttl must be longer than zero")
	}
	return c, nil
}

// parseSeconds reads a whole number of seconds, as Terraform's retry
// settings are written, or a Go duration such as "500ms" or "2m".
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, errors.New("it is negative")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("it is neither a number of seconds nor a duration such as 500ms or 2m")
	}
	if d < 0 {
		return 0, errors.New("it is negative")
	}
	return d, nil
}

func checkURL(key, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("http backend: %s is not a URL: %v", key, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("http backend: %s %q is not an http:// or https:// URL", key, u.Redacted())
	}
	return nil
}

// validMethod reports whether m is an HTTP token (RFC 9110, section 5.6.2).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// validWorkspace refuses names that would not stay one path segment.
func validWorkspace(ws string) error {
	if ws == "" || ws == "." || ws == ".." || strings.ContainsAny(ws, `/\`) {
		return fmt.Errorf("invalid workspace name %q", ws)
	}
	for _, r := range ws {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("invalid workspace name %q", ws)
		}
	}
	return nil
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v != "" {
		return v
	}
	return def
}

func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// redact hides a password in a URL, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
