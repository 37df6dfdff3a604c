package aws_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
)

// progressLog collects a create's progress messages.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *progressLog) add(m string) { l.mu.Lock(); l.msgs = append(l.msgs, m); l.mu.Unlock() }
func (l *progressLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

// TestHostKeyFromConsole: the instance's SSH host key is the one its
// console output shows (the fake serves the sshtest host's real key the
// way cloud-init prints it, base64-encoded as EC2 does), and is pinned
// in state.
func TestHostKeyFromConsole(t *testing.T) {
	e := newEnv(t, 1)
	req := instanceReq("fleet.f[0]")
	req.Token = "tok-console"
	var log progressLog
	req.Progress = log.add
	o, err := e.p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.hosts.Hosts[0].HostKey())))
	if got := o.Attributes["host_key"]; got != want {
		t.Errorf("pinned host key %q, want the host's %q", got, want)
	}
	asked := false
	for _, c := range e.fake.Calls() {
		asked = asked || c.Action == "GetConsoleOutput" && c.Params.Get("InstanceId") == o.ID
	}
	if !asked || strings.Contains(log.String(), "warning") {
		t.Errorf("GetConsoleOutput asked: %v; progress:\n%s", asked, log.String())
	}
}

// TestHostKeyConsoleMismatch: a host that shows another key than its
// console output names is refused (the connection could be intercepted),
// and the instance is terminated.
func TestHostKeyConsoleMismatch(t *testing.T) {
	e := newEnv(t, 1)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.RewriteConsole(func(_, text string) string {
		if text == "" {
			return ""
		}
		return "-----BEGIN SSH HOST KEY KEYS-----\n" + string(ssh.MarshalAuthorizedKey(other)) + "-----END SSH HOST KEY KEYS-----\n"
	})
	req := instanceReq("fleet.f[0]")
	req.Token = "tok-mitm"
	_, err = e.p.Create(ctxT(t), req)
	var hke *sshprov.HostKeyError
	if !errors.As(err, &hke) || !strings.Contains(err.Error(), "console output") {
		t.Fatalf("a host showing a key its console does not name: %v, want a host key error naming the console output", err)
	}
	if r := e.fake.Running(); len(r) != 0 {
		t.Errorf("running after the refusal: %+v", r)
	}
}

// TestHostKeyConsoleEmpty: a console that shows no keys within
// ConsoleWait falls back to trusting the first key, with a warning.
func TestHostKeyConsoleEmpty(t *testing.T) {
	e := newEnv(t, 1)
	p, err := aws.New(aws.Options{Cloud: e.cloud, KeyPath: e.keyPath, AgentBinary: agentBinary(t),
		PollInterval: 50 * time.Millisecond, BootTimeout: time.Minute, ConsoleWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.fake.RewriteConsole(func(string, string) string { return "[    0.000000] Linux version 6.8.0\n" })
	req := instanceReq("fleet.f[0]")
	req.Token = "tok-tofu"
	var log progressLog
	req.Progress = log.add
	o, err := p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "warning: the console output of "+o.ID+" shows no SSH host keys") {
		t.Errorf("no warning in the progress:\n%s", log.String())
	}
	if o.Attributes["host_key"] == "" || o.Status != providers.StatusRunning {
		t.Errorf("instance %+v", o)
	}
}

// agentBinary is this test binary, which is also the agent (TestMain).
func agentBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
