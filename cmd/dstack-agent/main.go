// Command dstack-agent is the host agent: one per machine, it runs jobs as
// host processes (and containers, where the Docker Engine is reachable)
// and serves them over an HTTP/JSON API authenticated by a bearer token.
// See package agentd for its flags and files; the dstack CLI runs the same
// agent as `dstack agent` for this machine.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dstackai/dstack-go/agent/agentd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "agent" {
		// Started the way the dstack CLI's own agent is (`dstack agent
		// ...`): SSH fleets start whichever binary they uploaded so.
		args = args[1:]
	}
	if err := agentd.Run(ctx, args, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dstack-agent:", err)
		os.Exit(1)
	}
}
