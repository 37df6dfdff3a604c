package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
	"github.com/dstackai/dstack-go/state"
	statelocal "github.com/dstackai/dstack-go/state/local"
)

// sshProject is a dstack project whose commands run as processes of the
// real CLI binary, against SSH hosts of an sshtest cluster.
type sshProject struct {
	t   testing.TB
	dir string
	env []string
}

func newSSHProject(t testing.TB, c *sshtest.Cluster) *sshProject {
	agentBin, err := exec.LookPath("dstack-agent")
	if err != nil {
		t.Fatalf("the test binary's dstack-agent command: %v", err)
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "DSTACK_AGENT_BINARY="+agentBin, "NO_COLOR=1", "SSH_AUTH_SOCK=",
		"DSTACK_AGENT_DIR="+filepath.Join(dir, "local-agent"))
	return &sshProject{t: t, dir: dir, env: env}
}

func (p *sshProject) write(name, content string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// dstack runs the CLI and returns its output and exit code.
func (p *sshProject) dstack(args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dstack", args...)
	cmd.Dir, cmd.Env = p.dir, p.env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("dstack %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}

// must runs the CLI and fails the test unless it exits with want.
func (p *sshProject) must(want int, args ...string) string {
	p.t.Helper()
	out, code := p.dstack(args...)
	if code != want {
		p.t.Fatalf("dstack %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// hostOf maps the fleet's instances to their hostnames, and a run's jobs
// to the hostname of the instance each runs on.
func (p *sshProject) hostsOf(run string) map[int]string {
	p.t.Helper()
	b, err := statelocal.New(map[string]string{"path": filepath.Join(p.dir, ".dstack")})
	if err != nil {
		p.t.Fatal(err)
	}
	snap, err := b.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		p.t.Fatal(err)
	}
	byToken := map[string]string{}
	for _, r := range snap.State.Resources {
		for _, in := range r.Instances {
			if h, ok := in.Attributes["hostname"].(string); ok {
				byToken[in.Token] = h
			}
		}
	}
	out := map[int]string{}
	if r := snap.State.Resource(run); r != nil {
		for _, in := range r.Instances {
			if h, ok := in.Attributes["host_id"].(string); ok {
				out[in.Index] = h
			} else if tok, ok := in.Attributes["host"].(string); ok {
				out[in.Index] = byToken[tok]
			}
		}
	}
	return out
}

func agentRunning(t *testing.T, h *sshtest.Host) bool {
	out, _ := h.Exec(t, `kill -0 "$(cat /root/.dstack/agent/agent.pid 2>/dev/null)" 2>/dev/null && echo up`)
	return strings.TrimSpace(out) == "up"
}

// TestSSHFleet drives the real CLI against three real SSH hosts (sshd in
// network namespaces; the third reached only through a proxy jump via the
// first): a fleet over them, a 3-node task that sees its ranks and pings
// its master on the fleet's network, a service reached through attach,
// an agent killed and repaired, a host key change refused, and a host
// removed with its agent and jobs.
func TestSSHFleet(t *testing.T) {
	c := sshtest.Start(t, sshtest.Options{Hosts: 3})
	h0, h1, h2 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	p := newSSHProject(t, c)
	// The fleet's hosts as YAML entries, by address: the third is
	// reached through the first.
	entries := map[string]string{
		h0.PublicAddr: "    - " + h0.PublicAddr + "\n",
		h1.PublicAddr: "    - " + h1.PublicAddr + "\n",
		h2.PrivateAddr: fmt.Sprintf("    - hostname: %s\n      proxy_jump:\n        hostname: %s\n        user: root\n        identity_file: %s\n",
			h2.PrivateAddr, h0.PublicAddr, c.ClientKeyPath),
	}
	fleetOf := func(hosts ...string) string {
		y := fmt.Sprintf("type: fleet\nname: onprem\nssh_config:\n  user: root\n  identity_file: %s\n  network: %s\n  hosts:\n",
			c.ClientKeyPath, c.PrivateSubnet)
		for _, h := range hosts {
			y += entries[h]
		}
		return y
	}
	all := []string{h0.PublicAddr, h1.PublicAddr, h2.PrivateAddr}
	fleet := fleetOf(all...)
	p.write("fleet.dstack.yml", fleet)
	out := p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	for _, h := range c.Hosts {
		if !agentRunning(t, h) {
			t.Fatalf("no agent on %s after apply:\n%s", h.Name, out)
		}
	}

	// The agents listen on their host's loopback only.
	for _, h := range c.Hosts {
		addr, err := h.Exec(t, "cat /root/.dstack/agent/agent.addr")
		if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("%s: agent address %q (%v)", h.Name, addr, err)
		}
		var port int
		fmt.Sscanf(strings.TrimPrefix(strings.TrimSpace(addr), "127.0.0.1:"), "%d", &port)
		if !tcpOpen(t, h, "127.0.0.1", port) {
			t.Fatalf("%s: the agent's port %d is not open on its own host", h.Name, port)
		}
		if h.PublicAddr != "" && c.Reachable(h.PublicAddr, port) {
			t.Errorf("%s: the agent's port %d is reachable from outside the host", h.Name, port)
		}
		other := c.Hosts[(slicesIndex(c.Hosts, h)+1)%3]
		if tcpOpen(t, other, h.PrivateAddr, port) {
			t.Errorf("%s: the agent's port %d is reachable from %s", h.Name, port, other.Name)
		}
	}

	// A 3-node task: one job per host, each sees its rank and reaches
	// the master on the fleet's (private) network.
	p.write("ring.dstack.yml", `type: task
runtime: host
name: ring
nodes: 3
startup_order: master-first
fleets: [onprem]
commands:
  - echo "rank=$DSTACK_NODE_RANK nodes=$DSTACK_NODES_NUM master=$DSTACK_MASTER_NODE_IP"
  - busybox ping -c 1 -W 2 "$DSTACK_MASTER_NODE_IP" >/dev/null && echo "ping-ok"
`)
	p.must(0, "apply", "-f", "ring.dstack.yml", "-y")
	seen := map[string]bool{}
	hosts := p.hostsOf("task.ring")
	for rank := range 3 {
		logs := p.must(0, "logs", "ring", "-replica", fmt.Sprint(rank))
		m := regexp.MustCompile(`rank=(\d) nodes=3 master=(\S+)`).FindStringSubmatch(logs)
		if m == nil || m[1] != fmt.Sprint(rank) || !strings.Contains(logs, "ping-ok") {
			t.Fatalf("job %d's output:\n%s", rank, logs)
		}
		if !strings.HasPrefix(m[2], strings.TrimSuffix(c.PrivateSubnet, "0/24")) {
			t.Errorf("master address %s is not on the fleet's network %s", m[2], c.PrivateSubnet)
		}
		seen[hosts[rank]] = true
	}
	if len(seen) != 3 {
		t.Errorf("the 3 jobs ran on %v, want 3 different hosts", hosts)
	}
	ps := p.must(0, "ps", "-a")
	for rank, h := range hosts {
		if !regexp.MustCompile(fmt.Sprintf(`task\.ring +%d +done .*fleet\.onprem\[\d\] \(%s\)`, rank, regexp.QuoteMeta(h))).MatchString(ps) {
			t.Errorf("ps does not show job %d done on %s:\n%s", rank, h, ps)
		}
	}

	// A service on the fleet, probed through SSH and reached with attach.
	web := `type: service
runtime: host
name: web
port: 8000
fleets: [onprem]
commands:
  - mkdir -p www && echo hello-from-ssh-fleet > www/index.html
  - exec busybox httpd -f -p 127.0.0.1:8000 -h www
probes:
  - type: http
    url: /
    interval: 1s
`
	p.write("web.dstack.yml", web)
	p.must(0, "apply", "-f", "web.dstack.yml", "-y", "-d")
	body := attachGet(t, p, "web")
	if !strings.Contains(body, "hello-from-ssh-fleet") {
		t.Fatalf("through attach: %q", body)
	}
	// metrics, logs -since and fleet list reach the jobs through their
	// hosts' agents, over SSH.
	if out := p.must(0, "metrics", "web"); !regexp.MustCompile(`(?m)^service\.web +0 +running +\d+\.\d% +\d+MB +- `).MatchString(out) {
		t.Errorf("metrics web:\n%s", out)
	}
	if out := p.must(0, "logs", "ring", "-since", "1h"); !strings.Contains(out, "rank=0") {
		t.Errorf("logs ring -since 1h:\n%s", out)
	}
	if out := p.must(0, "logs", "ring", "-since", "2999-01-01T00:00:00Z"); out != "" {
		t.Errorf("logs ring -since a time to come:\n%s", out)
	}
	if out := p.must(0, "fleet"); !regexp.MustCompile(`(?m)^onprem +0 +ssh `).MatchString(out) || !strings.Contains(out, "service.web[0]") {
		t.Errorf("fleet list:\n%s", out)
	}
	webHost := p.hostsOf("service.web")[0]

	// Kill one host's agent (and its supervisor): plan reports it and
	// apply restarts it; the service's job survives on its host.
	var victim *sshtest.Host
	for _, h := range c.Hosts {
		if h.PublicAddr == webHost || h.PrivateAddr == webHost {
			victim = h
		}
	}
	if victim == nil {
		t.Fatalf("the service runs on %q, which is no host of the cluster", webHost)
	}
	if _, err := victim.Exec(t, `kill -9 "$(cat /root/.dstack/agent/supervisor.pid)" "$(cat /root/.dstack/agent/agent.pid)"`); err != nil {
		t.Fatal(err)
	}
	out = p.must(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "its agent is not running") || !strings.Contains(out, "restarts the agent on "+webHost) {
		t.Fatalf("plan after killing the agent on %s:\n%s", webHost, out)
	}
	p.must(0, "apply", "-y")
	if !agentRunning(t, victim) {
		t.Fatalf("the agent on %s was not restarted", victim.Name)
	}
	p.must(0, "plan", "-detailed-exitcode")
	if body := attachGet(t, p, "web"); !strings.Contains(body, "hello-from-ssh-fleet") {
		t.Fatalf("the service after the agent's repair: %q", body)
	}

	// Remove the service's host: its agent and jobs are gone, the
	// service moves to another host.
	var kept []string
	for _, h := range all {
		if h != webHost {
			kept = append(kept, h)
		}
	}
	p.write("fleet.dstack.yml", fleetOf(kept...))
	out = p.must(0, "apply", "-y")
	if agentRunning(t, victim) {
		t.Fatalf("the removed host still runs its agent:\n%s", out)
	}
	if left, _ := victim.Exec(t, "ls -A /root/.dstack/agent 2>/dev/null"); strings.TrimSpace(left) != "" {
		t.Errorf("the removed host keeps the agent's files: %q", left)
	}
	if tcpOpen(t, victim, "127.0.0.1", 8000) {
		t.Errorf("the removed host still runs the service's job (port 8000 answers)")
	}
	if h := p.hostsOf("service.web")[0]; h == webHost || h == "" {
		t.Fatalf("the service is on %q after its host was removed", h)
	}
	if body := attachGet(t, p, "web"); !strings.Contains(body, "hello-from-ssh-fleet") {
		t.Fatalf("the moved service: %q", body)
	}

	// A host that stops answering is reported and left alone: no
	// repair is tried, and nothing new is placed on it.
	var silent *sshtest.Host
	for _, h := range c.Hosts {
		if h.PublicAddr != "" && h.PublicAddr != webHost {
			silent = h
		}
	}
	silent.Stop(t)
	out = p.must(2, "plan", "-detailed-exitcode") // drift, and nothing to do
	if !strings.Contains(out, "of fleet.onprem does not answer") || !strings.Contains(out, "No changes.") {
		t.Fatalf("plan with %s down:\n%s", silent.Name, out)
	}
	p.write("pair.dstack.yml", "type: task\nruntime: host\nname: pair\nnodes: 2\nfleets: [onprem]\ncommands: [hostname]\n")
	out = p.must(1, "plan", "-f", "pair.dstack.yml")
	if !strings.Contains(out, "does not answer") {
		t.Fatalf("placing a 2-node task with %s down:\n%s", silent.Name, out)
	}
	silent.Start(t)
	if err := os.Remove(filepath.Join(p.dir, "pair.dstack.yml")); err != nil {
		t.Fatal(err)
	}
	p.must(0, "plan", "-detailed-exitcode")

	// A run whose host stops answering moves to a host that answers when
	// its retry policy lists interruption. The job left there may run
	// on: it is recorded as abandoned, and removed once its host answers.
	// (With every host back in the fleet, one answers whichever stops:
	// the third is reached through the first.)
	p.write("fleet.dstack.yml", fleet)
	p.must(0, "apply", "-y")
	p.write("web.dstack.yml", strings.Replace(web, "fleets: [onprem]\n", "fleets: [onprem]\nretry:\n  on_events: [interruption]\n", 1))
	p.must(0, "apply", "-y", "-d")
	from := p.hostsOf("service.web")[0]
	mover := hostNamed(t, c, from)
	mover.Stop(t)
	out = p.must(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "does not answer, and retry on interruption moves the run") || !strings.Contains(out, "abandon") {
		t.Fatalf("plan with the service's host %s down:\n%s", from, out)
	}
	p.must(0, "apply", "-y")
	if to := p.hostsOf("service.web")[0]; to == from || to == "" {
		t.Fatalf("the service is on %q after its host %s stopped answering", to, from)
	}
	if body := attachGet(t, p, "web"); !strings.Contains(body, "hello-from-ssh-fleet") {
		t.Fatalf("the moved service: %q", body)
	}
	if !tcpOpen(t, mover, "127.0.0.1", 8000) {
		t.Fatalf("the job on the silent host %s should still run (it was cut off, not stopped)", from)
	}
	if ps := p.must(0, "ps"); !strings.Contains(ps, "abandoned") {
		t.Errorf("ps does not show the abandoned job:\n%s", ps)
	}
	mover.Start(t)
	out = p.must(2, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "removes 1 job(s) it left on a host that did not answer") {
		t.Fatalf("plan once %s answers again:\n%s", from, out)
	}
	p.must(0, "apply", "-y")
	if tcpOpen(t, mover, "127.0.0.1", 8000) {
		t.Errorf("the abandoned job on %s still runs after apply", from)
	}
	p.must(0, "plan", "-detailed-exitcode")

	// A host key change is refused, not warned about; the user's
	// known_hosts is the way to accept it.
	h0.RotateHostKey(t)
	out = p.must(1, "plan")
	if !strings.Contains(out, "host key of "+h0.PublicAddr) || !strings.Contains(out, "refusing") {
		t.Fatalf("plan after %s's host key changed:\n%s", h0.Name, out)
	}
	out = p.must(1, "apply", "-y")
	if !strings.Contains(out, "host key of") {
		t.Fatalf("apply after the host key changed:\n%s", out)
	}
	known := filepath.Join(p.dir, "home", ".ssh")
	_ = os.MkdirAll(known, 0o700)
	if err := os.WriteFile(filepath.Join(known, "known_hosts"), []byte(h0.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.must(0, "plan", "-detailed-exitcode")

	p.must(0, "destroy", "-y")
	for _, h := range c.Hosts {
		if agentRunning(t, h) {
			t.Errorf("%s still runs an agent after destroy", h.Name)
		}
	}
}

// hostNamed is the cluster's host at address addr.
func hostNamed(t *testing.T, c *sshtest.Cluster, addr string) *sshtest.Host {
	t.Helper()
	for _, h := range c.Hosts {
		if h.PublicAddr == addr || h.PrivateAddr == addr {
			return h
		}
	}
	t.Fatalf("%q is no host of the cluster", addr)
	return nil
}

// tcpOpen reports whether a TCP connection to addr:port opens from host h.
func tcpOpen(t *testing.T, h *sshtest.Host, addr string, port int) bool {
	out, _ := h.Exec(t, fmt.Sprintf("timeout 3 bash -c 'echo > /dev/tcp/%s/%d' 2>/dev/null && echo open", addr, port))
	return strings.TrimSpace(out) == "open"
}

func slicesIndex(hosts []*sshtest.Host, h *sshtest.Host) int {
	for i, x := range hosts {
		if x == h {
			return i
		}
	}
	return -1
}

// attachGet runs `dstack attach RUN`, GETs / through the local address
// it forwards, and stops attach.
func attachGet(t testing.TB, p *sshProject, run string) string {
	t.Helper()
	url, stop := startAttach(t, p, run)
	defer stop()
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatalf("GET through attach: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// startAttach starts `dstack attach RUN` and returns the local URL it
// forwards, and how to stop it (an interrupt, as Ctrl-C).
func startAttach(t testing.TB, p *sshProject, run string) (url string, stop func()) {
	t.Helper()
	cmd := exec.Command("dstack", "attach", run)
	cmd.Dir, cmd.Env = p.dir, p.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	sc := bufio.NewScanner(stdout)
	re := regexp.MustCompile(`Forwarding (http://localhost:\d+)`)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return m[1], stop
		}
	}
	stop()
	t.Fatalf("attach printed no forward:\n%s", strings.Join(seen, "\n"))
	return "", nil
}
