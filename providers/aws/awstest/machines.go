package awstest

import (
	"errors"
	"sync"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// Machines boots the machines of instances.
type Machines interface {
	// Boot starts a machine that accepts authorizedKeys (an
	// authorized_keys file's content) for SSH logins.
	Boot(authorizedKeys []byte) (Machine, error)
}

// Machine is one booted machine.
type Machine interface {
	PublicIP() string
	PrivateIP() string
	// PowerOff stops everything on it for good.
	PowerOff() error
}

// ErrNoMachine is Boot's error when every machine is taken.
var ErrNoMachine = errors.New("no machine left to boot")

// SSHMachines boots instances on the hosts of an sshtest cluster, one
// host per instance, in order: a host accepts the instance's keys and
// no other, and is powered off for good when the instance ends.
func SSHMachines(c *sshtest.Cluster) Machines { return &sshMachines{hosts: c.Hosts} }

type sshMachines struct {
	mu    sync.Mutex
	hosts []*sshtest.Host
	next  int
}

func (m *sshMachines) Boot(keys []byte) (Machine, error) {
	m.mu.Lock()
	if m.next >= len(m.hosts) {
		m.mu.Unlock()
		return nil, ErrNoMachine
	}
	h := m.hosts[m.next]
	m.next++
	m.mu.Unlock()
	if err := h.Authorize(keys); err != nil {
		return nil, err
	}
	return sshMachine{h}, nil
}

type sshMachine struct{ h *sshtest.Host }

func (s sshMachine) PublicIP() string  { return s.h.PublicAddr }
func (s sshMachine) PrivateIP() string { return s.h.PrivateAddr }
func (s sshMachine) PowerOff() error   { return s.h.PowerOff() }
