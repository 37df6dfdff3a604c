// Command terraform-provider-dstack is the dstack Terraform provider.
//
// Terraform runs it as a plugin. Two subcommands serve the provider's
// own needs:
//
//	terraform-provider-dstack agent [flags]   this machine's host agent, for the local backend
//	terraform-provider-dstack docs DIR EXAMPLES   write the registry docs (index.md, resources/, data-sources/)
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/docgen"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/provider"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// address is the provider's registry address.
const address = "registry.terraform.io/dstackai/dstack"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "terraform-provider-dstack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "agent":
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			agentd.Version = version
			return agentd.Run(ctx, args[1:], os.Stderr)
		case "docs":
			if len(args) != 3 {
				return fmt.Errorf("usage: terraform-provider-dstack docs DIR EXAMPLES")
			}
			return docgen.Write(args[1], args[2], provider.New(provider.Options{Version: version}), docgen.Extra{Index: provider.StateDoc + "\n" + provider.RunsDoc})
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run the agent with: %w", err)
	}
	p := provider.New(provider.Options{Version: version, AgentCommand: []string{exe, "agent"}, Log: os.Stderr})
	return tfplugin.Serve(address, p)
}
