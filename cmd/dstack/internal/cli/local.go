package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/inventory"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/offers"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
)

// agentDir is where this machine's agent keeps its jobs, logs, token and
// address: $DSTACK_AGENT_DIR, else ~/.dstack/agent.
func agentDir(env Env) string {
	if d, ok := env.Get("DSTACK_AGENT_DIR"); ok && d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".dstack", "agent")
}

// probeAgent returns a client of the agent whose address and token are in
// dir, if it answers.
func probeAgent(ctx context.Context, dir string) (*client.Client, bool) {
	addr, err := os.ReadFile(filepath.Join(dir, "agent.addr"))
	if err != nil {
		return nil, false
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, false
	}
	c, err := client.New("http://"+strings.TrimSpace(string(addr)), strings.TrimSpace(string(token)), nil)
	if err != nil {
		return nil, false
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Health(hctx); err != nil {
		return nil, false
	}
	return c, true
}

// localAgent returns a client of this machine's agent, starting one (this
// same binary, `dstack agent`, detached) when none answers, so users never
// start it by hand.
func localAgent(ctx context.Context, env Env) (*client.Client, error) {
	dir := agentDir(env)
	if c, ok := probeAgent(ctx, dir); ok {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the dstack binary to start the agent: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "-listen", "127.0.0.1:0", "-data-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, ok := probeAgent(ctx, dir); ok {
			return c, nil
		}
		select {
		case err := <-exited:
			// Another dstack may have started one at the same time.
			if c, ok := probeAgent(ctx, dir); ok {
				return c, nil
			}
			return nil, fmt.Errorf("the agent exited at start (%v); see %s", err, filepath.Join(dir, "agent.log"))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("the agent did not answer within 20 s; see %s", filepath.Join(dir, "agent.log"))
}

// defaultSet is what runs without a cloud: this machine (the local
// backend), with the catalog's offers for planning the rest.
type defaultSet struct {
	local *local.Provider
	ssh   func() (*sshprov.Provider, error)
}

func newDefaultSet(env Env) *defaultSet {
	dir := agentDir(env)
	ssh := sync.OnceValues(func() (*sshprov.Provider, error) {
		var known []string
		if home, err := os.UserHomeDir(); err == nil {
			known = append(known, filepath.Join(home, ".ssh", "known_hosts"))
		}
		bin, _ := env.Get("DSTACK_AGENT_BINARY")
		return sshprov.New(sshprov.Options{KnownHosts: known, AgentBinary: bin})
	})
	return &defaultSet{ssh: ssh, local: local.New(local.Options{
		Dir: filepath.Join(filepath.Dir(dir), "local"),
		Agent: func(ctx context.Context) (local.Agent, error) {
			return localAgent(ctx, env)
		},
		Inventory: func(ctx context.Context) (agent.Inventory, error) {
			inv, err := inventory.Collect(ctx, inventory.Options{DataDir: existing(dir)})
			if inv.Hostname == "" {
				return inv, err
			}
			return inv, nil // what could be found; a missing GPU tool is no error here
		},
	})}
}

func (d *defaultSet) For(backend string) (providers.Provider, error) {
	switch backend {
	case local.Backend:
		return d.local, nil
	case sshprov.Backend:
		return d.ssh()
	}
	return catalogSet{}.For(backend)
}

func (d *defaultSet) Offers(ctx context.Context) ([]offers.Offer, error) {
	all, err := offers.Catalog()
	if err != nil {
		return nil, err
	}
	mine, err := d.local.Offers(ctx)
	if err != nil {
		return nil, fmt.Errorf("describing this machine: %w", err)
	}
	return append(mine, all...), nil
}

// runAgent runs the host agent in this process until SIGTERM or SIGINT.
func runAgent(argv []string, s Streams) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	agentd.Version = version()
	if err := agentd.Run(ctx, argv, s.Stderr); err != nil {
		fmt.Fprintln(s.Stderr, "dstack agent:", err)
		return ExitInvalid
	}
	return ExitOK
}

// existing is dir, or its nearest ancestor that exists (for the free
// disk space before the agent made its directory).
func existing(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || dir == filepath.Dir(dir) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}
