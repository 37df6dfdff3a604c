// Package agentd is the host agent process: one per machine, it runs jobs as
// host processes (and containers, where the Docker Engine is reachable)
// and serves them over an HTTP/JSON API authenticated by a bearer token.
// See package agent.
//
// Usage:
//
//	dstack-agent [-listen 127.0.0.1:9480] [-data-dir ~/.dstack/agent] [-token-file FILE]
//	             [-watch-interruptions [-imds-endpoint URL] [-imds-interval 5s]]
//
// The token comes from -token-file, else from DSTACK_AGENT_TOKEN, else from
// <data-dir>/token, which the agent creates (mode 0600) with a random
// token when it does not exist. Once listening, the agent writes its
// address to <data-dir>/agent.addr (and its PID to agent.pid), so that a CLI can find it (with
// -listen 127.0.0.1:0 the port is chosen by the system). SIGTERM and
// SIGINT shut the agent down and leave its jobs running: the next agent on
// the same data dir re-attaches to them.
//
// On a spot instance the provider that made it starts the agent with
// -watch-interruptions (or DSTACK_AGENT_WATCH_INTERRUPTIONS=1): the agent
// then polls the EC2 instance metadata service (IMDSv2, at -imds-endpoint
// or DSTACK_AGENT_IMDS_ENDPOINT) for the spot interruption notice, and on
// one stops every job within its stop_duration (and before the
// instance goes), recording it as failed by "interruption" (see
// agent.Manager.Interrupt).
package agentd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/host"
	"github.com/dstackai/dstack-go/agent/imds"
	"github.com/dstackai/dstack-go/agent/inventory"
	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/sshd"
)

// helperBinary is the static binary with the sshd command that the docker
// runtime mounts into the containers of jobs with an SSH server:
// $DSTACK_CONTAINER_HELPER, else this agent's own executable (a static
// one, as make build and make agents build it).
func helperBinary() string {
	if p := os.Getenv("DSTACK_CONTAINER_HELPER"); p != "" {
		return p
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		return p
	}
	return exe
}

// Version is reported by /health; the commands set it.
var Version = "dev"

// runtimeFactory builds an optional runtime. It returns (nil, nil) when
// the runtime cannot work on this host, and the agent runs without it.
type runtimeFactory func(ctx context.Context, dataDir string, log *slog.Logger) (agent.Runtime, error)

// optionalRuntimes are the runtimes beyond host, built in order at start.
// The docker runtime is added when the Docker Engine is reachable: its
// factory goes in this list.
var optionalRuntimes = []runtimeFactory{
	func(ctx context.Context, _ string, _ *slog.Logger) (agent.Runtime, error) {
		return docker.New(ctx, docker.WithHelper(helperBinary()))
	},
}

// args are the command line.
type args struct {
	listen     string
	dataDir    string
	tokenFile  string
	logLimitMB int64
	// watchInterruptions polls imdsEndpoint every imdsInterval for a
	// spot interruption notice.
	watchInterruptions bool
	imdsEndpoint       string
	imdsInterval       time.Duration
}

func parseArgs(argv []string, stderr io.Writer) (args, error) {
	home, _ := os.UserHomeDir()
	var a args
	fs := flag.NewFlagSet("dstack-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.listen, "listen", "127.0.0.1:9480", "`address` to serve the API on (port 0: any free port)")
	fs.StringVar(&a.dataDir, "data-dir", filepath.Join(home, ".dstack", "agent"), "`dir` for jobs, logs and the agent's files")
	fs.StringVar(&a.tokenFile, "token-file", "", "`file` holding the bearer token (default: $DSTACK_AGENT_TOKEN, else <data-dir>/token)")
	fs.Int64Var(&a.logLimitMB, "log-limit-mb", agent.DefaultLogLimit>>20, "MiB of each job's log to keep on disk")
	watch, _ := strconv.ParseBool(os.Getenv("DSTACK_AGENT_WATCH_INTERRUPTIONS"))
	fs.BoolVar(&a.watchInterruptions, "watch-interruptions", watch,
		"poll the instance metadata service for a spot interruption notice and stop the jobs on one (default: $DSTACK_AGENT_WATCH_INTERRUPTIONS)")
	fs.StringVar(&a.imdsEndpoint, "imds-endpoint", cmp.Or(os.Getenv("DSTACK_AGENT_IMDS_ENDPOINT"), imds.DefaultEndpoint),
		"`URL` of the instance metadata service (default: $DSTACK_AGENT_IMDS_ENDPOINT, else "+imds.DefaultEndpoint+")")
	interval := imds.DefaultInterval
	if v := os.Getenv("DSTACK_AGENT_IMDS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return a, fmt.Errorf("DSTACK_AGENT_IMDS_INTERVAL: %w", err)
		}
		interval = d
	}
	fs.DurationVar(&a.imdsInterval, "imds-interval", interval, "how often to ask for a spot interruption notice (default: $DSTACK_AGENT_IMDS_INTERVAL, else 5s)")
	if err := fs.Parse(argv); err != nil {
		return a, err
	}
	if a.imdsInterval <= 0 {
		return a, errors.New("-imds-interval must be positive")
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if a.logLimitMB <= 0 {
		return a, errors.New("-log-limit-mb must be positive")
	}
	return a, nil
}

// Run runs the agent with a command line (without the program name) until
// ctx ends, logging to stderr; `dstack-agent` and `dstack agent` call it.
func Run(ctx context.Context, argv []string, stderr io.Writer) error {
	if len(argv) > 0 && argv[0] == "sshd" {
		// The SSH server the docker runtime starts in a job's container,
		// with this same binary mounted there (see package sshd).
		return sshd.Main(ctx, argv[1:], stderr)
	}
	a, err := parseArgs(argv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := os.MkdirAll(a.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	token, err := loadToken(a.tokenFile, a.dataDir)
	if err != nil {
		return err
	}

	hostRT, err := host.New(host.Options{Dir: filepath.Join(a.dataDir, "host"), Logger: log})
	if err != nil {
		return err
	}
	runtimes := []agent.Runtime{hostRT}
	for _, f := range optionalRuntimes {
		rt, err := f(ctx, a.dataDir, log)
		if err != nil {
			log.Warn("runtime not available", "err", err)
			continue
		}
		if rt != nil {
			runtimes = append(runtimes, rt)
		}
	}
	// The host's GPUs, among which jobs that ask for a number of them
	// get theirs (a missing nvidia-smi or rocm-smi means none of theirs).
	nvidia, _ := inventory.NvidiaGPUs(ctx)
	amd, _ := inventory.AMDGPUs(ctx)
	m, err := agent.NewManager(ctx, agent.Options{
		DataDir:  a.dataDir,
		Runtimes: runtimes,
		Logger:   log,
		LogLimit: a.logLimitMB << 20,
		GPUs:     append(nvidia, amd...),
	})
	if err != nil {
		return err
	}
	defer func() {
		// Jobs keep running; Close only stops watching them.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := m.Close(cctx); err != nil {
			log.Warn("close", "err", err)
		}
	}()
	if a.watchInterruptions {
		stop := watchInterruptions(ctx, m, imds.New(a.imdsEndpoint, nil), a.imdsInterval, log)
		defer stop() // before Close, which the defer above runs
	}
	srv, err := agent.NewServer(m, agent.ServerOptions{
		Token:   token,
		Version: Version,
		Logger:  log,
		Inventory: func(ctx context.Context) (agent.Inventory, error) {
			return inventory.Collect(ctx, inventory.Options{DataDir: a.dataDir})
		},
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", a.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().String()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Warn("listening beyond this host: anyone who reaches the address needs only the token", "addr", addr)
	}
	// Log streams last as long as their jobs: shutting down cancels them
	// through the requests' base context.
	streams, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return streams },
	}
	hs.RegisterOnShutdown(cancelStreams)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	addrFile := filepath.Join(a.dataDir, "agent.addr")
	if err := renameio.WriteFile(addrFile, []byte(addr+"\n"), 0o600); err != nil {
		hs.Close()
		return fmt.Errorf("write %s: %w", addrFile, err)
	}
	defer removeIfOurs(addrFile, addr)
	pidFile := filepath.Join(a.dataDir, "agent.pid")
	pid := strconv.Itoa(os.Getpid())
	if err := renameio.WriteFile(pidFile, []byte(pid+"\n"), 0o600); err != nil {
		return err
	}
	defer removeIfOurs(pidFile, pid)
	log.Info("agent listening", "addr", addr, "data_dir", a.dataDir, "runtimes", m.Runtimes())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; jobs keep running")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return nil
}

// watchInterruptions polls the metadata service until a spot
// interruption notice comes, then interrupts m's jobs. The returned
// function ends the watch and waits for it.
func watchInterruptions(ctx context.Context, m *agent.Manager, c *imds.Client, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	log.Info("watching for spot interruption notices", "every", interval)
	go func() {
		defer close(done)
		n, err := imds.Watch(ctx, c, interval, log)
		if err != nil {
			return // ctx ended: the agent is shutting down
		}
		m.Interrupt(agent.Interruption{Notice: n.String(), Deadline: n.Time})
	}()
	return func() {
		cancel()
		<-done
	}
}

// loadToken reads the token from file, or DSTACK_AGENT_TOKEN, or
// <dataDir>/token, creating that with a random token if needed.
func loadToken(file, dataDir string) (string, error) {
	if file == "" {
		if t := strings.TrimSpace(os.Getenv("DSTACK_AGENT_TOKEN")); t != "" {
			return t, nil
		}
		file = filepath.Join(dataDir, "token")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			b := make([]byte, 32)
			rand.Read(b)
			if err := renameio.WriteFile(file, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("create token file: %w", err)
			}
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return t, nil
}

// removeIfOurs removes the address file unless another agent has written
// its own address there meanwhile.
func removeIfOurs(path, addr string) {
	if data, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(data)) == addr {
		os.Remove(path)
	}
}
