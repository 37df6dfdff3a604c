package cli

import (
	"path/filepath"
	"testing"
)

// takeoverBackends are the state backends TestLockTakeover runs on, each
// with a short lock_ttl so that a lease runs out within the test.
func takeoverBackends() []takeoverBackend {
	ttl := takeoverTTL.String()
	return []takeoverBackend{
		{"local", func(t *testing.T) backendSettings {
			return backendSettings{Type: "local", Config: map[string]string{"path": filepath.Join(t.TempDir(), "state"), "lock_ttl": ttl}}
		}},
	}
}
