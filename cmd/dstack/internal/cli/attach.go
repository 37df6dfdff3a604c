package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// forward is one port dstack attach forwards.
type forward struct {
	local     int // on this machine; 0: any free port
	container int
	target    string // host:port the job's port is published on
	// direct is set when the job's port is already localhost:local (a
	// host process of the local backend binds its port on this machine
	// itself): there is nothing to forward, nor a port to bind.
	direct bool
	// dial reaches target (directly, or through the job's host's SSH
	// connection).
	dial func(ctx context.Context) (net.Conn, error)
}

// runAttach forwards a run's ports to localhost and streams its output
// until the job ends or the user interrupts.
func runAttach(argv []string, s Streams, env Env) int {
	fs := newFlagSet("attach", "attach [options] RUN [-- COMMAND...]\n\nForwards the run's ports to localhost and follows its output; Ctrl-C detaches\n(the run goes on). With a command (dstack attach RUN -- sh), runs it inside the\njob instead, with a terminal when this is one, and exits with its status.", s)
	replica := fs.Int("replica", 0, "the job (replica or node) to attach to")
	var command []string
	if i := slices.Index(argv, "--"); i >= 0 {
		argv, command = argv[:i], argv[i+1:]
	}
	t, code := openRun(fs, argv, s, env)
	if t == nil {
		return code
	}
	defer t.cancel()
	ctx, set, r := t.ctx, t.set, t.run
	var in *state.Instance
	for _, i := range r.Instances {
		if i.Index == *replica {
			in = i
		}
	}
	if in == nil {
		return fail(s, fmt.Errorf("%s has no job %d", r.Address, *replica))
	}
	if len(command) > 0 {
		return execIn(ctx, set, r.Address, in, command, s)
	}
	fwds, err := forwards(ctx, set, r, in)
	if err != nil {
		return fail(s, err)
	}
	if strings.HasPrefix(r.Address, string(lang.KindDevEnvironment)+".") {
		// A dev environment is opened over SSH, not followed: say how,
		// and stay only to forward the ports it declares.
		if err := announceDevEnv(ctx, set, r, env, s.Stdout); err != nil {
			return fail(s, err)
		}
		if len(fwds) == 0 {
			return ExitOK
		}
		fmt.Fprintf(s.Stdout, "\nForwarding the ports of %s until Ctrl-C (the environment goes on after).\n", r.Address)
	}
	var wg sync.WaitGroup
	for _, f := range fwds {
		if f.direct {
			fmt.Fprintf(s.Stdout, "Port %d of %s is at http://localhost:%d (the job runs on this machine)\n", f.container, r.Address, f.local)
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.local)))
		if errors.Is(err, syscall.EADDRINUSE) && f.local != 0 {
			// Something here holds the local port (another replica of
			// the job, another program): forward from a free one.
			fmt.Fprintf(s.Stderr, "dstack: localhost:%d is in use; forwarding port %d from another local port\n", f.local, f.container)
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			return fail(s, fmt.Errorf("listening on localhost:%d for port %d: %w", f.local, f.container, err))
		}
		defer ln.Close()
		fmt.Fprintf(s.Stdout, "Forwarding http://localhost:%d to %s port %d\n", ln.Addr().(*net.TCPAddr).Port, r.Address, f.container)
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxy(ctx, ln, f.dial)
		}()
	}
	out := newLogScrubber(s.Stdout, allSecretValues(t.st, env, s))
	defer out.Flush()
	if err := streamLogs(ctx, set, in, true, out); err != nil && ctx.Err() == nil {
		return fail(s, err)
	}
	return ExitOK
}

// forwards pairs the run's declared ports with where the job publishes
// them.
func forwards(ctx context.Context, set providers.Set, r *state.Resource, in *state.Instance) ([]forward, error) {
	b, err := json.Marshal(r.Attributes[planner.AttrSpec])
	if err != nil {
		return nil, fmt.Errorf("reading the recorded configuration of %s: %w", r.Address, err)
	}
	spec, err := lang.DecodeSpec(b)
	if err != nil {
		return nil, fmt.Errorf("reading the recorded configuration of %s: %w", r.Address, err)
	}
	ports := lang.RunPorts(spec)
	p, err := set.For(in.Provider)
	if err != nil {
		return nil, err
	}
	objs, err := p.Describe(ctx, []string{in.Token})
	if err != nil {
		return nil, err
	}
	o, ok := objs[in.Token]
	if !ok || !o.Live() || o.Status == providers.StatusDone {
		return nil, fmt.Errorf("%s[%d] is not running", r.Address, in.Index)
	}
	published := map[int]int{}
	for _, pair := range strings.Split(o.Attributes[providers.AttrPorts], ",") {
		hostPort, containerPort, ok := strings.Cut(pair, ":")
		c, err1 := strconv.Atoi(containerPort)
		h, err2 := strconv.Atoi(hostPort)
		if ok && err1 == nil && err2 == nil {
			published[c] = h
		}
	}
	pd, tunnel := p.(providers.PortDialer)
	var out []forward
	for _, pt := range ports {
		hostPort, ok := published[pt.ContainerPort]
		if !ok {
			return nil, fmt.Errorf("%s does not publish port %d", r.Address, pt.ContainerPort)
		}
		f := forward{container: pt.ContainerPort, local: pt.ContainerPort}
		if tunnel {
			f.target = fmt.Sprintf("%s port %d (through SSH)", nonEmpty(o.Attributes[providers.AttrIP], o.Host), hostPort)
			f.dial = func(ctx context.Context) (net.Conn, error) { return pd.DialPort(ctx, in.ProviderID, hostPort) }
		} else {
			f.target = net.JoinHostPort(nonEmpty(o.Attributes[providers.AttrIP], "127.0.0.1"), strconv.Itoa(hostPort))
			f.dial = func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", f.target)
			}
		}
		if pt.LocalPort == nil {
			f.local = 0
		} else {
			f.local = *pt.LocalPort
		}
		// The job listens on this machine's loopback at the local port
		// asked for: binding it again would fail, and is not needed.
		if ip := net.ParseIP(nonEmpty(o.Attributes[providers.AttrIP], "127.0.0.1")); !tunnel && ip != nil && ip.IsLoopback() && f.local == hostPort {
			f.direct = true
		}
		out = append(out, f)
	}
	return out, nil
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// proxy copies each connection to ln to one that dial makes, both
// ways, until ctx ends.
func proxy(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			t, err := dial(ctx)
			if err != nil {
				return
			}
			defer t.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(t, c); closeWrite(t); done <- struct{}{} }()
			go func() { copyLarge(c, t); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// copyLarge copies from the job's side in large reads: through an SSH
// tunnel, every read sends the remote side a window adjustment, and
// io.Copy's 32 KiB reads made those a quarter of the forward's cost.
func copyLarge(dst io.Writer, src io.Reader) {
	buf := make([]byte, 1<<20)
	// Plain Writer and Reader, so that io.CopyBuffer uses buf rather than
	// a ReaderFrom's own small one.
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// execIn runs a command inside a job, with a terminal when stdin is one.
func execIn(ctx context.Context, set providers.Set, addr string, in *state.Instance, command []string, s Streams) int {
	p, err := set.For(in.Provider)
	if err != nil {
		return fail(s, err)
	}
	ex, ok := p.(providers.Execer)
	if !ok {
		return fail(s, fmt.Errorf("backend %s cannot run commands in jobs", in.Provider))
	}
	tty := false
	if f, ok := s.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if old, err := term.MakeRaw(int(f.Fd())); err == nil {
			tty = true
			defer term.Restore(int(f.Fd()), old)
		}
	}
	code, err := ex.Exec(ctx, in.ProviderID, command, tty, s.Stdin, s.Stdout)
	if err != nil {
		return fail(s, fmt.Errorf("%s[%d]: %w", addr, in.Index, err))
	}
	return code
}
