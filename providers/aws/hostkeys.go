package aws

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers"
)

// The lines cloud-init prints around an instance's SSH host keys on its
// console.
const (
	hostKeysBegin = "-----BEGIN SSH HOST KEY KEYS-----"
	hostKeysEnd   = "-----END SSH HOST KEY KEYS-----"
)

// parseConsoleHostKeys returns the host keys a console output shows
// between cloud-init's markers (the last such block: a reboot prints
// them again). Lines that are not keys are skipped.
func parseConsoleHostKeys(out string) []ssh.PublicKey {
	end := strings.LastIndex(out, hostKeysEnd)
	if end < 0 {
		return nil
	}
	begin := strings.LastIndex(out[:end], hostKeysBegin)
	if begin < 0 {
		return nil
	}
	var keys []ssh.PublicKey
	for _, line := range strings.Split(out[begin+len(hostKeysBegin):end], "\n") {
		line = strings.TrimSpace(line)
		// A serial console may prefix lines ("[   12.3] cloud-init[901]: ").
		if i := strings.Index(line, "ssh-"); i > 0 {
			line = line[i:]
		} else if i := strings.Index(line, "ecdsa-"); i > 0 {
			line = line[i:]
		}
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// consoleHostKeys waits, up to ConsoleWait, for the instance's console
// output to show its SSH host keys and returns them; none (and no error)
// when it does not in time. EC2 errors other than throttling end the
// wait with the error.
func (p *Provider) consoleHostKeys(ctx context.Context, inst Instance, progress func(string)) ([]ssh.PublicKey, error) {
	deadline := time.Now().Add(p.opts.ConsoleWait)
	said := false
	for {
		out, err := p.cloud.ConsoleOutput(ctx, inst.Region, inst.ID)
		if err != nil && providers.CodeOf(err) != providers.RateLimited {
			return nil, fmt.Errorf("reading the SSH host keys of %s from its console output: %w", inst.ID, err)
		}
		if keys := parseConsoleHostKeys(out); len(keys) > 0 {
			return keys, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		if !said {
			progress(fmt.Sprintf("waiting for the SSH host keys of %s on its console", inst.ID))
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.opts.PollInterval):
		}
	}
}
