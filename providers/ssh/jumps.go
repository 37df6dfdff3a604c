package ssh

import (
	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers"
)

var _ providers.SSHJumper = (*Provider)(nil)

// SSHJumps implements providers.SSHJumper: the job's host (through its
// proxy jump, when it has one), with the host keys dstack trusts for
// them, for an OpenSSH client's ProxyJump to the job's published ports.
func (p *Provider) SSHJumps(jobID string) ([]providers.SSHHop, error) {
	h, err := p.jobHost(jobID)
	if err != nil {
		return nil, err
	}
	t := h.target
	var hops []providers.SSHHop
	if t.Jump != nil {
		hops = append(hops, p.hop(*t.Jump))
	}
	return append(hops, p.hop(t)), nil
}

func (p *Provider) hop(t Target) providers.SSHHop {
	return providers.SSHHop{Host: t.Host, Port: t.Port, User: t.User, IdentityFile: t.IdentityFile,
		HostKey: authorizedKey(p.pool.keys.trusted(t.Addr()))}
}

// trusted is the key trusted for addr: the one the state recorded, else
// the one this process accepted; nil when neither is known.
func (k *hostKeys) trusted(addr string) ssh.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.recorded[addr]; ok {
		return key
	}
	return k.seen[addr]
}
