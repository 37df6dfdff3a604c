package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/providertest"
)

// startAgent runs this machine's agent (package agentd, as `dstack
// agent` does) in dir until the test ends.
func startAgent(t *testing.T, dir string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logf, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- agentd.Run(ctx, []string{"-listen", "127.0.0.1:0", "-data-dir", dir}, logf) }()
	t.Cleanup(func() {
		cancel()
		<-done
		logf.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, ok := agentproc.Probe(ctx, dir); ok {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the agent exited: %v", err)
		default:
		}
	}
	t.Fatal("the agent did not answer")
}

// TestConformance runs the provider suite against the local backend as
// the CLI wires it, on a real agent: this machine as an instance, a
// volume, and a job run as a host process.
func TestConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	startAgent(t, dir)
	p := agentproc.Provider(dir, nil) // the agent runs: nothing to start
	job := func(env map[string]string) providers.CreateRequest {
		e := map[string]string{"DSTACK_NODE_RANK": "0", "DSTACK_NODES_NUM": "1"}
		for k, v := range env {
			e[k] = v
		}
		return providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.ct[0]",
			Spec: []byte(`{"type":"task","name":"ct","runtime":"host","commands":["exec sleep 300"]}`), Env: e}
	}
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Kinds:    []providers.ObjectKind{providers.KindInstance, providers.KindVolume, providers.KindJob},
		Request: func(kind providers.ObjectKind, _ map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			switch kind {
			case providers.KindInstance:
				return providers.CreateRequest{Address: "fleet.local[0]"}
			case providers.KindVolume:
				return providers.CreateRequest{Address: "volume.ct[0]"}
			}
			return job(nil)
		},
		Errors: map[providers.Code]func(context.Context) error{
			// An agent that rejects the token.
			providers.Auth: func(ctx context.Context) error {
				addr, err := os.ReadFile(filepath.Join(dir, "agent.addr"))
				if err != nil {
					return err
				}
				c, err := client.New("http://"+strings.TrimSpace(string(addr)), "not-the-token", nil)
				if err != nil {
					return err
				}
				wrong := local.New(local.Options{Dir: t.TempDir(), Agent: func(context.Context) (local.Agent, error) { return c, nil }})
				_, err = wrong.Create(ctx, job(nil))
				return err
			},
			// More GPUs than this machine has.
			providers.NoCapacity: func(ctx context.Context) error {
				_, err := p.Create(ctx, job(map[string]string{"DSTACK_GPUS_PER_NODE": "4096"}))
				return err
			},
		},
	})
}
