// Package sshd is the SSH server that runs inside a job's container, so
// that `ssh RUN` and desktop IDEs (VS Code, Cursor, Windsurf, Zed, over
// their SSH remotes) reach a dev environment.
//
// Why a server of our own: a job's image may have no sshd (busybox,
// distroless, most framework images), and installing OpenSSH at start
// needs a package manager and a network the image may not have. This
// server is part of the agent's static binary, which the Docker runtime
// bind-mounts into the container read-only and starts there with
// `docker exec` (see agent/runtime/docker/ssh.go): it works in any Linux
// image, as the job's user, without touching the image.
//
// What it serves: public-key authentication against the keys in
// <dir>/authorized_keys (read on every attempt); session channels with
// exec, shell, pty-req (a terminal, with window-change), env and signal;
// and direct-tcpip (ssh -L, and how IDEs reach the servers they start in
// the container). It serves no subsystems (no SFTP) and no remote
// forwarding (ssh -R). Sessions start in the server's working directory
// (the job's), with the job's environment plus what the client sends.
//
// Every connection opened or closed is recorded in <dir>/activity (see
// ActivityFile), which the agent reads for a dev environment's
// inactivity_duration: a run with an open connection is in use.
package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultPort is the port the server listens on in the container
// (dstack's own runner uses the same one).
const DefaultPort = 10022

// HostKeyFile is the server's private host key in its directory,
// generated on first start.
const HostKeyFile = "host_ed25519_key"

// AuthorizedKeysFile lists the keys allowed to log in, one a line in
// OpenSSH's authorized_keys format.
const AuthorizedKeysFile = "authorized_keys"

// Server is the SSH server. Make one with New.
type Server struct {
	cfg   *ssh.ServerConfig
	dir   string
	shell string
	env   []string
	log   *slog.Logger
	act   *activity
}

// New returns a server that keeps its files in dir: the host key (made
// when missing), authorized_keys and the activity file.
func New(dir string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signer, err := hostKey(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, shell: loginShell(), env: os.Environ(), log: log, act: &activity{path: activityPath(dir)}}
	s.cfg = &ssh.ServerConfig{PublicKeyCallback: s.authorize}
	s.cfg.AddHostKey(signer)
	s.act.add(0)
	return s, nil
}

// hostKey loads the host key from dir, or makes one and saves it there
// (where dir is not writable, it lives as long as the server).
func hostKey(dir string) (ssh.Signer, error) {
	path := filepath.Join(dir, HostKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return ssh.ParsePrivateKey(b)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making the host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "dstack job")
	if err != nil {
		return nil, fmt.Errorf("encoding the host key: %w", err)
	}
	_ = os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	return ssh.NewSignerFromKey(priv)
}

// authorize accepts a key listed in authorized_keys.
func (s *Server) authorize(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, AuthorizedKeysFile))
	if err != nil {
		return nil, fmt.Errorf("no authorized keys: %w", err)
	}
	want := key.Marshal()
	for len(data) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			break
		}
		if bytes.Equal(k.Marshal(), want) {
			return &ssh.Permissions{}, nil
		}
		data = rest
	}
	return nil, errors.New("key not authorized")
}

// loginShell is the shell sessions run: $SHELL, else bash where the
// image has it, else sh.
func loginShell() string {
	if sh := os.Getenv("SHELL"); sh != "" {
		if _, err := os.Stat(sh); err == nil {
			return sh
		}
	}
	for _, sh := range []string{"/bin/bash", "/bin/sh"} {
		if _, err := os.Stat(sh); err == nil {
			return sh
		}
	}
	return "/bin/sh"
}

// Serve accepts connections on ln until ctx ends or ln fails; then it
// closes the connections and returns once their handlers have.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting SSH connections: %w", err)
		}
		wg.Go(func() { s.handle(ctx, c) })
	}
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		s.log.Debug("handshake failed", "remote", nc.RemoteAddr(), "err", err)
		return
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Time{})
	s.act.add(1)
	defer s.act.add(-1)
	go func() {
		// Global requests: keepalives and remote forwarding, which this
		// server does not serve; a "no" is an answer to a keepalive.
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			go s.session(ctx, nch)
		case "direct-tcpip":
			go s.directTCPIP(ctx, nch)
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unsupported channel type "+nch.ChannelType())
		}
	}
}

// directTCPIP connects a forwarded port (ssh -L) to an address as seen
// from inside the container.
func (s *Server) directTCPIP(ctx context.Context, nch ssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	t, err := d.DialContext(ctx, "tcp", net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port))))
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer t.Close()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(t, ch)
		if tc, ok := t.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ch, t)
		_ = ch.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// ptyRequest is the payload of "pty-req" (RFC 4254, 6.2).
type ptyRequest struct {
	Term   string
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
	Modes  string
}

// session serves one session channel: its requests until the command
// it runs has ended.
func (s *Server) session(ctx context.Context, nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var (
		env     []string
		pty     *ptyRequest
		ctl     *os.File // the terminal's controlling side, once started
		proc    *os.Process
		started bool
		exited  = make(chan int, 1)
	)
	for {
		var req *ssh.Request
		select {
		case req = <-reqs:
		case code := <-exited:
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			return
		}
		if req == nil {
			// The client closed the channel: end what it started.
			if proc != nil {
				_ = proc.Signal(syscall.SIGHUP)
			}
			return
		}
		ok := false
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil {
				env = append(env, kv.Name+"="+kv.Value)
				ok = true
			}
		case "pty-req":
			var p ptyRequest
			if ssh.Unmarshal(req.Payload, &p) == nil && !started {
				pty, ok = &p, true
			}
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			if ssh.Unmarshal(req.Payload, &w) == nil && ctl != nil {
				setWinsize(ctl, w.Cols, w.Rows)
				ok = true
			}
		case "signal":
			var sig struct{ Name string }
			if ssh.Unmarshal(req.Payload, &sig) == nil && proc != nil {
				if n, known := signals[sig.Name]; known {
					ok = proc.Signal(n) == nil
				}
			}
		case "shell", "exec":
			if started {
				break
			}
			var command string
			if req.Type == "exec" {
				var c struct{ Command string }
				if ssh.Unmarshal(req.Payload, &c) != nil {
					break
				}
				command = c.Command
			}
			p, c, err := s.start(ch, command, env, pty, exited)
			if err != nil {
				fmt.Fprintf(ch.Stderr(), "dstack: %v\r\n", err)
				break
			}
			proc, ctl, started, ok = p, c, true, true
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// start runs the session's command (the login shell when command is
// empty), on a terminal when the client asked for one, and sends its exit
// code to exited once it has ended and its output is sent.
func (s *Server) start(ch ssh.Channel, command string, env []string, pty *ptyRequest, exited chan<- int) (*os.Process, *os.File, error) {
	cmd := exec.Command(s.shell, "-c", command)
	if command == "" {
		// A login shell, as OpenSSH starts it: argv[0] begins with "-".
		cmd = &exec.Cmd{Path: s.shell, Args: []string{"-" + filepath.Base(s.shell)}}
	}
	cmd.Env = append(append([]string{}, s.env...), "SHELL="+s.shell)
	cmd.Env = append(cmd.Env, env...)
	if wd, err := os.Getwd(); err == nil {
		cmd.Dir = wd
	}
	if pty == nil {
		return s.startPiped(ch, cmd, exited)
	}
	cmd.Env = append(cmd.Env, "TERM="+pty.Term)
	ctl, tty, err := openPTY()
	if err != nil {
		return nil, nil, err
	}
	setWinsize(ctl, pty.Cols, pty.Rows)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		tty.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", s.shell, err)
	}
	tty.Close()
	go func() { _, _ = io.Copy(ctl, ch) }()
	out := make(chan struct{})
	go func() {
		// Ends with EIO once every holder of the terminal has closed it.
		_, _ = io.Copy(ch, ctl)
		close(out)
	}()
	go func() {
		code := exitCode(cmd.Wait())
		select {
		case <-out:
		case <-time.After(2 * time.Second):
			// A background process still holds the terminal.
		}
		ctl.Close()
		exited <- code
	}()
	return cmd.Process, ctl, nil
}

func (s *Server) startPiped(ch ssh.Channel, cmd *exec.Cmd, exited chan<- int) (*os.Process, *os.File, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	// Wait waits for the copies to stdout and stderr, not for the
	// client's input, which may never end (a terminal on its side).
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", s.shell, err)
	}
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	go func() {
		code := exitCode(cmd.Wait())
		_ = ch.CloseWrite()
		exited <- code
	}()
	return cmd.Process, nil, nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 255
}

// Main is the server's command line, `dstack-agent sshd [-listen ADDR]
// [-dir DIR] [-log FILE]`, which the agent starts in a job's container.
// The activity file appears once the server listens.
func Main(ctx context.Context, argv []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("sshd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", ":"+strconv.Itoa(DefaultPort), "`address` to listen on")
	dir := flags.String("dir", "/.dstack/ssh", "`dir` with authorized_keys, the host key and the activity file")
	logFile := flags.String("log", "", "`file` to append the server's messages to (default: stderr)")
	if err := flags.Parse(argv); err != nil {
		return err
	}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening the log: %w", err)
		}
		defer f.Close()
		stderr = f
	}
	err := serveMain(ctx, *listen, *dir, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "sshd:", err)
	}
	return err
}

func serveMain(ctx context.Context, listen, dir string, stderr io.Writer) error {
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	s, err := New(dir, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		ln.Close()
		return err
	}
	return s.Serve(ctx, ln)
}
