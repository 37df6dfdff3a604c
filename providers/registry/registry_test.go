package registry

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers/sim"
)

func env(t *testing.T) Env {
	dir := t.TempDir()
	return Env{Lookup: func(string) (string, bool) { return "", false }, Home: dir, AgentDir: filepath.Join(dir, "agent"),
		AgentCommand: []string{"false"}, Hint: "try local"}
}

func TestNames(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "aws,kubernetes,local,ssh" {
		t.Fatalf("names %s", got)
	}
	if HostsBackend() != "ssh" {
		t.Fatalf("the backend of given hosts is %q", HostsBackend())
	}
	if _, err := New("gcp", env(t)); err == nil || !strings.Contains(err.Error(), `backend "gcp" has no provider in this build`) || !strings.Contains(err.Error(), "(try local)") {
		t.Fatalf("gcp: %v", err)
	}
	for _, n := range Names() {
		p, err := New(n, env(t))
		if err != nil || p.Name() != n {
			t.Fatalf("New(%q) = %v, %v", n, p, err)
		}
	}
}

// TestEveryBackend: with no backends named, every provider is served and
// the offers are this machine's and the whole catalog's; the kubernetes
// backend, without a backend block, offers nothing and starts nothing.
func TestEveryBackend(t *testing.T) {
	s, err := Open(env(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"local", "ssh"} {
		if p, err := s.For(n); err != nil || p.Name() != n {
			t.Errorf("For(%q) = %v, %v", n, p, err)
		}
	}
	a, _ := s.For("local")
	if b, _ := s.For("local"); a != b {
		t.Error("the local provider is built twice")
	}
	if _, err := s.For("gcp"); err == nil || !strings.Contains(err.Error(), "no provider in this build") {
		t.Errorf("gcp: %v", err)
	}
	all, err := s.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range all {
		seen[o.Backend]++
	}
	if seen["local"] != 1 || seen["aws"] == 0 || seen["gcp"] == 0 || seen["ssh"] != 0 || seen["kubernetes"] != 0 {
		t.Fatalf("offers by backend: %v", seen)
	}
}

// TestConfiguredBackends: naming backends (the Terraform provider's
// backend blocks) limits the providers and the offers to them; the
// provider of given hosts needs no block.
func TestConfiguredBackends(t *testing.T) {
	e := env(t)
	e.Backends = []string{"aws"}
	s, err := Open(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.For("local"); err == nil || !strings.Contains(err.Error(), `backend "local" is not configured (configured: aws)`) {
		t.Errorf("local, not configured: %v", err)
	}
	if p, err := s.For("ssh"); err != nil || p.Name() != "ssh" {
		t.Errorf("ssh: %v, %v", p, err)
	}
	if p, err := s.For("aws"); err != nil || p.Name() != "aws" {
		t.Errorf("aws: %v, %v", p, err)
	}
	all, err := s.Offers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no offers")
	}
	for _, o := range all {
		if o.Backend != "aws" {
			t.Fatalf("offer of %s", o.Backend)
		}
	}
	e.Backends = []string{"local"}
	s, _ = Open(e)
	all, err = s.Offers(context.Background())
	if err != nil || len(all) != 1 || all[0].Backend != "local" {
		t.Fatalf("local only: %+v %v", all, err)
	}
}

// TestSim: a simulated cloud serves every backend.
func TestSim(t *testing.T) {
	e := env(t)
	e.SimDir = t.TempDir()
	s, err := Open(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"aws", "local", "ssh"} {
		if p, err := s.For(n); err != nil || p.Name() != sim.Name {
			t.Errorf("For(%q) = %v, %v", n, p, err)
		}
	}
	if s.HostsBackend() != "ssh" {
		t.Errorf("hosts backend %q", s.HostsBackend())
	}
}
