package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Environment variables that give the key.
const (
	EnvKey     = "DSTACK_SECRETS_KEY"
	EnvKeyFile = "DSTACK_SECRETS_KEY_FILE"
)

// DefaultKeyPath is where the key is kept when nothing else names it:
// ~/.dstack/secrets.key.
func DefaultKeyPath(home string) string {
	return filepath.Join(home, ".dstack", "secrets.key")
}

// Loaded is a key and where it came from.
type Loaded struct {
	Key Key
	// From says where, for messages: "DSTACK_SECRETS_KEY" or a path.
	From string
	// Path is the key file's path ("" for the variable).
	Path string
	// Default says the path is DefaultKeyPath's.
	Default bool
}

// ErrNoKey says no key was found anywhere Load looks.
var ErrNoKey = errors.New("no secrets key")

// Load finds the team's key: DSTACK_SECRETS_KEY (the key in base64),
// else the file DSTACK_SECRETS_KEY_FILE names, else the default file
// (~/.dstack/secrets.key). It returns an error wrapping ErrNoKey when
// none is set, and refuses a key file others can read.
func Load(lookup func(string) (string, bool), home string) (Loaded, error) {
	if v, ok := lookup(EnvKey); ok && v != "" {
		k, err := ParseKey(v)
		if err != nil {
			return Loaded{}, fmt.Errorf("%s: %w", EnvKey, err)
		}
		return Loaded{Key: k, From: EnvKey}, nil
	}
	if p, ok := lookup(EnvKeyFile); ok && p != "" {
		k, err := ReadKeyFile(p)
		if err != nil {
			return Loaded{}, err
		}
		return Loaded{Key: k, From: p, Path: p}, nil
	}
	if home == "" {
		return Loaded{}, fmt.Errorf("%w: set %s or %s (no home directory to look in)", ErrNoKey, EnvKey, EnvKeyFile)
	}
	p := DefaultKeyPath(home)
	k, err := ReadKeyFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Loaded{Path: p, Default: true}, fmt.Errorf("%w: set %s or %s to the team's key, or keep it in %s", ErrNoKey, EnvKey, EnvKeyFile, p)
	}
	if err != nil {
		return Loaded{}, err
	}
	return Loaded{Key: k, From: p, Path: p, Default: true}, nil
}

// ReadKeyFile reads a key file; one that others than its owner may read
// or write is refused, as ssh refuses such a private key.
func ReadKeyFile(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading the secrets key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("the secrets key %s is open to others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading the secrets key: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to a new file at path, mode 0600 (its directory
// 0700 if it makes it). It never replaces a file: an existing one is an
// error wrapping fs.ErrExist.
func WriteKeyFile(path string, k Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing the secrets key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the secrets key: %w", err)
	}
	if _, err := f.WriteString(k.String() + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing the secrets key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing the secrets key: %w", err)
	}
	return f.Close()
}
