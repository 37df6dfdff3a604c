package aws

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func authorizedLine(t *testing.T, pub any) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " root@ip-10-0-0-1"
}

// TestParseConsoleHostKeys reads the keys of a console as cloud-init
// prints them, through a serial console's prefixes, and only the last
// block (a reboot prints them again).
func TestParseConsoleHostKeys(t *testing.T) {
	old, _, _ := ed25519.GenerateKey(rand.Reader)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out := "[    4.2] cloud-init[612]: Cloud-init v. 24.4 running 'init'\n" +
		"-----BEGIN SSH HOST KEY KEYS-----\n" + authorizedLine(t, old) + "\n-----END SSH HOST KEY KEYS-----\n" +
		"[   60.1] reboot\n" +
		"[    4.2] cloud-init[612]: -----BEGIN SSH HOST KEY KEYS-----\n" +
		"[    4.2] cloud-init[612]: " + authorizedLine(t, &ec.PublicKey) + "\n" +
		"[    4.2] cloud-init[612]: " + authorizedLine(t, ed) + "\n" +
		"[    4.2] cloud-init[612]: not a key\n" +
		"[    4.2] cloud-init[612]: -----END SSH HOST KEY KEYS-----\n"
	keys := parseConsoleHostKeys(out)
	if len(keys) != 2 || keys[0].Type() != "ecdsa-sha2-nistp256" || keys[1].Type() != "ssh-ed25519" {
		t.Fatalf("keys %v, want the last block's ecdsa and ed25519 keys", keys)
	}
	if got := parseConsoleHostKeys("[ 0.0] Linux\n-----BEGIN SSH HOST KEY KEYS-----\n" + authorizedLine(t, ed) + "\n"); got != nil {
		t.Errorf("an unfinished block: %v", got)
	}
}
