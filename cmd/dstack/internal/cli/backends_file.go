package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v4"
)

// backendsFile is where the clouds' backend settings are: $DSTACK_BACKENDS_FILE,
// else ~/.dstack/backends.yml.
func backendsFile(env Env) string {
	if p, ok := env.Get("DSTACK_BACKENDS_FILE"); ok && p != "" {
		return p
	}
	home, _ := env.Get("HOME")
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".dstack", "backends.yml")
}

// readBackendConfig reads the backends file, in dstack's shape:
//
//	backends:
//	  - type: aws
//	    regions: [us-east-1, us-west-2]
//	    creds:
//	      type: default
//
// It returns each backend's block by type; no file is no settings.
func readBackendConfig(env Env) (map[string]map[string]any, error) {
	path := backendsFile(env)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the backends file: %w", err)
	}
	var doc struct {
		Backends []map[string]any `yaml:"backends"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]map[string]any{}
	for i, blk := range doc.Backends {
		typ, _ := blk["type"].(string)
		if typ == "" {
			return nil, fmt.Errorf("%s: backends[%d] has no type", path, i)
		}
		if _, dup := out[typ]; dup {
			return nil, fmt.Errorf("%s: backends[%d]: backend %q is configured twice", path, i, typ)
		}
		out[typ] = blk
	}
	return out, nil
}
