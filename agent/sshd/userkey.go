package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"golang.org/x/crypto/ssh"
)

// UserKey returns the key a user's dstack logs in to dev environments
// with: dir/id_ed25519 (dir is ~/.dstack/ssh), made on first use, and
// its public key as an authorized_keys line. The dstack CLI and the
// Terraform provider share it, so that an environment one applied opens
// with the other's config.
func UserKey(dir string) (keyPath, authorized string, err error) {
	keyPath = filepath.Join(dir, "id_ed25519")
	if b, err := os.ReadFile(keyPath + ".pub"); err == nil {
		if _, err := os.Stat(keyPath); err == nil {
			return keyPath, strings.TrimSpace(string(b)), nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("creating %s: %w", dir, err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "dstack")
	if err != nil {
		return "", "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", err
	}
	authorized = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " dstack"
	if err := renameio.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := renameio.WriteFile(keyPath+".pub", []byte(authorized+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("writing %s.pub: %w", keyPath, err)
	}
	return keyPath, authorized, nil
}
