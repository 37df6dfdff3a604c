package lang

// ResolveHost returns the host named hostname with the fleet's settings
// filled in where the host has none of its own: user, port (22 when
// neither says), identity_file and proxy_jump (whose user, port and key
// default to the host's). The user stays empty when neither names one:
// it is whoever runs dstack, which is not part of the configuration.
func (c *SSHConfig) ResolveHost(hostname string) (SSHHost, bool) {
	if c == nil {
		return SSHHost{}, false
	}
	for _, h := range c.Hosts {
		if h.Hostname != hostname {
			continue
		}
		r := h
		r.User = firstNonEmpty(h.User, c.User)
		r.Port = firstNonZero(h.Port, c.Port, 22)
		r.IdentityFile = firstNonEmpty(h.IdentityFile, c.IdentityFile)
		if r.ProxyJump == nil && c.ProxyJump != nil {
			j := *c.ProxyJump
			r.ProxyJump = &j
		} else if r.ProxyJump != nil {
			j := *r.ProxyJump
			r.ProxyJump = &j
		}
		if j := r.ProxyJump; j != nil {
			j.User = firstNonEmpty(j.User, r.User)
			j.Port = firstNonZero(j.Port, 22)
			j.IdentityFile = firstNonEmpty(j.IdentityFile, r.IdentityFile)
		}
		return r, true
	}
	return SSHHost{}, false
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstNonZero(vals ...int) int {
	for _, v := range vals {
		if v != 0 {
			return v
		}
	}
	return 0
}
