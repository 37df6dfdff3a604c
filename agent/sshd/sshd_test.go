package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// serve starts a server in a temporary directory that authorizes a new
// key; it returns the server's port, its directory and the path of the
// client's private key.
func serve(t *testing.T) (port int, dir, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AuthorizedKeysFile), ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port, dir, keyFile
}

// sshArgs are the OpenSSH client's options to reach the test server.
func sshArgs(port int, keyFile string) []string {
	return []string{"-F", "/dev/null", "-i", keyFile, "-p", strconv.Itoa(port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "127.0.0.1"}
}

func needSSH(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("DSTACK_REQUIRE_SSHD") != "" {
			t.Fatal("the OpenSSH client is not installed")
		}
		t.Skip("the OpenSSH client is not installed")
	}
	return p
}

// TestOpenSSHClient: the real OpenSSH client runs commands (exit codes,
// stdin, stderr, env), and a wrong key is refused.
func TestOpenSSHClient(t *testing.T) {
	sshBin := needSSH(t)
	port, _, key := serve(t)
	tests := []struct {
		name     string
		command  string
		stdin    string
		env      []string
		want     string
		wantCode int
	}{
		{name: "echo", command: "echo ok", want: "ok\n"},
		{name: "exit code", command: "echo out; echo err >&2; exit 3", want: "out\nerr\n", wantCode: 3},
		{name: "stdin", command: "read x; echo got $x", stdin: "hello\n", want: "got hello\n"},
		{name: "env", command: "echo $LC_DSTACK_TEST", env: []string{"LC_DSTACK_TEST=passed"}, want: "passed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := sshArgs(port, key)
			if len(tt.env) > 0 {
				args = append([]string{"-o", "SendEnv=LC_DSTACK_TEST"}, args...)
			}
			cmd := exec.Command(sshBin, append(args, tt.command)...)
			cmd.Env = append(os.Environ(), tt.env...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want || code != tt.wantCode {
				t.Errorf("got %q (exit %d), want %q (exit %d)", out, code, tt.want, tt.wantCode)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		_, _, other := serve(t)
		out, err := exec.Command(sshBin, append(sshArgs(port, other), "echo ok")...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("another key logged in: %v, %s", err, out)
		}
	})
}

// TestPortForward: ssh -L reaches a server listening on the far side's
// loopback, as IDEs reach the servers they start in the container.
func TestPortForward(t *testing.T) {
	sshBin := needSSH(t)
	port, _, key := serve(t)
	web, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(web, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "through the tunnel") }))
	defer web.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := free.Addr().(*net.TCPAddr).Port
	free.Close()
	fwd := fmt.Sprintf("%d:127.0.0.1:%d", local, web.Addr().(*net.TCPAddr).Port)
	cmd := exec.Command(sshBin, append([]string{"-N", "-o", "ExitOnForwardFailure=yes", "-L", fwd}, sshArgs(port, key)...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "through the tunnel" {
				t.Fatalf("got %q", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forward never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTerminalAndActivity: a session with a terminal sees one (and its
// window size); the activity file counts the open connection and records
// when it closed.
func TestTerminalAndActivity(t *testing.T) {
	port, dir, keyFile := serve(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	before, err := ReadActivity(filepath.Join(dir, ActivityFile))
	if err != nil || before.Open != 0 {
		t.Fatalf("activity at start: %+v, %v", before, err)
	}
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitActivity(t, dir, "one connection open", func(a Activity) bool { return a.Open == 1 })
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 30, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput("test -t 0 && echo tty=yes; echo term=$TERM; stty size")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := strings.ReplaceAll(string(out), "\r", "")
	if !strings.Contains(got, "tty=yes\nterm=xterm\n30 100\n") {
		t.Errorf("terminal session printed %q", got)
	}
	closed := time.Now()
	c.Close()
	waitActivity(t, dir, "none open, the last closed now", func(a Activity) bool { return a.Open == 0 && !a.Last.Before(closed) })
}

// waitActivity polls the activity file until ok holds of it.
func waitActivity(t *testing.T, dir, what string, ok func(Activity) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := ReadActivity(filepath.Join(dir, ActivityFile))
		if err == nil && ok(a) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the activity file says %+v (%v), want %s", a, err, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
