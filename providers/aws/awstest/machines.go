package awstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

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

// DiskMachine is a Machine that EBS volumes attach to as block devices.
type DiskMachine interface {
	Machine
	// AttachDisk makes file (the volume's data) a block device of the
	// machine, found there as a Nitro instance finds an EBS volume: by
	// /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<ID without dash>.
	AttachDisk(volumeID, file string) error
	// DetachDisk takes the volume's block device away.
	DetachDisk(volumeID string) error
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
	return &sshMachine{h: h, loops: map[string]string{}}, nil
}

// sshMachine is an sshtest host. Its disks are loop devices over the
// volumes' files: the host shares this machine's /dev, where the
// volume's by-id link is made (a volume ID is unique, so hosts never
// clash), and mounts them in its own mount namespace.
type sshMachine struct {
	h *sshtest.Host

	mu    sync.Mutex
	loops map[string]string // volume ID → loop device
}

// HostKeys implements HostKeyMachine.
func (s *sshMachine) HostKeys() []string {
	return []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.h.HostKey())))}
}

func (s *sshMachine) PublicIP() string  { return s.h.PublicAddr }
func (s *sshMachine) PrivateIP() string { return s.h.PrivateAddr }

func (s *sshMachine) PowerOff() error {
	err := s.h.PowerOff()
	s.mu.Lock()
	ids := make([]string, 0, len(s.loops))
	for id := range s.loops {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		err = errors.Join(err, s.DetachDisk(id))
	}
	return err
}

// NitroDiskLink is where udev (amazon-ec2-utils' rules) links an EBS
// volume's NVMe device on a Nitro instance.
func NitroDiskLink(volumeID string) string {
	return "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + strings.ReplaceAll(volumeID, "-", "")
}

func (s *sshMachine) AttachDisk(volumeID, file string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.loops[volumeID]; ok {
		return nil
	}
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("losetup %s: %w: %s", file, err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	link := NitroDiskLink(volumeID)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		_ = exec.Command("losetup", "--detach", dev).Run()
		return err
	}
	_ = os.Remove(link)
	if err := os.Symlink(dev, link); err != nil {
		_ = exec.Command("losetup", "--detach", dev).Run()
		return err
	}
	s.loops[volumeID] = dev
	return nil
}

func (s *sshMachine) DetachDisk(volumeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dev, ok := s.loops[volumeID]
	if !ok {
		return nil
	}
	delete(s.loops, volumeID)
	_ = os.Remove(NitroDiskLink(volumeID))
	// A device still mounted in the host's namespace is freed when that
	// unmounts (losetup's autoclear).
	if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("losetup --detach %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close powers off every instance's machine (detaching its disks), as if
// each were terminated; the fake answers on, without machines.
func (f *Fake) Close() error {
	f.mu.Lock()
	var off []Machine
	for _, r := range f.regions {
		for _, i := range r.instances {
			if i.machine != nil {
				off = append(off, i.machine)
				i.machine = nil
			}
		}
	}
	f.mu.Unlock()
	var err error
	for _, m := range off {
		err = errors.Join(err, m.PowerOff())
	}
	return err
}
