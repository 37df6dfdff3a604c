package ssh

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/providertest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestConformance runs the provider suite against a real SSH host: the
// host as an SSH fleet's instance (the agent installed and started on
// it), and a job on it.
func TestConformance(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	t.Setenv("SSH_AUTH_SOCK", "") // the fleet's identity_file alone logs in
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{AgentBinary: exe})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	hostReq := func(spec []byte) providers.CreateRequest {
		return providers.CreateRequest{Kind: providers.KindInstance, Address: "fleet.f[0]",
			Offer: &offers.Offer{Backend: Backend, Region: "on-prem", InstanceType: h.PublicAddr, Given: true}, Spec: spec}
	}
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Kinds:    []providers.ObjectKind{providers.KindInstance, providers.KindJob},
		Request: func(kind providers.ObjectKind, made map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			if kind == providers.KindInstance {
				return hostReq(fleetSpec(c, h.PublicAddr))
			}
			return providers.CreateRequest{Address: "task.t[0]", Host: made[providers.KindInstance].ID,
				Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["exec sleep 6545"]}`)}
		},
		Errors: map[providers.Code]func(context.Context) error{
			// A key the host does not know.
			providers.Auth: func(ctx context.Context) error {
				key := filepath.Join(t.TempDir(), "id_other")
				writeTestKey(t, key)
				spec := strings.Replace(string(fleetSpec(c, h.PublicAddr)), c.ClientKeyPath, key, 1)
				q, err := New(Options{AgentBinary: exe})
				if err != nil {
					return err
				}
				defer q.Close()
				req := hostReq([]byte(spec))
				req.Token = providertest.Token()
				_, err = q.Create(ctx, req)
				return err
			},
			// A job on a host that is not in state.
			providers.NotFound: func(ctx context.Context) error {
				_, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.t[0]",
					Host: "198.51.100.7", Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["true"]}`)})
				return err
			},
		},
		Timeout: 2 * time.Minute,
	})
	if pid := processWith("sleep\x006545"); pid != "" {
		t.Errorf("the job's process (pid %s) outlived its deletion", pid)
	}
}
