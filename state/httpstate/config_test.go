package httpstate

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("DSTACK_HTTP_USERNAME", "")
	t.Setenv("DSTACK_HTTP_PASSWORD", "")
	t.Setenv("TF_HTTP_USERNAME", "")
	t.Setenv("TF_HTTP_PASSWORD", "")
	const addr = "https://state.example.com/state/{workspace}"
	for _, tc := range []struct {
		name    string
		cfg     map[string]string
		want    *config // compared when set
		wantErr string
	}{
		{
			name: "defaults",
			cfg:  map[string]string{"address": "https://state.example.com/s"},
			want: &config{
				address: "https://state.example.com/s", lockAddress: "https://state.example.com/s", unlockAddress: "https://state.example.com/s",
				updateMethod: "POST", lockMethod: "LOCK", unlockMethod: "UNLOCK",
				retryMax: 2, retryWaitMin: time.Second, retryWaitMax: 30 * time.Second, lockTTL: 2 * time.Minute,
			},
		},
		{
			name: "everything",
			cfg: map[string]string{
				"address": addr, "lock_address": addr + "/lock", "unlock_address": addr + "/unlock",
				"update_method": "PUT", "lock_method": "POST", "unlock_method": "DELETE",
				"username": "u", "password": "p", "skip_cert_verification": "true",
				"retry_max": "5", "retry_wait_min": "500ms", "retry_wait_max": "10",
				"lock_ttl": "45s", "workspaces_address": "https://state.example.com/workspaces",
			},
			want: &config{
				address: addr, lockAddress: addr + "/lock", unlockAddress: addr + "/unlock",
				workspacesAddress: "https://state.example.com/workspaces", templated: true,
				updateMethod: "PUT", lockMethod: "POST", unlockMethod: "DELETE",
				username: "u", password: "p", skipCertVerification: true,
				retryMax: 5, retryWaitMin: 500 * time.Millisecond, retryWaitMax: 10 * time.Second, lockTTL: 45 * time.Second,
			},
		},
		{
			name: "unlock follows lock",
			cfg:  map[string]string{"address": addr, "lock_address": addr + "/lock"},
			want: &config{
				address: addr, lockAddress: addr + "/lock", unlockAddress: addr + "/lock", templated: true,
				updateMethod: "POST", lockMethod: "LOCK", unlockMethod: "UNLOCK",
				retryMax: 2, retryWaitMin: time.Second, retryWaitMax: 30 * time.Second, lockTTL: 2 * time.Minute,
			},
		},
		{name: "no address", cfg: map[string]string{}, wantErr: "address is required"},
		{name: "unknown key", cfg: map[string]string{"address": addr, "lock_adress": "x"}, wantErr: `unknown setting "lock_adress" (did you mean "lock_address"?)`},
		{name: "unknown key, nothing close", cfg: map[string]string{"address": addr, "bucket": "x"}, wantErr: `unknown setting "bucket" (known:`},
		{name: "not a URL", cfg: map[string]string{"address": "state.example.com/s"}, wantErr: "address \"state.example.com/s\" is not an http:// or https:// URL"},
		{name: "lock shared by workspaces", cfg: map[string]string{"address": addr, "lock_address": "https://state.example.com/lock"}, wantErr: "lock_address"},
		{name: "template in lock only", cfg: map[string]string{"address": "https://h/s", "unlock_address": addr}, wantErr: "unlock_address holds {workspace} but address does not"},
		{name: "template in listing", cfg: map[string]string{"address": addr, "workspaces_address": addr}, wantErr: "workspaces_address lists every workspace"},
		{name: "bad method", cfg: map[string]string{"address": addr, "lock_method": "LO CK"}, wantErr: `lock_method "LO CK" is not an HTTP method`},
		{name: "bad bool", cfg: map[string]string{"address": addr, "skip_cert_verification": "sure"}, wantErr: "skip_cert_verification"},
		{name: "bad retry_max", cfg: map[string]string{"address": addr, "retry_max": "-1"}, wantErr: "retry_max"},
		{name: "bad wait", cfg: map[string]string{"address": addr, "retry_wait_min": "soon"}, wantErr: "retry_wait_min \"soon\""},
		{name: "waits reversed", cfg: map[string]string{"address": addr, "retry_wait_min": "10", "retry_wait_max": "1"}, wantErr: "shorter than retry_wait_min"},
		{name: "zero ttl", cfg: map[string]string{"address": addr, "lock_ttl": "0"}, wantErr: "lock_ttl"},
		{name: "certificate without key", cfg: map[string]string{"address": addr, "client_certificate_pem": "x"}, wantErr: "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsBadPEM(t *testing.T) {
	if _, err := New(map[string]string{"address": "https://h/s", "client_ca_certificate_pem": "not pem"}); err == nil || !strings.Contains(err.Error(), "client_ca_certificate_pem") {
		t.Fatalf("bad CA PEM: %v", err)
	}
	if _, err := New(map[string]string{"address": "https://h/s", "client_certificate_pem": "x", "client_private_key_pem": "y"}); err == nil || !strings.Contains(err.Error(), "client_certificate_pem") {
		t.Fatalf("bad client certificate: %v", err)
	}
}
