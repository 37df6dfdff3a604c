package cli

import (
	"maps"
	"path/filepath"
	"testing"

	"github.com/dstackai/dstack-go/state/pg/pgtest"
	"github.com/dstackai/dstack-go/state/s3/s3test"
)

// takeoverBackends are the state backends TestLockTakeover runs on, each
// against a real server where it has one (versitygw for s3, PostgreSQL
// for pg), with a short lock_ttl so that a lease runs out within the
// test.
func takeoverBackends() []takeoverBackend {
	ttl := takeoverTTL.String()
	with := func(cfg map[string]string) map[string]string {
		cfg = maps.Clone(cfg)
		cfg["lock_ttl"] = ttl
		return cfg
	}
	return []takeoverBackend{
		{"local", func(t *testing.T) backendSettings {
			return backendSettings{Type: "local", Config: with(map[string]string{"path": filepath.Join(t.TempDir(), "state")})}
		}},
		{"s3", func(t *testing.T) backendSettings {
			return backendSettings{Type: "s3", Config: with(s3test.Start(t).Config())}
		}},
		{"pg", func(t *testing.T) backendSettings {
			return backendSettings{Type: "pg", Config: with(pgtest.Config(t))}
		}},
	}
}
