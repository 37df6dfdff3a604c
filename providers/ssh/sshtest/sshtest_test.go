package sshtest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// clientConfig logs in as root with signer, accepting only hostKey.
func clientConfig(signer ssh.Signer, hostKey ssh.HostKeyCallback) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey,
		Timeout:         5 * time.Second,
	}
}

// dial connects to h's public address.
func dial(t *testing.T, h *sshtest.Host, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	t.Helper()
	client, err := ssh.Dial("tcp", net.JoinHostPort(h.PublicAddr, strconv.Itoa(h.Port)), cfg)
	if err == nil {
		t.Cleanup(func() { client.Close() })
	}
	return client, err
}

// jump connects to target's private address through the SSH client via.
func jump(t *testing.T, via *ssh.Client, target *sshtest.Host, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	t.Helper()
	addr := net.JoinHostPort(target.PrivateAddr, strconv.Itoa(target.Port))
	conn, err := via.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("direct-tcpip to %s: %w", addr, err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	client := ssh.NewClient(cc, chans, reqs)
	t.Cleanup(func() { client.Close() })
	return client, nil
}

// output runs command in a new session of client.
func output(t *testing.T, client *ssh.Client, command string) string {
	t.Helper()
	s, err := client.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(command)
	if err != nil {
		t.Fatalf("%q: %v: %s", command, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCluster(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 3})
	if len(c.Hosts) != 3 {
		t.Fatalf("got %d hosts, want 3", len(c.Hosts))
	}
	h0, h1, h2 := c.Hosts[0], c.Hosts[1], c.Hosts[2]

	// Host key checking as the code under test does it: known_hosts lines.
	knownHostsPath := filepath.Join(t.TempDir(), "known_hosts")
	var lines []string
	for _, h := range c.Hosts {
		lines = append(lines, h.KnownHostsLine())
	}
	if err := os.WriteFile(knownHostsPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	known, err := knownhosts.New(knownHostsPath)
	if err != nil {
		t.Fatal(err)
	}

	// The client key as the code under test reads it: from its file.
	fi, err := os.Stat(c.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v, want 0600", fi.Mode().Perm())
	}
	pem, err := os.ReadFile(c.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatalf("parsing %s: %v", c.ClientKeyPath, err)
	}
	cfg := clientConfig(signer, known)

	t.Run("addresses", func(t *testing.T) {
		for _, h := range c.Hosts {
			if h.User != "root" || h.Port != 22 || h.PrivateAddr == "" {
				t.Errorf("%s: user %q port %d private %q", h.Name, h.User, h.Port, h.PrivateAddr)
			}
		}
		if h0.PublicAddr == "" || h1.PublicAddr == "" || h2.PublicAddr != "" {
			t.Errorf("public addresses %q %q %q, want two and then none", h0.PublicAddr, h1.PublicAddr, h2.PublicAddr)
		}
	})

	t.Run("direct", func(t *testing.T) {
		for _, h := range []*sshtest.Host{h0, h1} {
			client, err := dial(t, h, cfg)
			if err != nil {
				t.Fatalf("%s: %v\nsshd log:\n%s", h.Name, err, h.SSHDLog())
			}
			if got, want := output(t, client, "whoami; echo $HOME; hostname"), "root\n/root\n"+h.NetNS; got != want {
				t.Errorf("%s: got %q, want %q", h.Name, got, want)
			}
		}
		if !c.Reachable(h0.PublicAddr, 22) {
			t.Errorf("%s:22 not reachable", h0.PublicAddr)
		}
	})
	client0, err := dial(t, h0, cfg) // for the subtests below
	if err != nil {
		t.Fatalf("h0: %v", err)
	}

	t.Run("proxy jump", func(t *testing.T) {
		start := time.Now()
		if c.Reachable(h2.PrivateAddr, 22) {
			t.Errorf("%s:22 (private) reachable from the test process", h2.PrivateAddr)
		}
		if _, err := net.DialTimeout("tcp", net.JoinHostPort(h2.PrivateAddr, "22"), 2*time.Second); err == nil {
			t.Errorf("direct dial of %s succeeded", h2.PrivateAddr)
		}
		if c.Reachable(h0.PrivateAddr, 22) {
			t.Errorf("%s:22 (h0's private address) reachable from the test process", h0.PrivateAddr)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("failing dials took %v; want them to fail at once", d)
		}
		client2, err := jump(t, client0, h2, cfg)
		if err != nil {
			t.Fatalf("via h0: %v\nh2 sshd log:\n%s", err, h2.SSHDLog())
		}
		if got := output(t, client2, "hostname"); got != h2.NetNS {
			t.Errorf("hostname %q, want %q", got, h2.NetNS)
		}
	})

	t.Run("loopback port through direct-tcpip", func(t *testing.T) {
		// Like the agent: a server on 127.0.0.1 inside the host, reached
		// through SSH, but not from outside.
		if _, err := h0.Exec(t, `mkdir -p /root/www && echo hello-from-h0 > /root/www/index.html && busybox httpd -p 127.0.0.1:8123 -h /root/www`); err != nil {
			t.Fatal(err)
		}
		var conn net.Conn
		var err error
		for range 50 { // httpd forks into the background; wait for it
			if conn, err = client0.Dial("tcp", "127.0.0.1:8123"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /index.html HTTP/1.0\r\n\r\n")
		resp, err := io.ReadAll(conn)
		if err != nil || !bytes.Contains(resp, []byte("hello-from-h0")) {
			t.Errorf("response %q, %v", resp, err)
		}
		if c.Reachable(h0.PublicAddr, 8123) {
			t.Errorf("the loopback port is reachable on %s", h0.PublicAddr)
		}
	})

	t.Run("own root", func(t *testing.T) {
		output(t, client0, "echo mine > /root/marker")
		if b, err := os.ReadFile(filepath.Join(h0.Home, "marker")); err != nil || string(b) != "mine\n" {
			t.Errorf("h0's Home/marker: %q, %v", b, err)
		}
		if out, err := h0.Exec(t, "cat /root/marker"); err != nil || out != "mine\n" {
			t.Errorf("h0: Exec sees %q, %v", out, err)
		}
		for _, h := range []*sshtest.Host{h1, h2} {
			if out, err := h.Exec(t, "test ! -e /root/marker && echo absent"); err != nil || out != "absent\n" {
				t.Errorf("%s: %q, %v", h.Name, out, err)
			}
		}
		if _, err := os.Stat("/root/marker"); err == nil {
			t.Errorf("/root/marker exists on this machine")
		}
	})

	t.Run("ping", func(t *testing.T) {
		if _, err := exec.LookPath("busybox"); err != nil {
			t.Skip("busybox is missing")
		}
		if out, err := h2.Exec(t, "busybox ping -c1 -W2 "+h0.PrivateAddr); err != nil {
			t.Errorf("h2 -> h0 private: %v\n%s", err, out)
		}
		if out, err := h1.Exec(t, "busybox ping -c1 -W2 "+h0.PublicAddr); err != nil {
			t.Errorf("h1 -> h0 public: %v\n%s", err, out)
		}
		if out, err := h0.Exec(t, "busybox ping -c1 -W2 "+c.Gateway); err != nil {
			t.Errorf("h0 -> this machine: %v\n%s", err, out)
		}
		if out, err := h2.Exec(t, "busybox ping -c1 -W1 "+c.Gateway); err == nil {
			t.Errorf("h2 (private only) reaches this machine:\n%s", out)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		wrong, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // and no penalty box for the right key afterwards
			if _, err := dial(t, h1, clientConfig(wrong, known)); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("wrong key: err = %v, want unable to authenticate", err)
			}
		}
		if _, err := dial(t, h1, cfg); err != nil {
			t.Errorf("right key after wrong ones: %v", err)
		}
	})

	t.Run("rotate host key", func(t *testing.T) {
		old := h1.HostKey()
		h1.RotateHostKey(t)
		if bytes.Equal(old.Marshal(), h1.HostKey().Marshal()) {
			t.Fatal("HostKey did not change")
		}
		_, err := dial(t, h1, clientConfig(signer, ssh.FixedHostKey(old)))
		if err == nil {
			t.Fatal("connected with the old host key")
		}
		_, err = dial(t, h1, cfg) // known_hosts with the old line
		var keyErr *knownhosts.KeyError
		if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
			t.Errorf("known_hosts with the old key: err = %v, want a key mismatch", err)
		}
		client, err := dial(t, h1, clientConfig(signer, ssh.FixedHostKey(h1.HostKey())))
		if err != nil {
			t.Fatalf("new host key: %v", err)
		}
		output(t, client, "true")
		if !strings.Contains(h1.KnownHostsLine(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h1.HostKey())))) {
			t.Errorf("KnownHostsLine %q lacks the new key", h1.KnownHostsLine())
		}
	})

	t.Run("stop start", func(t *testing.T) {
		h1.Stop(t)
		if c.Reachable(h1.PublicAddr, 22) {
			t.Error("sshd still listens after Stop")
		}
		if out, err := h1.Exec(t, "echo still-here"); err != nil || out != "still-here\n" {
			t.Errorf("Exec on a stopped sshd: %q, %v", out, err)
		}
		h1.Start(t)
		if !c.Reachable(h1.PublicAddr, 22) {
			t.Error("sshd does not listen after Start")
		}
	})
}

// TestCleanup checks that a cluster's cleanup leaves nothing behind,
// including processes that SSH sessions left running.
func TestCleanup(t *testing.T) {
	var id, netns, subnet string
	var pid int
	ok := t.Run("cluster", func(t *testing.T) {
		c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
		id, netns, subnet = c.ID, c.Hosts[0].NetNS, c.PrivateSubnet
		h := c.Hosts[0]
		client, err := dial(t, h, clientConfig(c.ClientSigner, ssh.FixedHostKey(h.HostKey())))
		if err != nil {
			t.Fatal(err)
		}
		out := output(t, client, "setsid nohup sleep 1000 >/dev/null 2>&1 </dev/null & echo $!")
		if pid, err = strconv.Atoi(out); err != nil {
			t.Fatalf("pid %q: %v", out, err)
		}
	})
	if id == "" {
		if ok {
			t.Skip("no cluster (skipped)")
		}
		return
	}
	if alive(pid) {
		t.Errorf("process %d started over SSH survives the cleanup", pid)
	}
	check := func(name string, args []string, bad string) {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
		if strings.Contains(string(out), bad) {
			t.Errorf("%s %s still shows %q:\n%s", name, strings.Join(args, " "), bad, out)
		}
	}
	check("ip", []string{"netns", "list"}, netns)
	check("ip", []string{"link", "show"}, id)
	check("ip", []string{"route", "show", "table", "all"}, subnet)
	check("iptables", []string{"-w", "-S"}, id)
	if _, err := os.Stat("/run/dstack-sshtest/" + id + ".lock"); err == nil {
		t.Errorf("state file of %s left behind", id)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
