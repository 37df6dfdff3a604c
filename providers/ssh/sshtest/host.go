package sshtest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host is one SSH host: an sshd in its own network, mount and UTS
// namespaces. Its fields are read-only.
type Host struct {
	// Name is "h<index>"; the host's hostname is "<cluster ID>-<Name>".
	Name string
	// NetNS is the name of its network namespace (see `ip netns`).
	NetNS string
	// PublicAddr is its address on the public network, which the test
	// process reaches directly, or "" for a host on the private network
	// only.
	PublicAddr string
	// PrivateAddr is its address on the private network, which only the
	// hosts reach.
	PrivateAddr string
	// Port is sshd's port on every address: 22.
	Port int
	// User is the user the client key logs in as: "root".
	User string
	// Dir is the host's directory: sshd_config, ssh_host_ed25519_key,
	// authorized_keys, sshd.log, sshd.pid, and home/, which is /root on
	// the host.
	Dir string
	// Home is Dir/home as this machine sees it: the host's /root.
	Home string

	c *Cluster

	mu       sync.Mutex
	hostKey  ssh.PublicKey
	holder   *exec.Cmd     // keeps the host's namespaces; sleeps
	holderCh chan struct{} // closed when holder has exited
	sshd     *exec.Cmd
	sshdCh   chan struct{} // closed when sshd has exited
	closed   bool
}

// HostKey returns the host's current ed25519 host key.
func (h *Host) HostKey() ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKey
}

// KnownHostsLine returns a known_hosts line for the host's current key and
// all its addresses (port 22, so without brackets).
func (h *Host) KnownHostsLine() string {
	addrs := []string{h.PrivateAddr}
	if h.PublicAddr != "" {
		addrs = []string{h.PublicAddr, h.PrivateAddr}
	}
	return knownhosts.Line(addrs, h.HostKey())
}

// SSHDLog returns the last lines of sshd's log (its stderr) on this host.
func (h *Host) SSHDLog() string { return tail(h.logPath(), 40) }

func (h *Host) logPath() string { return filepath.Join(h.Dir, "sshd.log") }

// Exec runs command with /bin/sh -c inside the host (its network, mount
// and UTS namespaces, so /root is the host's own; working directory /root,
// HOME=/root) and returns its combined output. It is for assertions
// ("is the agent running here?"); a background process it starts must
// not keep the output open (redirect it), or Exec returns a second after
// the shell exits, without that process's later output.
func (h *Host) Exec(t testing.TB, command string) (string, error) {
	t.Helper()
	h.mu.Lock()
	holder, closed := h.holder, h.closed
	h.mu.Unlock()
	if closed || holder == nil {
		return "", fmt.Errorf("%s: exec %q: the host is gone", h.Name, command)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.c.tools.nsenter, h.nsenterArgs(holder, "--wd=/root", "/bin/sh", "-c", command)...)
	cmd.Env = append([]string{"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh"}, baseEnv...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // the shell exited 0; a process it started holds the output
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: exec %q: %w: %s", h.Name, command, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// RotateHostKey gives the host a new host key and restarts its sshd, so
// that a client holding the old key must refuse it.
func (h *Host) RotateHostKey(t testing.TB) {
	t.Helper()
	if err := h.writeHostKey(); err != nil {
		t.Fatalf("sshtest: %s: %v", h.Name, err)
	}
	h.Stop(t)
	h.Start(t)
}

// Stop stops the host's sshd (SIGTERM); established SSH connections and
// processes started by them live on. Stopping a stopped sshd does nothing.
func (h *Host) Stop(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.stopSSHD(); err != nil {
		t.Fatalf("sshtest: %s: %v", h.Name, err)
	}
}

// Start starts the host's sshd again after Stop (or after it died), and
// returns once it listens. Starting a running sshd does nothing.
func (h *Host) Start(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sshd != nil {
		select {
		case <-h.sshdCh: // it died; start another
			h.sshd = nil
		default:
			return
		}
	}
	if h.closed {
		t.Fatalf("sshtest: %s: the host is gone", h.Name)
	}
	if err := h.startSSHD(); err != nil {
		t.Fatalf("sshtest: %s: %v", h.Name, err)
	}
}

// newHost creates host i: its directory, keys and config, its network
// namespace with its legs on the bridges, and starts its sshd. On error
// the returned host (when not nil) holds what was started, for close.
func (c *Cluster) newHost(i int, public bool, extraConfig string) (*Host, error) {
	name := "h" + strconv.Itoa(i)
	dir := filepath.Join(c.dir, name)
	h := &Host{
		Name:        name,
		NetNS:       c.ID + "-" + name,
		PrivateAddr: hostAddr(c.PrivateSubnet, i),
		Port:        22,
		User:        "root",
		Dir:         dir,
		Home:        filepath.Join(dir, "home"),
		c:           c,
	}
	if public {
		h.PublicAddr = hostAddr(c.PublicSubnet, i)
	}
	if err := os.MkdirAll(h.Home, 0o700); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(c.ClientKeyPath + ".pub")
	if err != nil {
		return nil, fmt.Errorf("reading the client public key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o644); err != nil {
		return nil, fmt.Errorf("writing authorized_keys: %w", err)
	}
	if err := h.writeHostKey(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(h.sshdConfig(extraConfig)), 0o644); err != nil {
		return nil, fmt.Errorf("writing sshd_config: %w", err)
	}

	ip := c.tools.ip
	steps := [][]string{
		{"netns", "add", h.NetNS},
		{"-n", h.NetNS, "link", "set", "lo", "up"},
	}
	legs := []struct{ ours, theirs, bridge, addr string }{
		{c.ID + "v" + strconv.Itoa(i), "priv", c.privateBridge(), h.PrivateAddr},
	}
	if public {
		legs = append(legs, struct{ ours, theirs, bridge, addr string }{
			c.ID + "u" + strconv.Itoa(i), "pub", c.publicBridge(), h.PublicAddr})
	}
	for _, l := range legs {
		steps = append(steps,
			[]string{"link", "add", l.ours, "type", "veth", "peer", "name", l.theirs, "netns", h.NetNS},
			[]string{"link", "set", l.ours, "addrgenmode", "none"},
			[]string{"link", "set", l.ours, "master", l.bridge, "up"},
			[]string{"-n", h.NetNS, "addr", "add", l.addr + "/24", "dev", l.theirs},
			[]string{"-n", h.NetNS, "link", "set", l.theirs, "up"},
		)
	}
	for _, s := range steps {
		if _, err := run(ip, s...); err != nil {
			return nil, err
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.startHolder(); err != nil {
		return h, err
	}
	return h, h.startSSHD()
}

// hostAddr returns the address of host i in subnet ("a.b.c.0/24").
func hostAddr(subnet string, i int) string {
	return strings.TrimSuffix(subnet, "0/24") + strconv.Itoa(firstHost+i)
}

// writeHostKey generates a new host key and writes it where sshd_config
// says.
func (h *Host) writeHostKey() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating a host key: %w", err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("host key: %w", err)
	}
	if err := writePrivateKey(filepath.Join(h.Dir, "ssh_host_ed25519_key"), priv, "sshtest-"+h.NetNS); err != nil {
		return err
	}
	h.mu.Lock()
	h.hostKey = key
	h.mu.Unlock()
	return nil
}

// sshdConfig returns the host's sshd_config: root by key only, from the
// host directory's authorized_keys; TCP forwarding (direct-tcpip, used for
// proxy jumps and for the agent's loopback ports) allowed.
func (h *Host) sshdConfig(extra string) string {
	return fmt.Sprintf(`# Written by dstack's sshtest harness.
ListenAddress 0.0.0.0:22
AddressFamily inet
HostKey %[1]s/ssh_host_ed25519_key
PidFile %[1]s/sshd.pid
AuthorizedKeysFile %[1]s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
X11Forwarding no
PermitTunnel no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100
MaxSessions 100
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
%[2]s`, h.Dir, extra)
}

// sshdExtraConfig returns settings that only some OpenSSH versions know:
// 9.8 and later penalise a source address after failed logins, which
// tests that try wrong keys on purpose would trip over.
func sshdExtraConfig(sshd string) string {
	out, _ := exec.Command(sshd, "-V").CombinedOutput()
	m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		return ""
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major > 9 || major == 9 && minor >= 8 {
		return "PerSourcePenalties no\n"
	}
	return ""
}

// nsenterArgs returns nsenter's arguments to run argv in the host's
// namespaces, those of its holder process.
func (h *Host) nsenterArgs(holder *exec.Cmd, opts string, argv ...string) []string {
	args := []string{"--target", strconv.Itoa(holder.Process.Pid), "--net", "--mount", "--uts"}
	if opts != "" {
		args = append(args, opts)
	}
	return append(append(args, "--"), argv...)
}

// startHolder starts the process that owns the host's mount and UTS
// namespaces: in the host's network namespace, unshare makes a mount
// namespace (a slave of this machine's: its own mounts stay its own) where
// the host's home is bind-mounted over /root, sets the hostname and
// sleeps. sshd and
// Exec join its namespaces with nsenter, so the host's /root stays the
// same across sshd restarts. h.mu is held.
func (h *Host) startHolder() error {
	// The namespace copies this machine's mounts, among them the nsfs
	// mounts that pin other network namespaces (Docker's, other
	// clusters'); unmount them, lest they outlive their owners' deletion.
	const script = `grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r m; do umount -l "$m" || exit 1; done &&
mount --bind "$1" /root &&
echo "$2" > /proc/sys/kernel/hostname &&
echo ready && exec sleep infinity`
	c := h.c
	cmd := exec.Command(c.tools.ip, "netns", "exec", h.NetNS,
		c.tools.unshare, "--mount", "--uts", "--propagation", "slave",
		"/bin/sh", "-c", script, "sh", h.Home, h.NetNS)
	cmd.Env = baseEnv
	logPath := filepath.Join(h.Dir, "holder.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the namespace holder: %w", err)
	}
	h.holder, h.holderCh = cmd, waitFor(cmd)

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s == "ready\n" {
			return nil
		}
		state := "still running"
		select {
		case <-h.holderCh:
			state = cmd.ProcessState.String()
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("setting up the host's namespaces failed (%s): %s", state, tail(logPath, 20))
	case <-time.After(10 * time.Second):
		return fmt.Errorf("setting up the host's namespaces: not ready after 10s: %s", tail(logPath, 20))
	}
}

// startSSHD starts sshd in the host's namespaces and waits until it
// listens, which is when it writes its pid file. h.mu is held.
func (h *Host) startSSHD() error {
	c := h.c
	pidPath := filepath.Join(h.Dir, "sshd.pid")
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	logf, err := os.OpenFile(h.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- sshtest: starting sshd at %s ---\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.tools.nsenter, h.nsenterArgs(h.holder, "",
		c.tools.sshd, "-D", "-e", "-f", filepath.Join(h.Dir, "sshd_config"))...)
	cmd.Dir = "/"
	cmd.Env = baseEnv
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd: %w", err)
	}
	h.sshd, h.sshdCh = cmd, waitFor(cmd)

	want := strconv.Itoa(cmd.Process.Pid)
	deadline := time.After(10 * time.Second)
	for {
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) == want {
			return nil
		}
		select {
		case <-h.sshdCh:
			h.sshd = nil
			return fmt.Errorf("sshd exited (%v); its log:\n%s", cmd.ProcessState, h.SSHDLog())
		case <-deadline:
			return fmt.Errorf("sshd did not listen within 10s; its log:\n%s", h.SSHDLog())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stopSSHD stops sshd: SIGTERM, then SIGKILL after 5s. h.mu is held.
func (h *Host) stopSSHD() error {
	if h.sshd == nil {
		return nil
	}
	defer func() { h.sshd = nil }()
	h.sshd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.sshdCh:
		return nil
	case <-time.After(5 * time.Second):
	}
	h.sshd.Process.Kill()
	select {
	case <-h.sshdCh:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("sshd (pid %d) survives SIGKILL", h.sshd.Process.Pid)
	}
}

// reap waits (briefly) for the host's processes, killed by teardown.
func (h *Host) reap() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range []chan struct{}{h.sshdCh, h.holderCh} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
		}
	}
	h.sshd, h.holder = nil, nil
}

// waitFor waits for cmd in the background and returns a channel closed
// when it has exited.
func waitFor(cmd *exec.Cmd) chan struct{} {
	ch := make(chan struct{})
	go func() {
		cmd.Wait()
		close(ch)
	}()
	return ch
}

// Authorize replaces the keys the host accepts for root with keys (an
// authorized_keys file's content): a cloud machine that accepts the key
// its launch delivered, and no other.
func (h *Host) Authorize(keys []byte) error {
	if err := os.WriteFile(filepath.Join(h.Dir, "authorized_keys"), keys, 0o644); err != nil {
		return fmt.Errorf("%s: writing authorized_keys: %w", h.Name, err)
	}
	return nil
}

// PowerOff kills every process on the host (sshd, and whatever SSH
// sessions started) and keeps it down: a machine that was terminated.
// Its network namespace stays until the cluster closes.
func (h *Host) PowerOff() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	err := killAll(h.c.tools, h.NetNS)
	for _, ch := range []chan struct{}{h.sshdCh, h.holderCh} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
		}
	}
	h.sshd, h.holder = nil, nil
	if err != nil {
		return fmt.Errorf("%s: powering off: %w", h.Name, err)
	}
	return nil
}
