package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers"
)

// TestDevSSHConfig: the entries dstack writes for a dev environment on an
// SSH fleet's host (through a bastion) read, to the real OpenSSH client's
// config parser (ssh -G), as the chain bastion → host → container's
// server, with the fleet's host keys checked; the user's other entries
// and other runs' stay; a removed run's entry goes.
func TestDevSSHConfig(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("the OpenSSH client is not installed")
	}
	home := t.TempDir()
	env := Env{"HOME=" + home}
	cfgPath := sshConfigPath(env)
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte("Host mine\n  HostName example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := &devAccess{name: "other", hostIP: "127.0.0.1", port: 40001}
	if _, err := writeDevSSH(env, "other", other); err != nil {
		t.Fatal(err)
	}
	a := &devAccess{name: "ide", hostIP: "127.0.0.1", port: 40022, user: "ubuntu", jumps: []providers.SSHHop{
		{Host: "bastion.example", Port: 22, User: "jump", IdentityFile: "/keys/jump", HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJumpKeyJumpKeyJumpKeyJumpKeyJumpKeyJumpKey0"},
		{Host: "10.0.0.5", Port: 2222, User: "ubuntu", IdentityFile: "/keys/fleet", HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHostKey00"},
	}}
	for range 2 { // writing twice changes nothing
		if _, err := writeDevSSH(env, "ide", a); err != nil {
			t.Fatal(err)
		}
	}
	userCfg := filepath.Join(home, "config")
	if err := os.WriteFile(userCfg, []byte("Include "+cfgPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resolve := func(host string) string {
		t.Helper()
		out, err := exec.Command(sshBin, "-G", "-F", userCfg, host).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G %s: %v\n%s", host, err, out)
		}
		return string(out)
	}
	known := filepath.Join(home, ".dstack", "ssh", "known_hosts")
	key := filepath.Join(home, ".dstack", "ssh", "id_ed25519")
	for host, want := range map[string][]string{
		"ide":       {"hostname 127.0.0.1\n", "port 40022\n", "user ubuntu\n", "proxyjump ide-host\n", "identityfile " + key + "\n"},
		"ide-host":  {"hostname 10.0.0.5\n", "port 2222\n", "user ubuntu\n", "proxyjump ide-jump0\n", "identityfile /keys/fleet\n", "stricthostkeychecking true\n", "userknownhostsfile " + known + "\n"},
		"ide-jump0": {"hostname bastion.example\n", "user jump\n", "identityfile /keys/jump\n", "stricthostkeychecking true\n"},
		"other":     {"hostname 127.0.0.1\n", "port 40001\n"},
		"mine":      {"hostname example.org\n"},
	} {
		got := resolve(host)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("ssh -G %s has no %q:\n%s", host, w, got)
			}
		}
	}
	b, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[10.0.0.5]:2222 " + a.jumps[1].HostKey + "\nbastion.example " + a.jumps[0].HostKey + "\n"; !sameLines(string(b), want) {
		t.Errorf("known_hosts:\n%s\nwant the lines of:\n%s", b, want)
	}
	if _, err := writeDevSSH(env, "ide", nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(cfg), "ide") || !strings.Contains(string(cfg), "Host other") || !strings.Contains(string(cfg), "Host mine") {
		t.Errorf("after removing ide the config is:\n%s", cfg)
	}
}

func sameLines(a, b string) bool {
	la, lb := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	if len(la) != len(lb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range la {
		seen[l]++
	}
	for _, l := range lb {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestIDELinks: the links are dstack's, for each IDE it knows.
func TestIDELinks(t *testing.T) {
	for ide, want := range map[string]string{
		"vscode":   "vscode://vscode-remote/ssh-remote+ide/workflow",
		"cursor":   "cursor://vscode-remote/ssh-remote+ide/workflow",
		"windsurf": "windsurf://vscode-remote/ssh-remote+ide/workflow",
		"zed":      "zed://ssh/ide/workflow",
		"":         "",
	} {
		if _, got := ideLink(ide, "ide", "/workflow"); got != want {
			t.Errorf("ide %q: link %q, want %q", ide, got, want)
		}
	}
}
