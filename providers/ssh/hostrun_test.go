package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestVouchedHostKeys: keys a cloud's console output names are the only
// ones a new machine may show (another is refused, naming the source),
// and they replace the key recorded for an address the cloud gave
// again.
func TestVouchedHostKeys(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	ctx := context.Background()
	tg := target(c, h)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}

	refused, _ := NewPool(nil)
	defer refused.Close()
	refused.Vouch(tg.Addr(), []ssh.PublicKey{other}, "the console output of i-1")
	var hke *HostKeyError
	if _, _, err := refused.Client(ctx, tg); !errors.As(err, &hke) || hke.Source != "the console output of i-1" {
		t.Fatalf("a key the console does not name: %v, want refused naming the console", err)
	}

	pool, _ := NewPool(nil)
	defer pool.Close()
	pool.TrustKey(tg.Addr(), other) // a terminated instance's, at the same address
	pool.Vouch(tg.Addr(), []ssh.PublicKey{other, h.HostKey()}, "the console output of i-2")
	if _, key, err := pool.Client(ctx, tg); err != nil || authorizedKey(key) != authorizedKey(h.HostKey()) {
		t.Fatalf("a key the console names: %v", err)
	}
	if got := authorizedKey(pool.keys.trusted(tg.Addr())); !strings.HasPrefix(got, "ssh-ed25519") || got != authorizedKey(h.HostKey()) {
		t.Errorf("recorded %q, want the host's key", got)
	}
}
