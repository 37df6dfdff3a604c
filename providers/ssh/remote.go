package ssh

// Installing, starting and removing the host agent on a host, all over
// the SSH connection: nothing is downloaded on the host, and the agent
// listens on the host's loopback only (every call reaches it through a
// forward of the same connection).
//
// On the host, for the user dstack logs in as:
//
//	~/.dstack/bin/dstack-agent           the binary, uploaded when its SHA-256 differs
//	~/.dstack/bin/dstack-agent-supervise restarts the agent when it exits (hosts without systemd)
//	~/.dstack/agent/                     the agent's data: jobs, logs, token, agent.addr, agent.pid
//	~/.dstack/agent/instance             the token of the dstack instance the host is
//
// With systemd (and root), the agent is the unit dstack-agent.service
// with KillMode=process, so restarting the agent leaves host-runtime jobs
// running for the new agent to re-attach.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// hostInfo is what the probe learns of a host.
type hostInfo struct {
	OS, Arch string // Go's names: linux, amd64
	Home     string
	Root     bool
	Systemd  bool
	AgentSHA string // of the installed binary; empty when none
	Addr     string // the running agent's address, from agent.addr
	Token    string // the agent's bearer token
	Instance string // the instance token the host was registered with
}

const probeScript = `D="$HOME/.dstack"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "home=$HOME"
echo "uid=$(id -u)"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd=1; fi
if [ -f "$D/bin/dstack-agent" ]; then echo "sha=$(sha256sum "$D/bin/dstack-agent" | cut -d' ' -f1)"; fi
if [ -f "$D/agent/agent.addr" ]; then echo "addr=$(cat "$D/agent/agent.addr")"; fi
if [ -f "$D/agent/token" ]; then echo "token=$(cat "$D/agent/token")"; fi
if [ -f "$D/agent/instance" ]; then echo "instance=$(cat "$D/agent/instance")"; fi
`

func probeHost(ctx context.Context, c *ssh.Client) (hostInfo, error) {
	out, err := run(ctx, c, probeScript, nil)
	if err != nil {
		return hostInfo{}, fmt.Errorf("probing the host: %w", err)
	}
	return parseProbe(out)
}

// parseProbe reads probeScript's output: key=value lines, others (a
// login banner) ignored.
func parseProbe(out string) (hostInfo, error) {
	var h hostInfo
	for line := range strings.SplitSeq(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "os":
			h.OS = strings.ToLower(v)
		case "arch":
			h.Arch = goArch(v)
		case "home":
			h.Home = v
		case "uid":
			h.Root = v == "0"
		case "systemd":
			h.Systemd = true
		case "sha":
			h.AgentSHA = v
		case "addr":
			h.Addr = v
		case "token":
			h.Token = v
		case "instance":
			h.Instance = v
		}
	}
	if h.OS == "" || h.Home == "" {
		return h, errors.New("probing the host: no answer from its shell")
	}
	return h, nil
}

// goArch maps `uname -m` to GOARCH.
func goArch(m string) string {
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l":
		return "arm"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return m
}

// Binaries finds the agent binary for a host's OS and architecture:
// $DSTACK_AGENT_BINARY (for every host), else dstack-agent-OS-ARCH beside
// the running executable (what a release ships), else the running
// executable itself when the host matches this machine (the dstack CLI
// runs as the agent with `dstack agent`).
type Binaries struct {
	// Override is a binary to upload to every host ($DSTACK_AGENT_BINARY).
	Override string

	mu   sync.Mutex
	sums map[string]string // path → SHA-256
}

// Find returns the path of the agent binary for goos/goarch.
func (b *Binaries) Find(goos, goarch string) (string, error) {
	if b.Override != "" {
		return b.Override, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the agent binary: %w", err)
	}
	beside := filepath.Join(filepath.Dir(exe), fmt.Sprintf("dstack-agent-%s-%s", goos, goarch))
	if _, err := os.Stat(beside); err == nil {
		return beside, nil
	}
	if goos == runtime.GOOS && goarch == runtime.GOARCH {
		return exe, nil
	}
	return "", fmt.Errorf("no dstack agent for %s/%s: build one with `GOOS=%s GOARCH=%s go build -o %s ./cmd/dstack-agent` (or set DSTACK_AGENT_BINARY)",
		goos, goarch, goos, goarch, beside)
}

// sum returns the SHA-256 of the file at path, once per path.
func (b *Binaries) sum(path string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.sums[path]; ok {
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if b.sums == nil {
		b.sums = map[string]string{}
	}
	b.sums[path] = hex.EncodeToString(h.Sum(nil))
	return b.sums[path], nil
}

// upload copies the agent binary to the host (to a temporary name, then
// renamed, so a running agent's binary is never half-written).
func upload(ctx context.Context, c *ssh.Client, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the agent binary: %w", err)
	}
	defer f.Close()
	const script = `set -e; D="$HOME/.dstack/bin"; mkdir -p "$D"; cat > "$D/dstack-agent.new"; chmod 755 "$D/dstack-agent.new"; mv -f "$D/dstack-agent.new" "$D/dstack-agent"`
	if _, err := run(ctx, c, script, f); err != nil {
		return fmt.Errorf("uploading the agent: %w", err)
	}
	return nil
}

// superviseScript keeps the agent running with flags on hosts without
// systemd.
func superviseScript(flags []string) string {
	return strings.Replace(superviseTemplate, "FLAGS", strings.Join(flags, " "), 1)
}

const superviseTemplate = `#!/bin/sh
# dstack: keeps the host agent running (hosts without systemd).
D="$HOME/.dstack"
echo $$ > "$D/agent/supervisor.pid"
while [ ! -e "$D/agent/stop" ]; do
	"$D/bin/dstack-agent" agent -listen 127.0.0.1:0 -data-dir "$D/agent" FLAGS >>"$D/agent/agent.log" 2>&1
	[ -e "$D/agent/stop" ] && break
	sleep 1
done
rm -f "$D/agent/supervisor.pid"
`

// checkAgentFlags refuses flags that are not one plain word each: they
// go unquoted into a shell script and a systemd unit.
func checkAgentFlags(flags []string) error {
	for _, f := range flags {
		if f == "" || strings.ContainsFunc(f, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:/=@+,-", r))
		}) {
			return fmt.Errorf("agent flag %q: want one word of [A-Za-z0-9_.:/=@+,-]", f)
		}
	}
	return nil
}

func unitFile(home string, flags []string) string {
	extra := ""
	if len(flags) > 0 {
		extra = " " + strings.Join(flags, " ")
	}
	return fmt.Sprintf(`[Unit]
Description=dstack host agent
After=network-online.target docker.service

[Service]
ExecStart=%[1]s/.dstack/bin/dstack-agent agent -listen 127.0.0.1:0 -data-dir %[1]s/.dstack/agent%[2]s
Restart=always
RestartSec=1
KillMode=process

[Install]
WantedBy=multi-user.target
`, home, extra)
}

// stopScript stops the agent, whichever way it was started, and waits
// for it to exit; the jobs it runs are left alone.
const stopScript = `D="$HOME/.dstack/agent"
if [ -f /etc/systemd/system/dstack-agent.service ] && command -v systemctl >/dev/null 2>&1; then
	systemctl stop dstack-agent >/dev/null 2>&1 || true
fi
mkdir -p "$D"; touch "$D/stop"
for f in supervisor.pid agent.pid; do
	if [ -f "$D/$f" ]; then kill "$(cat "$D/$f")" 2>/dev/null || true; fi
done
i=0
while [ -f "$D/agent.pid" ] && kill -0 "$(cat "$D/agent.pid")" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -f "$D/agent.pid" ]; then kill -9 "$(cat "$D/agent.pid")" 2>/dev/null || true; fi
rm -f "$D/agent.addr" "$D/agent.pid" "$D/supervisor.pid"
`

// startAgent (re)starts the agent with flags: under systemd when the
// host has it and dstack is root, else under the supervise script,
// detached from the SSH session.
func startAgent(ctx context.Context, c *ssh.Client, h hostInfo, flags []string) error {
	if err := checkAgentFlags(flags); err != nil {
		return err
	}
	if _, err := run(ctx, c, stopScript, nil); err != nil {
		return fmt.Errorf("stopping the old agent: %w", err)
	}
	if h.Systemd && h.Root {
		script := `set -e; rm -f "$HOME/.dstack/agent/stop"; cat > /etc/systemd/system/dstack-agent.service; ` +
			`systemctl daemon-reload; systemctl enable dstack-agent >/dev/null 2>&1; systemctl restart dstack-agent`
		if _, err := run(ctx, c, script, strings.NewReader(unitFile(h.Home, flags))); err != nil {
			return fmt.Errorf("starting the agent with systemd: %w", err)
		}
		return nil
	}
	script := `set -e; D="$HOME/.dstack"; mkdir -p "$D/agent" "$D/bin"; rm -f "$D/agent/stop"
cat > "$D/bin/dstack-agent-supervise"; chmod 755 "$D/bin/dstack-agent-supervise"
setsid nohup "$D/bin/dstack-agent-supervise" </dev/null >/dev/null 2>&1 &`
	if _, err := run(ctx, c, script, strings.NewReader(superviseScript(flags))); err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	return nil
}

// removeAgent stops the agent, removes its unit, binary and data (its
// jobs must be gone already).
func removeAgent(ctx context.Context, c *ssh.Client) error {
	script := stopScript + `if [ -f /etc/systemd/system/dstack-agent.service ]; then
	systemctl disable dstack-agent >/dev/null 2>&1 || true
	rm -f /etc/systemd/system/dstack-agent.service
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
rm -rf "$HOME/.dstack/agent" "$HOME/.dstack/bin/dstack-agent" "$HOME/.dstack/bin/dstack-agent-supervise"
`
	if _, err := run(ctx, c, script, nil); err != nil {
		return fmt.Errorf("removing the agent: %w", err)
	}
	return nil
}

// writeInstance records on the host which instance token it is.
func writeInstance(ctx context.Context, c *ssh.Client, token string) error {
	if strings.ContainsAny(token, "'\n") {
		return errors.New("invalid instance token")
	}
	_, err := run(ctx, c, `mkdir -p "$HOME/.dstack/agent" && printf '%s\n' '`+token+`' > "$HOME/.dstack/agent/instance"`, nil)
	return err
}
