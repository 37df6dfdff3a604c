package ssh

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
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestMain lets this test binary be the agent the provider uploads: on a
// host it runs as ~/.dstack/bin/dstack-agent.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "dstack-agent" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "agent" {
			args = args[1:]
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := agentd.Run(ctx, args, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "dstack-agent:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func target(c *sshtest.Cluster, h *sshtest.Host) Target {
	return Target{Host: h.PublicAddr, Port: 22, User: "root", IdentityFile: c.ClientKeyPath}
}

// dropConnections kills the sshd processes serving established
// connections on h, as a network failure or a restarted host would.
func dropConnections(t *testing.T, h *sshtest.Host) {
	t.Helper()
	out, err := h.Exec(t, "ss -Htnp state established '( sport = :22 )'")
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	pids := regexp.MustCompile(`pid=(\d+)`).FindAllStringSubmatch(out, -1)
	if len(pids) == 0 {
		t.Fatalf("no established SSH connection on %s:\n%s", h.Name, out)
	}
	for _, p := range pids {
		_, _ = h.Exec(t, "kill -9 "+p[1])
	}
}

// TestPoolReusesAndRedials: calls share one connection per target, and a
// connection that dropped is replaced on the next call.
func TestPoolReusesAndRedials(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 2})
	pool, err := NewPool(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	tg := target(c, c.Hosts[0])
	a, _, err := pool.Client(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := pool.Client(ctx, tg)
	if err != nil || a != b {
		t.Fatalf("second call: %p %v, want the first connection %p", b, err, a)
	}
	if out, err := run(ctx, a, "echo hi", nil); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("run: %q %v", out, err)
	}
	dropConnections(t, c.Hosts[0])
	time.Sleep(200 * time.Millisecond)
	d, _, err := pool.Client(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if d == a {
		t.Fatal("the pool handed out the dropped connection")
	}
	if out, err := run(ctx, d, "echo again", nil); err != nil || strings.TrimSpace(out) != "again" {
		t.Fatalf("run on the new connection: %q %v", out, err)
	}
	// The proxy-jumped host is reached through the first host's pooled
	// connection.
	jumped := Target{Host: c.Hosts[1].PrivateAddr, Port: 22, User: "root", IdentityFile: c.ClientKeyPath, Jump: &tg}
	if c.Hosts[1].PublicAddr != "" {
		jumped.Host = c.Hosts[1].PrivateAddr
	}
	j, _, err := pool.Client(ctx, jumped)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(ctx, j, "hostname", nil); err != nil || !strings.HasSuffix(strings.TrimSpace(out), "-h1") {
		t.Fatalf("through the jump: %q %v", out, err)
	}
}

// TestHostKeys: trust on first use, then the recorded key is enforced;
// known_hosts wins over the record, and a known_hosts mismatch is refused.
func TestHostKeys(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	ctx := context.Background()
	tg := target(c, h)

	pool, _ := NewPool(nil)
	defer pool.Close()
	_, key, err := pool.Client(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if authorizedKey(key) != authorizedKey(h.HostKey()) {
		t.Fatalf("first use accepted %s, the host's key is %s", ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(h.HostKey()))
	}

	// A pool that recorded the key (as state does) refuses another one.
	old := h.HostKey()
	h.RotateHostKey(t)
	strict, _ := NewPool(nil)
	defer strict.Close()
	strict.TrustKey(tg.Addr(), old)
	_, _, err = strict.Client(ctx, tg)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Source != "dstack's state" || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("a changed key: got %v", err)
	}

	// known_hosts vouching for the new key replaces the record.
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(h.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vouched, err := NewPool([]string{known})
	if err != nil {
		t.Fatal(err)
	}
	defer vouched.Close()
	vouched.TrustKey(tg.Addr(), old)
	if _, key, err := vouched.Client(ctx, tg); err != nil || authorizedKey(key) != authorizedKey(h.HostKey()) {
		t.Fatalf("known_hosts with the new key: %v", err)
	}

	// known_hosts naming another key is a refusal too.
	h.RotateHostKey(t)
	stale, _ := NewPool([]string{known})
	defer stale.Close()
	if _, _, err := stale.Client(ctx, tg); !errors.As(err, &hke) || !strings.HasPrefix(hke.Source, "known_hosts") {
		t.Fatalf("known_hosts with an old key: got %v", err)
	}
}

func fleetSpec(c *sshtest.Cluster, hosts ...string) []byte {
	var hs []string
	for _, h := range hosts {
		hs = append(hs, fmt.Sprintf(`{"hostname":%q}`, h))
	}
	return fmt.Appendf(nil, `{"type":"fleet","name":"f","ssh_config":{"user":"root","identity_file":%q,"network":%q,"hosts":[%s]}}`,
		c.ClientKeyPath, c.PrivateSubnet, strings.Join(hs, ","))
}

// TestInstanceLifecycle: making an instance installs and starts the
// agent (once: a second create with the token reuses it), describing it
// sees a dead agent, a create repairs it, and deleting it removes the
// agent and its files.
func TestInstanceLifecycle(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{AgentBinary: exe})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	var progress []string
	req := providers.CreateRequest{Kind: providers.KindInstance, Token: "tok1", Address: "fleet.f[0]",
		Offer: &offers.Offer{Backend: Backend, InstanceType: h.PublicAddr}, Spec: fleetSpec(c, h.PublicAddr),
		Progress: func(s string) { progress = append(progress, s) }}
	o, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != h.PublicAddr || o.Status != providers.StatusRunning || o.Offer == nil || o.Offer.CPUs == 0 {
		t.Fatalf("instance: %+v", o)
	}
	if o.Attributes["ip"] != h.PrivateAddr {
		t.Errorf("ip %q, want the address on the fleet's network %s", o.Attributes["ip"], h.PrivateAddr)
	}
	if o.Attributes[attrHostKey] != authorizedKey(h.HostKey()) {
		t.Errorf("recorded host key %q", o.Attributes[attrHostKey])
	}
	if !strings.Contains(strings.Join(progress, "\n"), "uploading the agent") {
		t.Errorf("progress: %q", progress)
	}
	pid1, _ := h.Exec(t, "cat /root/.dstack/agent/agent.pid")

	// Idempotent: the same token, nothing uploaded or restarted.
	progress = nil
	if _, err := p.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	if pid2, _ := h.Exec(t, "cat /root/.dstack/agent/agent.pid"); pid2 != pid1 || len(progress) > 0 {
		t.Errorf("a second create restarted the agent (%s → %s) or uploaded it again: %q", pid1, pid2, progress)
	}

	// A dead agent is a failed instance.
	if _, err := h.Exec(t, `kill -9 "$(cat /root/.dstack/agent/supervisor.pid)" "$(cat /root/.dstack/agent/agent.pid)"`); err != nil {
		t.Fatal(err)
	}
	got, err := p.Describe(ctx, []string{"tok1"})
	if err != nil {
		t.Fatal(err)
	}
	if g := got["tok1"]; g.Status != providers.StatusFailed || !strings.Contains(g.Reason, "agent is not running") {
		t.Fatalf("after killing the agent: %+v", g)
	}
	// Made again under a new token: the agent is back.
	req.Token = "tok2"
	if _, err := p.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	got, _ = p.Describe(ctx, []string{"tok1", "tok2"})
	if _, ok := got["tok1"]; ok || got["tok2"].Status != providers.StatusRunning {
		t.Fatalf("after the repair: %+v", got)
	}

	// A job on the host, then its agent dies again: removing the host
	// still removes the job.
	job, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindJob, Token: "job1", Address: "task.t[0]", Host: h.PublicAddr,
		Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["exec sleep 6543"]}`)})
	if err != nil || job.Status != providers.StatusRunning {
		t.Fatalf("job: %+v %v", job, err)
	}
	if _, err := h.Exec(t, `kill -9 "$(cat /root/.dstack/agent/supervisor.pid)" "$(cat /root/.dstack/agent/agent.pid)"`); err != nil {
		t.Fatal(err)
	}

	// Another process knows the host only from what state recorded.
	q, _ := New(Options{AgentBinary: exe})
	defer q.Close()
	o2 := got["tok2"]
	q.Recall([]providers.Object{o2, job})
	got, err = q.Describe(ctx, []string{"tok2", "job1"})
	if err != nil || got["tok2"].Status != providers.StatusFailed || got["job1"].Status != providers.StatusUnknown {
		t.Fatalf("describe from the record, the agent dead: %+v %v", got, err)
	}
	if err := q.Delete(ctx, providers.KindInstance, o2.ID); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.Exec(t, `ls -A /root/.dstack/agent /root/.dstack/bin 2>&1`); strings.Contains(out, "agent.pid") || strings.Contains(out, "dstack-agent") {
		t.Fatalf("after delete the host keeps: %s", out)
	}
	if pid := processWith("sleep\x006543"); pid != "" {
		t.Fatalf("the job's process (pid %s) outlived its host's removal", pid)
	}
	if got, _ := q.Describe(ctx, []string{"tok2"}); len(got) != 0 {
		t.Fatalf("deleted instance still described: %+v", got)
	}
}

// TestUnreachableHost: a host that does not answer, and its jobs, are of
// unknown state: neither gone nor ended.
func TestUnreachableHost(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.pool.timeout = 2 * time.Second
	tg := Target{Host: "127.0.0.1", Port: 1, User: "root"}
	tj := `{"host":"127.0.0.1","port":1,"user":"root"}`
	p.Recall([]providers.Object{
		{Kind: providers.KindInstance, ID: tg.Host, Token: "i1", Address: "fleet.f[0]", Attributes: map[string]string{attrTarget: tj}},
		{Kind: providers.KindJob, ID: "j1", Token: "j1", Address: "task.t[0]", Host: tg.Host},
	})
	t.Setenv("HOME", t.TempDir()) // no default keys
	key := filepath.Join(t.TempDir(), "id")
	writeTestKey(t, key)
	p.hosts[tg.Host].target.IdentityFile = key
	got, err := p.Describe(context.Background(), []string{"i1", "j1"})
	if err != nil {
		t.Fatal(err)
	}
	if got["i1"].Status != providers.StatusUnknown || !strings.Contains(got["i1"].Reason, "does not answer") {
		t.Errorf("instance: %+v", got["i1"])
	}
	if got["j1"].Status != providers.StatusUnknown {
		t.Errorf("job: %+v", got["j1"])
	}
	// A finished job stays what it was.
	p.Recall([]providers.Object{{Kind: providers.KindJob, ID: "j2", Token: "j2", Address: "task.t[1]", Host: tg.Host, Status: providers.StatusDone}})
	if got, err := p.Describe(context.Background(), []string{"j2"}); err != nil || got["j2"].Status != providers.StatusDone {
		t.Errorf("a finished job on a host that does not answer: %+v (%v)", got["j2"], err)
	}
	// Removing it cannot work, and the error says how to forget it.
	err = p.Delete(context.Background(), providers.KindInstance, tg.Host)
	if err == nil || !strings.Contains(err.Error(), "dstack state rm 'fleet.f[0]'") {
		t.Errorf("deleting a host that does not answer: %v", err)
	}
}

func writeTestKey(t *testing.T, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeysFromSSHAgent: without identity_file, the keys of a running
// ssh-agent ($SSH_AUTH_SOCK) log in.
func TestKeysFromSSHAgent(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	data, err := os.ReadFile(c.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	ring := sshagent.NewKeyring()
	if err := ring.Add(sshagent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = sshagent.ServeAgent(ring, conn); conn.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no default key files
	pool, _ := NewPool(nil)
	defer pool.Close()
	cl, _, err := pool.Client(context.Background(), Target{Host: c.Hosts[0].PublicAddr, Port: 22, User: "root"})
	if err != nil {
		t.Fatalf("with the key in ssh-agent only: %v", err)
	}
	if out, err := run(context.Background(), cl, "echo agent-ok", nil); err != nil || strings.TrimSpace(out) != "agent-ok" {
		t.Fatalf("run: %q %v", out, err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, _, err := pool.Client(context.Background(), Target{Host: c.Hosts[0].PublicAddr, Port: 22, User: "root", IdentityFile: "~/missing"}); err == nil || !strings.Contains(err.Error(), "identity_file") {
		t.Fatalf("a missing identity_file: got %v", err)
	}
}

// TestShellQuote: a script with quotes and newlines reaches sh intact.
func TestShellQuote(t *testing.T) {
	script := "x='it'\\''s'\necho \"$x\" 'a  b' \"c\\\"d\"\n"
	want, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command("sh", "-c", "sh -c "+shellQuote(script)).Output()
	if err != nil || string(got) != string(want) {
		t.Fatalf("through shellQuote: %q (%v), want %q", got, err, want)
	}
}

// FuzzParseProbe: whatever a host's shell prints, reading it neither
// panics nor takes a value from a line that is not its own.
func FuzzParseProbe(f *testing.F) {
	f.Add("os=Linux\narch=x86_64\nhome=/root\nuid=0\nsystemd=1\nsha=abc\naddr=127.0.0.1:4000\ntoken=t\ninstance=i\n")
	f.Add("Welcome!\nos=Linux\nhome=/home/u\nuid=1000\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		h, err := parseProbe(out)
		if err != nil {
			return
		}
		if h.OS == "" || h.Home == "" {
			t.Fatalf("accepted without os or home: %+v", h)
		}
		if h.Token != "" && !strings.Contains(out, "token="+h.Token) {
			t.Fatalf("token %q is not from a token line", h.Token)
		}
	})
}

// processWith returns the pid of a process on this machine (the hosts
// share its process IDs) whose command line contains cmdline, with
// arguments separated by NUL, or "".
func processWith(cmdline string) string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if b, err := os.ReadFile(d + "/cmdline"); err == nil && strings.Contains(string(b), cmdline) {
			return filepath.Base(d)
		}
	}
	return ""
}
