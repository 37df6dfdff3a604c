package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
	"github.com/dstackai/dstack-go/agent/sshd"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestDevSSHThroughFleetHosts: the entry dstack writes for a dev
// environment on an SSH fleet's host takes the real OpenSSH client
// through a bastion (a real sshd) to a host reachable only from it (a
// real sshd, its key checked against the one dstack recorded), and on to
// the dev environment's server on that host's loopback (dstack's own,
// run there as the agent runs it in a container). A host whose key
// changed is refused.
func TestDevSSHThroughFleetHosts(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("the OpenSSH client is not installed")
	}
	c := sshtest.Start(t, sshtest.Options{Hosts: 2, Public: []bool{true, false}})
	bastion, h := c.Hosts[0], c.Hosts[1]
	home := t.TempDir()
	env := Env{"HOME=" + home}
	_, authorized, err := userSSHKey(env)
	if err != nil {
		t.Fatal(err)
	}
	// The dev environment's server, on the host's loopback.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sshd.AuthorizedKeysFile), []byte(authorized+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := dockertest.StaticDstack(t)
	if _, err := h.Exec(t, "setsid "+bin+" agent sshd -listen 127.0.0.1:10022 -dir "+dir+" -log "+dir+"/log </dev/null >/dev/null 2>&1 & echo $! > "+dir+"/pid"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Exec(t, `kill "$(cat `+dir+`/pid)"`) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := sshd.ReadActivity(filepath.Join(dir, sshd.ActivityFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("the server did not start: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	key := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	a := &devAccess{name: "fleetide", hostIP: "127.0.0.1", port: 10022, jumps: []providers.SSHHop{
		{Host: bastion.PublicAddr, Port: 22, User: "root", IdentityFile: c.ClientKeyPath, HostKey: key(bastion.HostKey())},
		{Host: h.PrivateAddr, Port: 22, User: "root", IdentityFile: c.ClientKeyPath, HostKey: key(h.HostKey())},
	}}
	cfgPath, err := writeDevSSH(env, a.name, a)
	if err != nil {
		t.Fatal(err)
	}
	userCfg := filepath.Join(home, "config")
	if err := os.WriteFile(userCfg, []byte("Include "+cfgPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sshBin, "-F", userCfg, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "fleetide", "echo ok; hostname").CombinedOutput()
	if want := "ok\n" + c.ID + "-" + h.Name + "\n"; err != nil || string(out) != want {
		t.Fatalf("ssh fleetide: %v, got %q, want %q", err, out, want)
	}
	h.RotateHostKey(t)
	out, err = exec.Command(sshBin, "-F", userCfg, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "fleetide", "echo ok").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HOST IDENTIFICATION HAS CHANGED") && !strings.Contains(string(out), "Host key verification failed") {
		t.Fatalf("after the host's key changed ssh gave %v: %s", err, out)
	}
}
