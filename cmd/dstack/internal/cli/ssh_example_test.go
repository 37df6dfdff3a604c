package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestSSHFleetExample applies examples/ssh-fleet, blocks and all, to three
// real SSH hosts: the example's addresses and credentials are replaced by
// the test cluster's, everything else is the example as written (a
// bastion every host is reached through, a host with its own user, port,
// internal IP and blocks). A second plan has nothing to do, and changing
// one host's blocks replaces that host alone.
func TestSSHFleetExample(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "examples", "ssh-fleet", "fleet.dstack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	example := string(src)
	if !strings.Contains(example, "blocks:") {
		t.Fatalf("the example's fleet has no blocks:\n%s", example)
	}
	c := sshtest.Start(t, sshtest.Options{Hosts: 3})
	h0, h1, h2 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	// Every host is reached through the bastion, h0: on the private
	// network, the only one h2 is on.
	fleet := example
	for _, r := range []struct{ old, new string }{
		{"user: ubuntu", "user: root"},
		{"identity_file: ~/.ssh/id_ed25519", "identity_file: " + c.ClientKeyPath},
		{"hostname: bastion.example.com", "hostname: " + h0.PublicAddr},
		{"user: jump", "user: root"},
		{"- 10.0.0.11\n", "- " + h0.PrivateAddr + "\n"},
		{"- 10.0.0.12\n", "- " + h1.PrivateAddr + "\n"},
		{"hostname: 10.0.0.13", "hostname: " + h2.PrivateAddr},
		{"user: admin", "user: root"},
		{"port: 2222", "port: 22"},
		{"internal_ip: 192.168.100.13", "internal_ip: " + h2.PrivateAddr},
		{"network: 10.0.0.0/24", "network: " + c.PrivateSubnet},
	} {
		if strings.Count(fleet, r.old) != 1 {
			t.Fatalf("the example no longer has %q once; update this test with it:\n%s", r.old, example)
		}
		fleet = strings.Replace(fleet, r.old, r.new, 1)
	}

	p := newSSHProject(t, c)
	p.write("fleet.dstack.yml", fleet)
	out := p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	for _, h := range c.Hosts {
		if !agentRunning(t, h) {
			t.Fatalf("no agent on %s after applying the example:\n%s", h.Name, out)
		}
	}
	p.must(0, "plan", "-f", "fleet.dstack.yml", "-detailed-exitcode")

	// Another number of blocks on the third host: it alone is replaced
	// (the others' recorded blocks read back as they were).
	p.write("fleet.dstack.yml", strings.Replace(fleet, "blocks: auto", "blocks: 2", 1))
	out = p.must(2, "plan", "-f", "fleet.dstack.yml", "-detailed-exitcode")
	// The reason lists the replaced hosts in index order, h2 last.
	if !strings.Contains(out, "replaces "+h2.PrivateAddr+" (") {
		t.Fatalf("plan after changing %s's blocks:\n%s", h2.PrivateAddr, out)
	}
	out = p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	if !agentRunning(t, h2) {
		t.Fatalf("no agent on %s after it was replaced:\n%s", h2.Name, out)
	}
	p.must(0, "plan", "-f", "fleet.dstack.yml", "-detailed-exitcode")
}
