// Package agentproc finds this machine's host agent, or starts one, for
// the programs that drive the local backend: the dstack CLI and the
// Terraform provider. Both run the same agent (package agentd) on the
// same directory, so a job started by one is seen by the other.
//
// The agent runs detached from the program that starts it: it outlives
// a `dstack apply` or a Terraform plugin process, and its jobs keep
// running. The next program finds it through the address and token
// files in its directory.
package agentproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/agent/inventory"
	"github.com/dstackai/dstack-go/internal/detach"
	"github.com/dstackai/dstack-go/providers/local"
)

// Dir is where this machine's agent keeps its jobs, logs, token and
// address: $DSTACK_AGENT_DIR (as lookup finds it), else ~/.dstack/agent.
func Dir(lookup func(string) (string, bool)) string {
	if d, ok := lookup("DSTACK_AGENT_DIR"); ok && d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".dstack", "agent")
}

// Probe returns a client of the agent whose address and token are in
// dir, if it answers within two seconds.
func Probe(ctx context.Context, dir string) (*client.Client, bool) {
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

// StartTimeout is how long Start waits for a new agent to answer.
const StartTimeout = 20 * time.Second

// Start returns a client of the agent in dir, starting one when none
// answers. command is the program and arguments that run the agent
// (for the CLI: its own binary and "agent"); Start adds -listen and
// -data-dir. The agent's output goes to dir/agent.log.
func Start(ctx context.Context, dir string, command []string) (*client.Client, error) {
	if c, ok := Probe(ctx, dir); ok {
		return c, nil
	}
	if len(command) == 0 {
		return nil, fmt.Errorf("no command to start the agent with")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the agent directory: %w", err)
	}
	logPath := filepath.Join(dir, "agent.log")
	args := append(append([]string(nil), command[1:]...), "-listen", "127.0.0.1:0", "-data-dir", dir)
	cmd := exec.Command(command[0], args...)
	cmd.Env = os.Environ()
	return detach.Start(ctx, cmd, logPath, "agent", StartTimeout, func(ctx context.Context) (*client.Client, bool) { return Probe(ctx, dir) })
}

// Provider returns the local backend's provider for the agent in dir:
// its objects are kept beside the agent's directory (dir/../local), the
// agent is started with command on first use, and this machine's
// inventory is read directly.
func Provider(dir string, command []string) *local.Provider {
	return local.New(local.Options{
		Dir: filepath.Join(filepath.Dir(dir), "local"),
		Agent: func(ctx context.Context) (local.Agent, error) {
			return Start(ctx, dir, command)
		},
		Inventory: func(ctx context.Context) (agent.Inventory, error) {
			inv, err := inventory.Collect(ctx, inventory.Options{DataDir: existing(dir)})
			if inv.Hostname == "" {
				return inv, err
			}
			return inv, nil // what could be found; a missing GPU tool is no error here
		},
	})
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
