package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	sshprov "github.com/dstackai/dstack-go/providers/ssh"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
	"github.com/dstackai/dstack-go/state"
	statelocal "github.com/dstackai/dstack-go/state/local"
)

// BenchmarkSSHFleet measures the two paths an SSH fleet adds, each beside
// the direct path on the same machine (make bench prints the ratios):
//
//   - agent-call: an agent request (GET /health) through the pooled SSH
//     connection to an SSH host's agent, against the same request to an
//     agent on this machine over loopback; 500 calls per op.
//   - attach-throughput: downloading 256 MiB from a service on the host
//     through `dstack attach`'s port forward (local listener, SSH
//     tunnel), against a direct TCP connection to the same server, and
//     OpenSSH's `ssh -L` forward of the same port where ssh is installed.
//     Each forward also reports the CPU its two SSH ends spent per GB
//     (sshd-cpu-s/GB for the host's sshd, client-cpu-s/GB for dstack
//     attach or OpenSSH's ssh): all of them share this machine's cores,
//     and the far end's cost alone bounds what any forward through it
//     can reach.
func BenchmarkSSHFleet(b *testing.B) {
	c := sshtest.Start(b, sshtest.Options{Hosts: 1, Public: []bool{true}})
	h := c.Hosts[0]
	p := newSSHProject(b, c)
	p.write("fleet.dstack.yml", fmt.Sprintf(`type: fleet
name: bench
ssh_config:
  user: root
  identity_file: %s
  hosts: [%s]
`, c.ClientKeyPath, h.PublicAddr))
	p.must(0, "apply", "-f", "fleet.dstack.yml", "-y")
	const size = 256 << 20
	p.write("web.dstack.yml", fmt.Sprintf(`type: service
runtime: host
name: web
port: 8000
fleets: [bench]
commands:
  - mkdir -p www && head -c %d /dev/zero > www/big
  - exec busybox httpd -f -p 0.0.0.0:8000 -h www
probes:
  - type: http
    url: /big
    method: head
    interval: 1s
`, size))
	p.must(0, "apply", "-f", "web.dstack.yml", "-y", "-d")
	b.Cleanup(func() { p.dstack("destroy", "-y") })

	ctx := context.Background()
	remote := sshAgentClient(b, p, h.PublicAddr)
	local := startLocalAgent(b)
	const calls = 500
	calling := func(a *client.Client) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				for range calls {
					if _, err := a.Health(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.Run("agent-call/ssh", calling(remote))
	b.Run("agent-call/direct", calling(local))

	url, stopAttach := startAttach(b, p, "web")
	b.Cleanup(stopAttach)
	// download fetches url b.N times; where client names a process (the
	// forward on this machine), it reports the CPU that process and the
	// host's sshd spent per GB.
	download := func(url, client string) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(size)
			sshd0, client0 := cpuOf("sshd"), cpuOf(client)
			defer func() {
				if client == "" {
					return
				}
				gb := float64(b.N) * size / 1e9
				b.ReportMetric((cpuOf("sshd")-sshd0).Seconds()/gb, "sshd-cpu-s/GB")
				b.ReportMetric((cpuOf(client)-client0).Seconds()/gb, "client-cpu-s/GB")
			}()
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != size {
					b.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
				}
			}
		}
	}
	// The test binary runs `dstack attach` as a process named dstack.
	b.Run("attach-throughput/ssh", download(url+"/big", "dstack"))
	b.Run("attach-throughput/direct", download(fmt.Sprintf("http://%s:8000/big", h.PublicAddr), ""))
	// OpenSSH's own forwarding (ssh -L) on the same path, for scale.
	if sshCLI, err := exec.LookPath("ssh"); err == nil {
		fwd := exec.Command(sshCLI, "-N", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ExitOnForwardFailure=yes", "-i", c.ClientKeyPath, "-L", "127.0.0.1:18480:127.0.0.1:8000", "root@"+h.PublicAddr)
		if err := fwd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = fwd.Process.Kill(); _ = fwd.Wait() })
		for i := 0; i < 100 && !c.Reachable("127.0.0.1", 18480); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		b.Run("attach-throughput/openssh", download("http://127.0.0.1:18480/big", "ssh"))
	}
}

// sshAgentClient is a client of the agent on an SSH fleet's host through
// the provider, as the planner reaches it.
func sshAgentClient(b *testing.B, p *sshProject, hostID string) *client.Client {
	sb, err := statelocal.New(map[string]string{"path": filepath.Join(p.dir, ".dstack")})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := sb.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		b.Fatal(err)
	}
	sp, err := sshprov.New(sshprov.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sp.Close() })
	var objs []providers.Object
	for _, r := range snap.State.Resources {
		for _, in := range r.Instances {
			objs = append(objs, planner.RecordedObject(r.Address, in, nil))
		}
	}
	sp.Recall(objs)
	a, err := sp.AgentClient(context.Background(), hostID)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// cpuOf is the CPU time (user and system) that this machine's processes
// named comm have used so far; zero for an empty name.
func cpuOf(comm string) time.Duration {
	if comm == "" {
		return 0
	}
	dirs, _ := os.ReadDir("/proc")
	var ticks int64
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: utime and stime are the 14th and
		// 15th fields, the 12th and 13th after the closing parenthesis.
		open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if open < 0 || end < open || string(raw[open+1:end]) != comm {
			continue
		}
		f := strings.Fields(string(raw[end+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	// Linux reports these in USER_HZ, 100 per second on every
	// architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// startLocalAgent starts the same agent binary on this machine and
// returns a client that reaches it over loopback.
func startLocalAgent(b *testing.B) *client.Client {
	dir := b.TempDir()
	cmd := exec.Command("dstack", "agent", "-listen", "127.0.0.1:0", "-data-dir", dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, ok := agentproc.Probe(context.Background(), dir); ok {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("the local agent did not start")
	return nil
}
