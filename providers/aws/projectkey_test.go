package aws_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/providers/aws"
)

// TestProjectKeys: instances of two projects accept two keys, each made
// on first use at KeyDir/PROJECT/id_ed25519 (mode 0600), each instance's
// user-data carrying its own project's public key only; a project that
// could name another directory is refused.
func TestProjectKeys(t *testing.T) {
	e := newEnv(t, 2)
	dir := t.TempDir()
	p, err := aws.New(aws.Options{Cloud: e.cloud, KeyDir: dir, AgentBinary: agentBinary(t),
		PollInterval: 50 * time.Millisecond, BootTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	projects := []string{"6f1c0e9a-3b7d-4c55-9d1e-2a8b7c6d5e4f", "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"}
	pubs := map[string]string{}
	for i, proj := range projects {
		req := instanceReq("fleet.f[0]")
		req.Token, req.Project = "tok-proj"+proj[:4], proj
		o, err := p.Create(ctxT(t), req)
		if err != nil {
			t.Fatalf("project %d: %v", i, err)
		}
		path := filepath.Join(dir, proj, "id_ed25519")
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("project key %s: %v, %v", path, fi, err)
		}
		b, _ := os.ReadFile(path)
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			t.Fatal(err)
		}
		pubs[o.ID] = strings.Fields(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))[1]
	}
	insts := e.fake.Instances()
	if len(insts) != 2 || pubs[insts[0].ID] == pubs[insts[1].ID] {
		t.Fatalf("instances %d, keys %v: want two instances with two keys", len(insts), pubs)
	}
	for i, inst := range insts {
		other := insts[1-i]
		if ud := string(inst.UserData); !strings.Contains(ud, pubs[inst.ID]) || strings.Contains(ud, pubs[other.ID]) {
			t.Errorf("%s's user-data %q: want its project's key %s only", inst.ID, ud, pubs[inst.ID])
		}
	}
	req := instanceReq("fleet.f[1]")
	req.Token, req.Project = "tok-evil", "../evil"
	if _, err := p.Create(ctxT(t), req); err == nil || !strings.Contains(err.Error(), "cannot name a key directory") {
		t.Errorf("a project naming another directory: %v, want refused", err)
	}
}
