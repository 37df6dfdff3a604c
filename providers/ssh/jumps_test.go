package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers"
)

// TestSSHJumps: a job's hops are its host's proxy jump, then its host,
// each with the host key the state recorded, as an OpenSSH client's
// ProxyJump chain needs them.
func TestSSHJumps(t *testing.T) {
	newKey := func() string {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return authorizedKey(k)
	}
	hostKey, jumpKey := newKey(), newKey()
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tj := `{"host":"10.0.0.5","port":2222,"user":"ubuntu","identity_file":"/keys/fleet","jump":{"host":"bastion.example","port":22,"user":"jump","identity_file":"/keys/jump"}}`
	p.Recall([]providers.Object{
		{Kind: providers.KindInstance, ID: "10.0.0.5", Token: "i1", Address: "fleet.f[0]",
			Attributes: map[string]string{attrTarget: tj, attrHostKey: hostKey, attrJumpHostKey: jumpKey}},
		{Kind: providers.KindJob, ID: "j1", Token: "j1", Address: "dev-environment.ide[0]", Host: "10.0.0.5"},
	})
	got, err := p.SSHJumps("j1")
	if err != nil {
		t.Fatal(err)
	}
	want := []providers.SSHHop{
		{Host: "bastion.example", Port: 22, User: "jump", IdentityFile: "/keys/jump", HostKey: jumpKey},
		{Host: "10.0.0.5", Port: 2222, User: "ubuntu", IdentityFile: "/keys/fleet", HostKey: hostKey},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hops (-want +got):\n%s", d)
	}
	if _, err := p.SSHJumps("unknown"); err == nil {
		t.Error("a job the provider does not know has hops")
	}
}
