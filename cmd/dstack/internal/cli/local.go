package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/offers"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
)

// agentDir is where this machine's agent keeps its jobs, logs, token and
// address: $DSTACK_AGENT_DIR, else ~/.dstack/agent.
func agentDir(env Env) string { return agentproc.Dir(env.Get) }

// defaultSet is what runs without a cloud: this machine (the local
// backend), with the catalog's offers for planning the rest.
type defaultSet struct {
	local *local.Provider
	ssh   func() (*sshprov.Provider, error)
}

func newDefaultSet(env Env) *defaultSet {
	dir := agentDir(env)
	ssh := sync.OnceValues(func() (*sshprov.Provider, error) {
		home, _ := env.Get("HOME")
		return sshprov.ForUser(home, env.Get)
	})
	exe, err := os.Executable()
	if err != nil {
		exe = "dstack"
	}
	// The agent is this same binary (`dstack agent`), detached.
	return &defaultSet{ssh: ssh, local: agentproc.Provider(dir, []string{exe, "agent"})}
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
