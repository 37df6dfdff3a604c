// Package sshtest starts real SSH hosts on this machine for tests of code
// that manages hosts over SSH (dstack's SSH fleets).
//
// Each host is Debian's OpenSSH server (/usr/sbin/sshd) running in its own
// network namespace, with its own addresses, its own host key and its own
// /root (a directory of the test bind-mounted over /root in a private mount
// namespace). Hosts accept only root logins with a key that Start generates.
//
// The hosts sit on two Linux bridges. The public bridge has an address on
// this machine, so the test process reaches a host's public address
// directly. The private bridge has none: a host with only a private address
// (by default the last one) is reachable only through another host, with a
// proxy jump.
//
// Start needs root and ip, sshd, unshare, nsenter and iptables (see
// .ci/install-sshd.sh); without them it skips the test, or fails it when
// DSTACK_REQUIRE_SSHD=1. Everything it creates is removed by t.Cleanup, and
// what a killed test run left behind is removed by the next Start.
package sshtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// RequireEnv is the environment variable that turns a skip into a failure:
// with DSTACK_REQUIRE_SSHD=1, Start fails the test where it cannot run.
const RequireEnv = "DSTACK_REQUIRE_SSHD"

// Options configures Start.
type Options struct {
	// Hosts is the number of hosts, at most 100; 0 means 3.
	Hosts int
	// Public says which hosts also have a leg on the public network; it
	// has one entry per host. nil means all hosts but the last.
	Public []bool
}

// Cluster is a set of running SSH hosts. Its fields are read-only.
type Cluster struct {
	// ID is the unique short prefix of the names of everything this cluster
	// creates: network namespaces ("<ID>-h0"), links, bridges, and the
	// comment of its iptables rules ("dstack-sshtest:<ID>").
	ID string
	// Hosts are the hosts, in order: Hosts[i].Name is "h<i>".
	Hosts []*Host
	// ClientKeyPath is an OpenSSH private key file (mode 0600, ed25519,
	// unencrypted) whose key every host accepts for root; use it as the
	// identity_file of the code under test.
	ClientKeyPath string
	// ClientSigner is the same key, for golang.org/x/crypto/ssh clients.
	ClientSigner ssh.Signer
	// Gateway is this machine's address on the public network.
	Gateway string
	// PublicSubnet and PrivateSubnet are the CIDRs of the two networks.
	PublicSubnet, PrivateSubnet string

	logf      func(string, ...any)
	failed    func() bool
	closeOnce sync.Once
	closeErr  error
	tools     tools
	dir       string
	lock      *os.File // flock held on the cluster's state file while it lives
	route     string   // the unreachable route installed for PrivateSubnet
}

// Start starts opts.Hosts SSH hosts and returns them once every sshd
// listens. It registers their removal with t.Cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := open(opts, t.Logf, t.Failed)
	var u *UnavailableError
	switch {
	case errors.As(err, &u) && os.Getenv(RequireEnv) == "1":
		t.Fatalf("sshtest: %s (%s=1 is set, so this is a failure)", u.Reason, RequireEnv)
	case errors.As(err, &u):
		t.Skipf("sshtest: %s (set %s=1 to fail instead of skipping)", u.Reason, RequireEnv)
	}
	if c != nil {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("sshtest: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return c
}

// UnavailableError says why this machine cannot run SSH hosts (no root,
// a missing program, no namespaces).
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string { return "sshtest: " + e.Reason }

// Open starts opts.Hosts SSH hosts outside a test (a fake cloud's
// machines): logf receives what Start would log. The caller must Close
// the cluster, even when Open fails with a cluster.
func Open(opts Options, logf func(format string, args ...any)) (*Cluster, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return open(opts, logf, func() bool { return false })
}

func open(opts Options, logf func(string, ...any), failed func() bool) (*Cluster, error) {
	tl, reason := findTools()
	if reason == "" {
		reason = probeNamespaces(tl)
	}
	if reason != "" {
		return nil, &UnavailableError{Reason: reason}
	}
	n := opts.Hosts
	if n == 0 {
		n = 3
	}
	if n < 0 || n > maxHosts {
		return nil, fmt.Errorf("Options.Hosts = %d, want 1 to %d", opts.Hosts, maxHosts)
	}
	public := opts.Public
	if public == nil {
		public = make([]bool, n)
		for i := range n - 1 {
			public[i] = true
		}
	}
	if len(public) != n {
		return nil, fmt.Errorf("Options.Public has %d entries for %d hosts", len(public), n)
	}
	dir, err := os.MkdirTemp("", "sshtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{logf: logf, failed: failed, tools: tl, dir: dir}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return c, fmt.Errorf("sshd's privilege separation directory: %w", err)
	}
	if err := c.setupNetworks(); err != nil {
		return c, err
	}
	if err := c.writeClientKey(); err != nil {
		return c, err
	}
	extra := sshdExtraConfig(tl.sshd)
	for i := range n {
		h, err := c.newHost(i, public[i], extra)
		if h != nil {
			c.Hosts = append(c.Hosts, h)
		}
		if err != nil {
			return c, fmt.Errorf("host h%d: %w", i, err)
		}
	}
	logf("sshtest: cluster %s: %d hosts, public network %s (this machine %s), private network %s",
		c.ID, n, c.PublicSubnet, c.Gateway, c.PrivateSubnet)
	return c, nil
}

// Reachable reports whether a TCP connection to addr:port can be opened from
// the test process within a second. An empty addr (a private-only host's
// PublicAddr) is never reachable.
func (c *Cluster) Reachable(addr string, port int) bool {
	if addr == "" {
		return false
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Close stops every host and removes the cluster's namespaces, links,
// iptables rules, route and files. Start calls it at the test's cleanup.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	defer os.RemoveAll(c.dir)
	if c.failed() {
		for _, h := range c.Hosts {
			c.logf("sshtest: %s sshd log (%s), last lines:\n%s", h.Name, h.logPath(), h.SSHDLog())
		}
	}
	if c.ID == "" {
		return nil
	}
	for _, h := range c.Hosts {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
	}
	err := teardown(c.tools, c.ID, c.route)
	// Every process in the namespaces is dead now; reap our children.
	for _, h := range c.Hosts {
		h.reap()
	}
	if err != nil {
		// Keep the state file: the next Start sweeps what is left.
		c.lock.Close()
		return fmt.Errorf("cleaning up cluster %s: %w", c.ID, err)
	}
	err = os.Remove(c.lock.Name())
	c.lock.Close()
	return err
}

// writeClientKey generates the client key pair and writes its private half.
func (c *Cluster) writeClientKey() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the client key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	path := filepath.Join(c.dir, "id_ed25519")
	if err := writePrivateKey(path, priv, "sshtest-client"); err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return fmt.Errorf("writing the client public key: %w", err)
	}
	c.ClientKeyPath = path
	c.ClientSigner = signer
	return nil
}

// writePrivateKey writes key as an OpenSSH private key file with mode 0600.
func writePrivateKey(path string, key ed25519.PrivateKey, comment string) error {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	return nil
}

// tools holds the absolute paths of the programs the harness runs.
type tools struct {
	ip, sshd, unshare, nsenter, iptables string
}

// findTools locates the programs Start needs, or says why it cannot run.
func findTools() (tools, string) {
	if os.Geteuid() != 0 {
		return tools{}, "needs root to create network namespaces and run sshd"
	}
	var tl tools
	var missing []string
	for _, p := range []struct {
		name string
		dst  *string
	}{
		{"ip", &tl.ip},
		{"sshd", &tl.sshd},
		{"unshare", &tl.unshare},
		{"nsenter", &tl.nsenter},
		{"iptables", &tl.iptables},
	} {
		path, err := lookPath(p.name)
		if err != nil {
			missing = append(missing, p.name)
			continue
		}
		*p.dst = path
	}
	if len(missing) > 0 {
		return tools{}, fmt.Sprintf("missing %s (run .ci/install-sshd.sh)", strings.Join(missing, ", "))
	}
	return tl, ""
}

// lookPath finds name in $PATH or the sbin directories, which a non-login
// PATH may lack, and returns an absolute path (sshd refuses to run without
// one).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// probeNamespaces says why namespaces cannot be created here (say, in a
// container without CAP_SYS_ADMIN), or returns "".
func probeNamespaces(tl tools) string {
	cmd := exec.Command(tl.unshare, "--net", "--mount", "--uts", "/bin/sh", "-c", ":")
	cmd.Env = baseEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("cannot create namespaces (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// run runs a command and returns its output; its error carries the command
// line and output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", commandTimeout, err)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// baseEnv is the environment of the processes in the hosts.
var baseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
}

// commandTimeout bounds every ip/iptables command the harness runs.
const commandTimeout = 30 * time.Second

// tail returns the last n lines of the file at path, or a note why not.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no log)"
		}
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
