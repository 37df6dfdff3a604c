package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/registry"
)

// agentDir is where this machine's agent keeps its jobs, logs, token and
// address: $DSTACK_AGENT_DIR, else ~/.dstack/agent.
func agentDir(env Env) string { return agentproc.Dir(env.Get) }

// providerSet is the providers of the registry: the simulated cloud
// when DSTACK_SIM_DIR names one, else this machine (the local backend),
// SSH fleets' hosts, and the offline catalog, which can plan for the
// clouds but not make anything there yet.
func providerSet(env Env) (*registry.Set, error) {
	home, _ := env.Get("HOME")
	exe, err := os.Executable()
	if err != nil {
		exe = "dstack"
	}
	sim, _ := env.Get("DSTACK_SIM_DIR")
	cfg, err := readBackendConfig(env)
	if err != nil {
		return nil, err
	}
	return registry.Open(registry.Env{Lookup: env.Get, Home: home, AgentDir: agentDir(env),
		// The agent is this same binary (`dstack agent`), detached.
		AgentCommand: []string{exe, "agent"}, SimDir: sim, BackendConfig: cfg,
		Hint: "use backends: [local] for this machine, set DSTACK_SIM_DIR=DIR to use the simulated cloud, or plan with -refresh=false"})
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
