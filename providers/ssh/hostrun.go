package ssh

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// RunOnHost runs a POSIX shell script on the host of instance id over its
// pooled SSH connection and returns its standard output; a non-zero exit
// is an error carrying the last lines of its standard error. A cloud
// provider prepares a host with it (an attached disk made a filesystem
// and mounted) before it starts a job there.
func (p *Provider) RunOnHost(ctx context.Context, id, script string) (string, error) {
	h := p.host(id, nil)
	if h == nil {
		return "", fmt.Errorf("host %q is not known (its instance is not in state)", id)
	}
	c, _, err := h.ssh(ctx)
	if err != nil {
		return "", fmt.Errorf("reaching %s: %w", h.name(), err)
	}
	out, err := run(ctx, c, script, nil)
	if err != nil {
		return out, fmt.Errorf("on %s: %w", h.name(), err)
	}
	return out, nil
}

// VouchHostKeys trusts the host at t to show one of keys, which source
// (a cloud instance's console output) named, instead of trusting its
// first key on first use; the key it shows is pinned in state as usual.
func (p *Provider) VouchHostKeys(t Target, keys []ssh.PublicKey, source string) {
	p.pool.Vouch(t.Addr(), keys, source)
}
