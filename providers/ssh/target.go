package ssh

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang"
)

// Target is one SSH endpoint with the settings that reach it: a fleet's
// host with the fleet's defaults applied, or a proxy jump.
type Target struct {
	Host         string  `json:"host"`
	Port         int     `json:"port"`
	User         string  `json:"user"`
	IdentityFile string  `json:"identity_file,omitempty"`
	Jump         *Target `json:"jump,omitempty"`
	// InternalIP is the host's address for traffic between hosts, when
	// the configuration names it.
	InternalIP string `json:"internal_ip,omitempty"`
	// Network is the fleet's CIDR for traffic between hosts.
	Network string `json:"network,omitempty"`
	// AgentFlags are extra flags the host's agent is started with: a
	// cloud provider's, such as -watch-interruptions on a spot instance
	// (see package agentd). Each is one word of [A-Za-z0-9_.:/=@+,-].
	AgentFlags []string `json:"agent_flags,omitempty"`
}

// Addr is host:port.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// String is user@host:port, with the jump when there is one.
func (t Target) String() string {
	s := t.User + "@" + t.Addr()
	if t.Jump != nil {
		s += " via " + t.Jump.String()
	}
	return s
}

// key identifies a connection in the pool: who, where, and through what.
func (t Target) key() string {
	k := t.User + "@" + t.Addr() + "#" + t.IdentityFile
	if t.Jump != nil {
		k += ">" + t.Jump.key()
	}
	return k
}

// Hash identifies what a host's instance was made with: changing any of
// it (address, user, key, jump, internal IP) makes it another instance.
func (t Target) Hash() string {
	c := t
	c.Network = ""
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// HostTarget resolves the host named hostname in a fleet's ssh_config:
// its own settings over the fleet's, and the current user where neither
// names one.
func HostTarget(cfg *lang.SSHConfig, hostname string) (Target, error) {
	h, ok := cfg.ResolveHost(hostname)
	if !ok {
		return Target{}, fmt.Errorf("host %q is not in the fleet's ssh_config", hostname)
	}
	t := Target{Host: h.Hostname, Port: h.Port, User: cmp.Or(h.User, currentUser()), IdentityFile: h.IdentityFile,
		InternalIP: h.InternalIP, Network: cfg.Network}
	if j := h.ProxyJump; j != nil {
		t.Jump = &Target{Host: j.Hostname, Port: j.Port, User: cmp.Or(j.User, t.User), IdentityFile: j.IdentityFile}
	}
	return t, nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// expandHome turns "~/x" into an absolute path.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}
