package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/controller"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/secrets"
)

// serverTokenPath is where `dstack server` keeps its API token when none
// is given: beside the local state, readable by its owner only.
func serverTokenPath() string { return filepath.Join(dataDir, "server-token") }

// serverToken is the API's token: $DSTACK_SERVER_TOKEN, else the token
// file's (made with a new random token when missing).
func serverToken(env Env, file string) (string, string, error) {
	if t, ok := env.Get("DSTACK_SERVER_TOKEN"); ok && t != "" {
		return t, "$DSTACK_SERVER_TOKEN", nil
	}
	if file == "" {
		file = serverTokenPath()
	}
	if b, err := os.ReadFile(file); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, file, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("reading the server token: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	t := hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", "", fmt.Errorf("writing the server token: %w", err)
	}
	if err := os.WriteFile(file, []byte(t+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the server token: %w", err)
	}
	return t, file, nil
}

func runServer(argv []string, s Streams, env Env) int {
	fs := newFlagSet("server", "server [options]\n\n"+
		"Runs the control loop of the selected state (backend and workspace), one per\n"+
		"state, until interrupted. Every -interval it takes the state's lock for as long\n"+
		"as it reconciles (plan and apply wait with -lock-timeout meanwhile): it makes\n"+
		"again service replicas that died or fail their probes, re-runs runs per their\n"+
		"retry policy, tears down fleet instances idle past idle_duration, starts tasks\n"+
		"on their schedule, and scales services on the request rate the gateway\n"+
		"reports (-gateway). It acts on the configuration the state records: what\n"+
		"was applied, never files on disk.\n\n"+
		"Its HTTP API (-listen) needs the token of -token-file or $DSTACK_SERVER_TOKEN:\n"+
		"GET /api/runs, GET /api/runs/NAME/logs, GET /api/runs/NAME/metrics,\n"+
		"GET /api/metrics, POST /api/apply\n"+
		"(the body: a plan saved with plan -out).", s)
	listen := fs.String("listen", "127.0.0.1:8480", "`address` of the HTTP API (\"\": none)")
	tokenFile := fs.String("token-file", "", "`file` with the API token (default .dstack/server-token, made when missing)")
	interval := fs.Duration("interval", 10*time.Second, "time between reconciliations")
	gateway := fs.String("gateway", "", "`URL` of the gateway's admin API, whose /api/stats give the request rates services scale on (token in $DSTACK_GATEWAY_ADMIN_TOKEN); default: this machine's gateway, which the loop also keeps routing to the replicas it makes")
	gatewayProject := fs.String("gateway-project", "main", "the project the gateway serves the services under")
	probeFailures := fs.Int("probe-failures", 3, "probe rounds in a row a replica may fail before it is replaced")
	once := fs.Bool("once", false, "reconcile once and exit (for cron or CI)")
	configDir := fs.String("config", ".", "`DIR` of the configuration files, which give the values the state holds masked (sensitive ones) for what was applied from them unchanged (\"\": none)")
	detach := fs.Bool("d", false, "run in the background, detached (its output in .dstack/server.log), as the CLI runs the local agent")
	stopIt := fs.Bool("stop", false, "stop the server that -d started here")
	if _, err := parseFlags(fs, argv); err != nil {
		return flagExit(err)
	}
	switch {
	case *stopIt:
		return stopServer(s)
	case *detach:
		return startServer(s, argv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, ws, err := openBackend(env)
	if err != nil {
		return fail(s, err)
	}
	set, err := providerSet(env)
	if err != nil {
		return fail(s, err)
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(s.Stderr, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	opts := controller.Options{Backend: b, Workspace: ws, Providers: set, Interval: *interval, ProbeFailures: *probeFailures,
		Logf: logf, Events: textEvents(s.Stderr), ToolVersion: version()}
	if *gateway != "" {
		tok, _ := env.Get("DSTACK_GATEWAY_ADMIN_TOKEN")
		opts.Rates = &controller.GatewayRates{URL: *gateway, Token: tok, Project: *gatewayProject, MaxAge: time.Second}
	} else {
		// This machine's gateway, which apply starts for the local
		// backend: its rates, and its routes after each of the loop's
		// changes.
		opts.Rates = &localGatewayRates{dir: gatewayproc.Dir(env.Get), project: *gatewayProject}
		opts.Publish = func(ctx context.Context, st *state.State) error {
			_, _, err := gatewayproc.Publish(ctx, st, env)
			return err
		}
	}
	if *configDir != "" {
		dir := *configDir
		opts.Config = func() (*lang.Config, error) {
			cfg, diags := load.Path(dir, load.Options{Environ: env})
			if diags.HasErrors() {
				return nil, diags.Err()
			}
			return cfg, nil
		}
	}
	// The runs' secrets, opened with the team's key when a job is made.
	opts.OpenSecrets = func(st *state.State, names []string) (map[string]string, error) {
		k, err := loadKey(env)
		if err != nil {
			return nil, err
		}
		return secrets.Open(st, k.Key, names)
	}
	loop := controller.New(opts)
	if *once {
		rep, err := loop.Tick(ctx)
		printReport(s, rep)
		if err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	if *listen != "" {
		token, where, err := serverToken(env, *tokenFile)
		if err != nil {
			return fail(s, err)
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fail(s, fmt.Errorf("the API's address: %w", err))
		}
		srv := &http.Server{Handler: loop.Handler(token), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logf("dstack server: workspace %q, every %s; API on http://%s (token in %s)", ws, *interval, ln.Addr(), where)
	} else {
		logf("dstack server: workspace %q, every %s", ws, *interval)
	}
	if err := loop.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fail(s, err)
	}
	return ExitOK
}

// printReport says what one reconciliation did.
func printReport(s Streams, rep controller.Report) {
	switch {
	case rep.Waited != "":
		fmt.Fprintf(s.Stdout, "The state is locked; nothing done this time (%s).\n", rep.Waited)
		return
	case len(rep.Changes) == 0 && len(rep.Drift) == 0:
		fmt.Fprintln(s.Stdout, "Nothing to do: everything runs as applied.")
	}
	for _, d := range rep.Drift {
		fmt.Fprintf(s.Stdout, "found: %s\n", d)
	}
	for _, c := range rep.Changes {
		fmt.Fprintf(s.Stdout, "did: %s\n", c)
	}
	for addr, why := range rep.Skipped {
		fmt.Fprintf(s.Stdout, "left alone: %s: %s\n", addr, why)
	}
}

func serverPIDPath() string { return filepath.Join(dataDir, "server.pid") }

// runningServer is the PID of the server -d started here, if it runs.
func runningServer() (int, bool) {
	b, err := os.ReadFile(serverPIDPath())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	return pid, true
}

// startServer starts `dstack server` with the same flags (less -d) in a
// session of its own, so that it outlives this command, as the local
// agent does; its output goes to .dstack/server.log.
func startServer(s Streams, argv []string) int {
	if pid, ok := runningServer(); ok {
		fmt.Fprintf(s.Stdout, "dstack server already runs here (pid %d); stop it with dstack server -stop\n", pid)
		return ExitOK
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(s, err)
	}
	var args []string
	for _, a := range argv {
		if a != "-d" && a != "--d" && a != "-d=true" && a != "--d=true" {
			args = append(args, a)
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fail(s, err)
	}
	logPath := filepath.Join(dataDir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fail(s, fmt.Errorf("opening the server log: %w", err))
	}
	defer logf.Close()
	cmd := exec.Command(exe, append([]string{"server"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(s, fmt.Errorf("starting dstack server: %w", err))
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	if err := os.WriteFile(serverPIDPath(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Started dstack server (pid %d); its output is in %s. Stop it with dstack server -stop.\n", pid, logPath)
	return ExitOK
}

// stopServer stops the server -d started here (SIGTERM: a tick in
// flight finishes and releases the lock).
func stopServer(s Streams) int {
	pid, ok := runningServer()
	if !ok {
		fmt.Fprintln(s.Stdout, "No dstack server runs here.")
		return ExitOK
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fail(s, fmt.Errorf("stopping dstack server (pid %d): %w", pid, err))
	}
	for range 200 {
		if syscall.Kill(pid, 0) != nil {
			_ = os.Remove(serverPIDPath())
			fmt.Fprintf(s.Stdout, "Stopped dstack server (pid %d).\n", pid)
			return ExitOK
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fail(s, fmt.Errorf("dstack server (pid %d) did not stop within 10s", pid))
}

// localGatewayRates reads the rates of this machine's gateway, found
// through its directory's files at each tick (it may start, or start
// again on another address, while the server runs).
type localGatewayRates struct {
	dir, project string
	addr         string
	g            *controller.GatewayRates
}

func (r *localGatewayRates) Rate(ctx context.Context, service string, window time.Duration) (controller.Rate, error) {
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(r.dir, name))
		return strings.TrimSpace(string(b))
	}
	addr, tok := read("admin.addr"), read("admin.token")
	if addr == "" || tok == "" {
		return controller.Rate{}, fmt.Errorf("no gateway runs on this machine (%s); dstack apply starts it for a service, or give -gateway URL", r.dir)
	}
	if r.g == nil || addr != r.addr {
		r.addr = addr
		r.g = &controller.GatewayRates{URL: "http://" + addr, Token: tok, Project: r.project, MaxAge: time.Second}
	}
	return r.g.Rate(ctx, service, window)
}
